"""``enforcer replay``: what the current policy would have done to past launches (never logged)."""

from __future__ import annotations

import glob
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from enforcer.cli.common import CliState, engine_options, fail, parse_now, require_state
from enforcer.model import InputError


def _enforcer(obj: CliState, engine: str, opa_url: str | None, policy_dir: Path | None, memo: bool) -> Any:
    from enforcer.policy.memo import MemoEngine, is_deterministic
    from enforcer.wiring.local import local_enforcer

    enf = local_enforcer(obj, engine=engine, opa_url=opa_url, policy_dir=policy_dir, with_audit=False)
    bundle = getattr(enf.engine, "bundle", None)
    if memo and bundle is not None and is_deterministic(bundle):
        enf.engine = MemoEngine(enf.engine)
    return enf


#: Sources read by a client or an SQL engine rather than from a local path.
REMOTE_SOURCES = ("s3://", "athena://", "duckdb:")


def _missing(source: str) -> bool:
    """A local path that does not exist, or a local ``duckdb:GLOB`` that matches no file."""
    if source.startswith("duckdb:"):
        pattern = source.removeprefix("duckdb:")
        return "://" not in pattern and not any(glob.iglob(pattern, recursive=True))
    return not source.startswith(REMOTE_SOURCES) and not Path(source).exists()


#: Rows of the per-account table printed after a replay.
ACCOUNT_ROWS = 25


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
    accounts = {a for a, _ in summary.by_account}
    # thousands of accounts in an organisation's trail: the ones with most denies, then most audits
    top = sorted(accounts, key=lambda a: (-summary.by_account.get((a, "deny"), 0),
                                          -summary.by_account.get((a, "audit"), 0), a))  # fmt: skip
    for acct in top[:ACCOUNT_ROWS]:
        eff.add_row(acct, *(str(summary.by_account.get((acct, e), 0)) for e in ("allow", "audit", "deny")))
    if len(top) > ACCOUNT_ROWS:
        eff.caption = f"{len(top) - ACCOUNT_ROWS} more accounts (most denies first); the JSONL has them all"
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
@click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Processes over local files (needs --out; each account's files stay on one process).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run: reuse OUT.parts/ files whose source is unchanged.",
)
@engine_options
@click.pass_obj
def replay_command(
    obj: CliState,
    sources: tuple[str, ...],
    out_file: Path | None,
    baseline: Path | None,
    now: str | None,
    no_memo: bool,
    jobs: int,
    resume: bool,
    engine: str,
    opa_url: str | None,
    policy_dir: Path | None,
) -> None:
    """Decide past launches in SOURCES with the current policy and state, without logging anything.

    SOURCES are CloudTrail log files ({"Records": [...]}, gzipped or not), directories of them,
    EventBridge events (JSON or JSONL), s3://bucket/prefix, or a launch filter run in SQL:
    athena://DB.TABLE?workgroup=W&since=2026-01-01 (the CloudTrail table as AWS documents it) or
    duckdb:GLOB (embedded DuckDB over CloudTrail log files).
    """
    from enforcer.policy.embedded import EngineMissing
    from enforcer.ports import EngineError
    from enforcer.replay import iter_events, replay

    missing = [s for s in sources if _missing(s)]
    if missing:
        fail(
            f"{missing[0]}: no such file or directory, or no file matches"
            + (f" (and {len(missing) - 1} more)" if missing[1:] else "")
        )
    at = parse_now(now)
    if baseline and engine == "opa":  # one OPA server holds one policy: both sides would ask the same one
        fail("--baseline compares two policy directories on the embedded engine; use --engine embedded")
    # decided against the state's accounts, licences and registry: a mistyped --state is an error,
    # never an empty directory (every account unknown, and a --baseline diff hiding the change)
    require_state(obj)
    if out_file is not None:
        from enforcer.replay_run import local_files

        files = local_files(sources)
        if files is not None:
            # never read our own output (or its parts) back as a source when --out sits in a source tree
            parts = Path(f"{out_file}.parts").resolve()
            mine = out_file.resolve()
            files = [f for f in files if f.resolve() != mine and parts not in f.resolve().parents]
            _run_files(
                obj, files, out_file, baseline, at, not no_memo, jobs, resume, engine, opa_url, policy_dir
            )
            return
    if jobs > 1 or resume:
        fail("--jobs and --resume need --out and local files or directories")
    try:
        enf = _enforcer(obj, engine, opa_url, policy_dir, not no_memo)
        base = _enforcer(obj, engine, opa_url, baseline, not no_memo) if baseline else None
    except InputError as exc:
        fail(f"{exc.code}: {exc}")
    except (EngineError, EngineMissing) as exc:
        fail(f"POLICY_LOAD_ERROR: {' '.join(str(exc).split())[:300]}")
    s3 = athena = None
    if any(s.startswith("s3://") for s in sources):
        import boto3

        s3 = boto3.client("s3")
    if athena_urls := [s for s in sources if s.startswith("athena://")]:
        athena = _athena_client(athena_urls)
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
        summary = replay(iter_events(sources, s3, athena), enf, out, base, at, tick, book)
        elapsed = time.perf_counter() - start
    print_summary(summary, elapsed, console, base is not None)
    if book is not None and (rows := book.rows(at)):
        from enforcer.cli.evidence import ledger_table

        ledger_table(
            rows[:20], "Compute ledger over the replayed history (peak = most running at once)", console
        )


