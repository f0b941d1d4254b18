"""``enforcer replay``: what the current policy would have done to past launches (never logged)."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from enforcer.cli_common import CliState, engine_options, fail, parse_now
from enforcer.model import InputError


def _enforcer(obj: CliState, engine: str, opa_url: str | None, policy_dir: Path | None, memo: bool) -> Any:
    from enforcer.policy.memo import MemoEngine, is_deterministic
    from enforcer.wiring import local_enforcer

    enf = local_enforcer(obj, engine=engine, opa_url=opa_url, policy_dir=policy_dir, with_audit=False)
    bundle = getattr(enf.engine, "bundle", None)
    if memo and bundle is not None and is_deterministic(bundle):
        enf.engine = MemoEngine(enf.engine)
    return enf


def print_summary(summary: Any, elapsed: float, console: Console, diff: bool) -> None:
    """Render the replay summary tables on ``console`` (stderr)."""
    rate = summary.events / elapsed if elapsed > 0 else 0.0
    console.print(
        f"[bold]Replayed {summary.events} events[/] in {elapsed:.1f}s ({rate:,.0f}/s): "
        f"{summary.decided} decided, {summary.ignored} ignored (failed or read-only calls), "
        f"{summary.errors} malformed"
    )
    if summary.error_codes:
        console.print(
            "malformed, by code: " + ", ".join(f"{c} {n}" for c, n in summary.error_codes.most_common())
        )
    eff = Table(title="Effect by account")
    for col in ("account", "allow", "audit", "deny"):
        eff.add_column(col, justify="right" if col != "account" else "left")
    for acct in sorted({a for a, _ in summary.by_account}):
        eff.add_row(acct, *(str(summary.by_account.get((acct, e), 0)) for e in ("allow", "audit", "deny")))
    console.print(eff)
    cls = Table(title="Effect by chip class")
    for col in ("chip class", "allow", "audit", "deny"):
        cls.add_column(col)
    for c in sorted({c for c, _ in summary.by_chip_class}):
        cls.add_row(c, *(str(summary.by_chip_class.get((c, e), 0)) for e in ("allow", "audit", "deny")))
    console.print(cls)
    if summary.by_reason:
        rs = Table(title="Reasons")
        rs.add_column("code")
        rs.add_column("launches", justify="right")
        for code, n in summary.by_reason.most_common():
            rs.add_row(code, str(n))
        console.print(rs)
    if diff:
        console.print(f"[bold]{summary.changed}[/] launches change effect against the baseline policy")
        for (before, after), n in sorted(summary.transitions.items()):
            console.print(f"  {before} -> {after}: {n}")


@click.command("replay")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Decisions JSONL (default stdout).",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Another policy directory: show launches whose effect changes.",
)
@click.option("--now", default=None, help="Evaluate attestations as of this time (RFC 3339; default: now).")
@click.option("--no-memo", is_flag=True, help="Evaluate every event even when an identical input was seen.")
@engine_options
@click.pass_obj
def replay_command(
    obj: CliState,
    sources: tuple[str, ...],
    out_file: Path | None,
    baseline: Path | None,
    now: str | None,
    no_memo: bool,
    engine: str,
    opa_url: str | None,
    policy_dir: Path | None,
) -> None:
    """Decide past launches in SOURCES with the current policy and state, without logging anything.

    SOURCES are CloudTrail log files ({"Records": [...]}, gzipped or not), directories of them,
    EventBridge events (JSON or JSONL) or s3://bucket/prefix.
    """
    from enforcer.policy.embedded import EngineMissing
    from enforcer.ports import EngineError
    from enforcer.replay import iter_events, replay

    at = parse_now(now)
    if baseline and engine == "opa":  # one OPA server holds one policy: both sides would ask the same one
        fail("--baseline compares two policy directories on the embedded engine; use --engine embedded")
    try:
        enf = _enforcer(obj, engine, opa_url, policy_dir, not no_memo)
        base = _enforcer(obj, engine, opa_url, baseline, not no_memo) if baseline else None
    except InputError as exc:
        fail(f"{exc.code}: {exc}")
    except (EngineError, EngineMissing) as exc:
        fail(f"POLICY_LOAD_ERROR: {' '.join(str(exc).split())[:300]}")
    s3 = None
    if any(s.startswith("s3://") for s in sources):
        import boto3

        s3 = boto3.client("s3")
    console = Console(stderr=True)
    with ExitStack() as stack:
        out: IO[str] = stack.enter_context(open(out_file, "w")) if out_file else sys.stdout
        progress = None
        if sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn

            progress = stack.enter_context(
                Progress(
                    SpinnerColumn(), TextColumn("{task.completed} events"), console=console, transient=True
                )
            )
        task = progress.add_task("replay", total=None) if progress else None

        def tick() -> None:
            if progress is not None and task is not None:
                progress.advance(task)

        from enforcer.ledger.book import LedgerBook

        ledger = getattr(enf.observer, "ledger", None)
        book = LedgerBook(ledger) if ledger is not None else None
        start = time.perf_counter()
        summary = replay(iter_events(sources, s3), enf, out, base, at, tick, book)
        elapsed = time.perf_counter() - start
    print_summary(summary, elapsed, console, base is not None)
    if book is not None and (rows := book.rows(at)):
        from enforcer.cli_evidence import ledger_table

        ledger_table(
            rows[:20], "Compute ledger over the replayed history (peak = most running at once)", console
        )
