"""``enforcer audit …``: verify, query, report, export and pubkey over the local decision log.

The lead attaches ``audit_group`` to the ``enforcer`` group; ``ctx.obj`` is a ``CliState`` and
the log is ``obj.audit_dir``, the checkpoint key in ``obj.keys_dir``.

Exit codes: 0 success; 1 ``verify`` found a problem; 2 bad input (one line on stderr).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from enforcer.audit.defaults import default_public_key, local_signer
from enforcer.audit.query import (
    LoggedRecord,
    RecordFilter,
    iter_records,
    opa_jsonl,
    record_country,
    record_effect,
    record_reasons,
)
from enforcer.audit.report import render_html
from enforcer.audit.signing import MAX_PEM_BYTES, CheckpointError, SignerError, load_public_key
from enforcer.audit.verify import Anchor, VerifyReport, load_anchor, open_verify
from enforcer.cli_common import CliState, fail, parse_now

EFFECTS = ("allow", "deny", "audit")
_T = TypeVar("_T")


def _state(ctx: click.Context) -> CliState:
    obj = ctx.find_object(CliState)
    return obj if obj is not None else CliState()


def _load_pem(path: str | None) -> bytes | None:
    if path is None:
        return None
    p = Path(path)
    try:
        if p.stat().st_size > MAX_PEM_BYTES:
            fail(f"{path}: public key file too large")
        pem = p.read_bytes()
        load_public_key(pem)
    except OSError as exc:
        fail(f"cannot read public key {path}: {exc.strerror or exc}")
    except CheckpointError as exc:
        fail(f"{path}: {exc}")
    return pem


_MAX_ANCHOR_BYTES = 8192


def _anchors(files: tuple[str, ...], specs: tuple[str, ...], pem: bytes | None) -> list[Anchor]:
    """Trusted anchors from kept checkpoint files and ``SEQ:HASH`` options (exit 2 when unusable)."""
    out: list[Anchor] = []
    for f in files:
        try:
            p = Path(f)
            if p.stat().st_size > _MAX_ANCHOR_BYTES:
                fail(f"{f}: trusted checkpoint file too large")
            text = p.read_text(encoding="utf-8").strip().splitlines()
            data = json.loads(text[-1]) if text else None
            out.append(load_anchor(data, f"trusted checkpoint {p.name}", pem))
        except OSError as exc:
            fail(f"cannot read trusted checkpoint {f}: {exc.strerror or exc}")
        except (ValueError, UnicodeDecodeError):
            fail(f"{f}: not a checkpoint (JSON with seq and hash)")
        except CheckpointError as exc:
            fail(str(exc))
    for spec in specs:
        seq_s, _, h = spec.partition(":")
        try:
            out.append(load_anchor({"seq": int(seq_s), "hash": h}, f"anchor {seq_s}", None))
        except (ValueError, CheckpointError):
            fail(f"--anchor {spec[:80]!r}: expected SEQ:HASH (64 lowercase hex)")
    return out


def _verify(
    state: CliState,
    public_key: str | None,
    deep: bool,
    trusted: tuple[str, ...] = (),
    anchor_specs: tuple[str, ...] = (),
) -> VerifyReport:
    pem = _load_pem(public_key)
    pinned = pem is not None
    anchors = _anchors(trusted, anchor_specs, pem)
    if state.is_aws:
        report: VerifyReport = _aws_call(lambda: state.aws().audit_source().verify(pem, anchors))
        return report
    if pem is None:
        pem = default_public_key(state.keys_dir)
    return open_verify(state.audit_dir, pem, deep=deep, anchors=anchors, pinned_key=pinned)


UNVERIFIED_OPT = click.option(
    "--unverified",
    is_flag=True,
    help="Read a log that does not verify anyway (a loud warning is printed).",
)


def _aws_call(fn: Callable[[], _T]) -> _T:
    """Run a read of the AWS store; any AWS or configuration error is one line and exit 2."""
    from enforcer.aws_errors import error_code
    from enforcer.model import InputError

    try:
        return fn()
    except InputError as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"cannot read the AWS audit store: {error_code(exc) or type(exc).__name__}: {str(exc)[:200]}")


def _records(state: CliState, errors: list[str] | None = None) -> Iterator[LoggedRecord]:
    """The log's records in chain order: the state directory, or the stack's store (--backend aws)."""
    if state.is_aws:
        yield from _aws_call(lambda: list(state.aws().audit_source().iter_records(errors)))
        return
    yield from iter_records(state.audit_dir, errors)


def _has_log(state: CliState) -> bool:
    return state.is_aws or state.audit_dir.is_dir()


def _source(state: CliState) -> str:
    return (
        str(_aws_call(lambda: state.aws().audit_source().location)) if state.is_aws else str(state.audit_dir)
    )


def _require_verified(state: CliState, unverified: bool) -> None:
    """Refuse (exit 1) to read a log that does not verify, unless ``--unverified``."""
    if not _has_log(state):
        return
    report = _verify(state, None, False)
    if report.ok:
        return
    if not unverified:
        click.echo(
            f"error: the audit log does not verify ({report.summary()}); "
            "run `enforcer audit verify`, or pass --unverified to read it anyway",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"WARNING: THE AUDIT LOG DOES NOT VERIFY ({report.summary()}); what follows may be tampered with",
        err=True,
    )


@click.group("audit")
def audit_group() -> None:
    """Verify and review the tamper-evident decision log."""


@audit_group.command("verify")
@click.option(
    "--public-key", "public_key", type=click.Path(dir_okay=False), help="Checkpoint public key PEM."
)
@click.option("--deep", is_flag=True, help="Also re-canonicalise every record (slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--trusted-checkpoint",
    "trusted",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A checkpoint kept outside the log's folder (JSON with seq and hash; the last line of a file).",
)
@click.option("--anchor", "anchor_specs", multiple=True, help="A trusted SEQ:HASH from outside the log.")
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    public_key: str | None,
    deep: bool,
    as_json: bool,
    trusted: tuple[str, ...],
    anchor_specs: tuple[str, ...],
) -> None:
    """Check the hash chain and signed checkpoints; exit 1 naming the first bad record.

    Without --public-key the key in STATE/keys is used; with no key at all, signatures are
    not checked (a warning says so). Only a pinned --public-key, --trusted-checkpoint or
    --anchor from outside the log's folder anchor it: the summary says how far; a log that ends
    before a trusted checkpoint fails as truncated.
    """
    state = _state(ctx)
    if not _has_log(state):
        click.echo(f"FAIL: no audit log at {state.audit_dir}", err=True)
        sys.exit(1)
    report = _verify(state, public_key, deep, trusted, anchor_specs)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if report.ok:
        if not as_json:
            click.echo(report.summary())
        return
    click.echo(report.summary(), err=not as_json)
    sys.exit(1)


def _closed_stdout() -> NoReturn:
    """The reader of stdout went away (e.g. ``| head``): stop quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def _parse_opt_time(value: str | None) -> float | None:
    return None if value is None else parse_now(value)