def _run_files(
    obj: CliState,
    files: list[Path],
    out_file: Path,
    baseline: Path | None,
    at: float | None,
    memo: bool,
    jobs: int,
    resume: bool,
    engine: str,
    opa_url: str | None,
    policy_dir: Path | None,
) -> None:
    """Local files into --out through resumable parts, on ``jobs`` processes (enforcer.replay_run)."""
    from enforcer.policy.embedded import EngineMissing
    from enforcer.ports import EngineError
    from enforcer.replay_run import RunConfig, RunError, run_files, stderr_progress

    cfg = RunConfig(
        state=str(obj.state),
        engine=engine,
        opa_url=opa_url,
        policy_dir=str(policy_dir) if policy_dir else None,
        baseline=str(baseline) if baseline else None,
        memo=memo,
        now=at,
    )
    console = Console(stderr=True)
    try:
        res = run_files(files, cfg, out_file, jobs=jobs, resume=resume, progress=stderr_progress())
    except RunError as exc:
        fail(str(exc))
    except InputError as exc:
        fail(f"{exc.code}: {exc}")
    except (EngineError, EngineMissing) as exc:
        fail(f"POLICY_LOAD_ERROR: {' '.join(str(exc).split())[:300]}")
    if res.interrupted:
        console.print(
            f"[bold red]Interrupted[/] after {res.files}/{len(files)} files: {out_file}.parts/ is marked "
            "INCOMPLETE; rerun with --resume to finish"
        )
        raise SystemExit(130)
    print_summary(res.summary, res.wall_s, console, baseline is not None)
    rate = (res.summary.events / res.cpu_s) if res.cpu_s > 0 else 0.0
    console.print(
        f"{len(files)} files ({res.reused} reused from an interrupted run), {jobs} process(es), "
        f"{res.cpu_s:.2f} CPU s in the workers ({rate:,.0f} events per CPU second), "
        f"peak RSS {res.rss_mb:.0f} MB per process"
    )
    if res.book is None and jobs > 1:
        console.print("compute ledger not shown: with --jobs each process sums its own accounts' launches")
    if res.book is not None and at is not None and (rows := res.book.rows(at)):
        from enforcer.cli.evidence import ledger_table

        ledger_table(
            rows[:20], "Compute ledger over the replayed history (peak = most running at once)", console
        )


def _athena_client(urls: list[str]) -> Any:
    """An Athena client in the URLs' ``region=`` (else the configured one); a clear error without one."""
    import boto3
    from botocore.exceptions import BotoCoreError

    from enforcer.replay_sql import parse_athena_url

    regions = {parse_athena_url(u)["region"] for u in urls} - {None}
    if len(regions) > 1:
        fail(f"athena:// sources name different regions {sorted(regions)}: replay them one region at a time")
    try:
        return boto3.client("athena", region_name=next(iter(regions), None))
    except BotoCoreError as exc:
        fail(f"athena://: {exc} (set AWS_REGION or add &region=... to the URL)")
