"""``enforcer audit verify|query|anchor|pubkey`` (and ``report``, ``export``, ``ingest``, attached here).

The log is the state directory's ``audit/`` (checkpoint key in ``keys/``), or the deployed stack's
store with ``--backend aws``. Exit codes: 0 success; 1 ``verify`` found a problem; 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from enforcer.audit.defaults import local_signer
from enforcer.audit.query import RecordFilter, record_country, record_effect, record_reasons
from enforcer.audit.signing import SignerError
from enforcer.cli.audit_export import export_cmd, report_cmd
from enforcer.cli.audit_support import (
    EFFECTS,
    UNVERIFIED_OPT,
    closed_stdout,
    has_log,
    parse_opt_time,
    read_records,
    require_verified,
    state_of,
    verify_log,
)
from enforcer.cli.common import Failed, fail, format_options, require_state
from enforcer.cli.ingest import ingest_command


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
    try:
        state = require_state(state_of(ctx))
        if not has_log(state):
            click.echo(f"FAIL: no audit log at {state.audit_dir}", err=True)
            raise Failed(f"no audit log at {state.audit_dir}", 1)
        report = verify_log(state, public_key, deep, trusted, anchor_specs)
    except Failed as exc:  # --json: the failure as JSON too, so a pipeline can always parse stdout
        if as_json:
            click.echo(json.dumps({"ok": False, "error": exc.message, "exit_code": exc.code}, indent=2))
        raise
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if report.ok:
        if not as_json:
            click.echo(report.summary())
        return
    click.echo(report.summary(), err=True)
    sys.exit(1)


@audit_group.command("query")
@format_options()
@click.option("--account", help="AWS account id.")
@click.option("--effect", type=click.Choice(EFFECTS))
@click.option("--reason", help="Reason code, e.g. ORIGIN_RESTRICTED.")
@click.option("--chip-class", "chip_class", help="Chip class, e.g. 3A090.a.")
@click.option("--since", help="RFC 3339 time (inclusive).")
@click.option("--until", help="RFC 3339 time (inclusive).")
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
    state = require_state(state_of(ctx))
    require_verified(state, unverified)
    flt = RecordFilter(
        account=account,
        effect=effect,
        reason=reason,
        chip_class=chip_class,
        since=parse_opt_time(since),
        until=parse_opt_time(until),
    )
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    matched = 0
    try:
        for lr in read_records(state, errors):
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
        closed_stdout()
    for e in errors[:20]:
        click.echo(f"warning: unreadable record {e}", err=True)
    if fmt == "json":
        click.echo(json.dumps(rows, sort_keys=True, indent=2, ensure_ascii=False))
    elif fmt == "table":
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

    state = require_state(state_of(ctx))
    if not state.audit_dir.is_dir():
        fail(f"no audit log at {state.audit_dir}")
    report = verify_log(state, None, False)  # the head is recomputed from the records, not read from an index
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
    state = state_of(ctx)
    try:
        signer = local_signer(state.keys_dir)
    except (SignerError, OSError) as exc:
        fail(str(exc))
    click.echo(signer.public_key_pem().decode("ascii"), nl=False)


for _cmd in (report_cmd, export_cmd, ingest_command):
    audit_group.add_command(_cmd)