@audit_group.command("query")
@click.option("--account", help="AWS account id.")
@click.option("--effect", type=click.Choice(EFFECTS))
@click.option("--reason", help="Reason code, e.g. ORIGIN_RESTRICTED.")
@click.option("--chip-class", "chip_class", help="Chip class, e.g. 3A090.a.")
@click.option("--since", help="RFC 3339 time (inclusive).")
@click.option("--until", help="RFC 3339 time (inclusive).")
@click.option("--format", "fmt", type=click.Choice(("table", "jsonl")), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=0, help="At most this many rows (0: all).")
@UNVERIFIED_OPT
@click.pass_context
def query_cmd(
    ctx: click.Context,
    account: str | None,
    effect: str | None,
    reason: str | None,
    chip_class: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    limit: int,
    unverified: bool,
) -> None:
    """List logged decisions matching the filters (refused on a log that does not verify)."""
    state = _state(ctx)
    _require_verified(state, unverified)
    flt = RecordFilter(
        account=account,
        effect=effect,
        reason=reason,
        chip_class=chip_class,
        since=_parse_opt_time(since),
        until=_parse_opt_time(until),
    )
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    matched = 0
    try:
        for lr in _records(state, errors):
            if not flt.matches(lr.record):
                continue
            matched += 1
            if fmt == "jsonl":
                click.echo(json.dumps(lr.record, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
            else:
                rows.append(lr.record)
            if limit and matched >= limit:
                break
        sys.stdout.flush()
    except BrokenPipeError:
        _closed_stdout()
    for e in errors[:20]:
        click.echo(f"warning: unreadable record {e}", err=True)
    if fmt == "table":
        _print_table(rows)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(rows)} decision(s)", show_lines=False)
    for col in (
        "seq",
        "time",
        "effect",
        "account",
        "country",
        "region",
        "chips",
        "reasons",
        "action",
        "mode",
    ):
        table.add_column(col, overflow="fold")
    style = {"deny": "bold red", "allow": "green", "audit": "yellow"}
    for r in rows:
        eff = record_effect(r)
        chips = r.get("chip_classes")
        table.add_row(
            escape(str(r.get("seq"))),
            escape(str(r.get("timestamp"))),
            f"[{style.get(eff, 'white')}]{escape(eff)}[/]",
            escape(str(r.get("account_id"))),
            escape(record_country(r)),
            escape(str(r.get("region"))),
            escape(", ".join(str(c) for c in chips) if isinstance(chips, list) else ""),
            escape(", ".join(record_reasons(r))),
            escape(str(r.get("action") or "")),
            escape(str(r.get("mode"))),
        )
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)


@audit_group.command("report")
@click.option("--html", "html_file", required=True, type=click.Path(dir_okay=False), help="Output HTML file.")
@click.option(
    "--public-key", "public_key", type=click.Path(dir_okay=False), help="Checkpoint public key PEM."
)
@UNVERIFIED_OPT
@click.pass_context
def report_cmd(ctx: click.Context, html_file: str, public_key: str | None, unverified: bool) -> None:
    """Write a self-contained HTML report (counts, timeline, denied and audited launches)."""
    state = _state(ctx)
    verification = _verify(state, public_key, False) if _has_log(state) else None
    if verification is not None and not verification.ok:
        _require_verified(state, unverified)
    page = render_html(_records(state), source=_source(state), verification=verification)
    try:
        Path(html_file).write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {html_file}: {exc.strerror or exc}")
    click.echo(f"wrote {html_file}")


@audit_group.command("export")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Output file (default: stdout).")
@UNVERIFIED_OPT
@click.pass_context
def export_cmd(ctx: click.Context, out_file: str | None, unverified: bool) -> None:
    """Export the log as OPA decision-log events, one JSON object per line."""
    state = _state(ctx)
    _require_verified(state, unverified)
    errors: list[str] = []
    try:
        if out_file is None:
            for lr in _records(state, errors):
                click.echo(opa_jsonl(lr.record))
            sys.stdout.flush()
        else:
            n = 0
            with open(out_file, "w", encoding="utf-8") as fh:
                for lr in _records(state, errors):
                    fh.write(opa_jsonl(lr.record) + "\n")
                    n += 1
            click.echo(f"wrote {n} events to {out_file}", err=True)
    except BrokenPipeError:
        _closed_stdout()
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}")
    for e in errors[:20]:
        click.echo(f"warning: unreadable record {e}", err=True)


@audit_group.command("anchor")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write it to this file.")
@click.pass_context
def anchor_cmd(ctx: click.Context, out_file: str | None) -> None:
    """Sign the log's head now and print the checkpoint: keep it OUTSIDE the state folder.

    ``audit verify --trusted-checkpoint FILE`` later proves the log up to it and detects any
    truncation after it (even with the checkpoints beside the log deleted).
    """
    from enforcer.audit.local import utc_now
    from enforcer.audit.record import canonical
    from enforcer.audit.signing import make_checkpoint

    state = _state(ctx)
    if not state.audit_dir.is_dir():
        fail(f"no audit log at {state.audit_dir}")
    report = _verify(state, None, False)  # the head is recomputed from the records, not read from an index
    if not report.ok:
        click.echo(f"error: the audit log does not verify ({report.summary()}); not anchoring it", err=True)
        sys.exit(1)
    if report.head_seq < 0:
        fail("the audit log is empty: nothing to anchor")
    try:
        signer = local_signer(state.keys_dir)
        cp = make_checkpoint(signer, report.head_seq, report.head_hash, utc_now())
    except (SignerError, OSError) as exc:
        fail(f"cannot sign the anchor: {exc}")
    line = canonical(cp).decode("utf-8")
    if out_file is not None:
        try:
            Path(out_file).write_text(line + "\n", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out_file}: {exc.strerror or exc}")
    click.echo(line)


@audit_group.command("pubkey")
@click.pass_context
def pubkey_cmd(ctx: click.Context) -> None:
    """Print the checkpoint public key (PEM); the key pair is created on first use."""
    state = _state(ctx)
    try:
        signer = local_signer(state.keys_dir)
    except (SignerError, OSError) as exc:
        fail(str(exc))
    click.echo(signer.public_key_pem().decode("ascii"), nl=False)
