"""``enforcer audit report|export``: the HTML report and the OPA decision-log export of the audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from enforcer.audit.query import opa_jsonl
from enforcer.audit.report import render_html
from enforcer.cli.audit_support import (
    UNVERIFIED_OPT,
    closed_stdout,
    has_log,
    read_records,
    require_verified,
    source_name,
    state_of,
    verify_log,
)
from enforcer.cli.common import fail


@click.command("report")
@click.option("--html", "html_file", required=True, type=click.Path(dir_okay=False), help="Output HTML file.")
@click.option(
    "--public-key", "public_key", type=click.Path(dir_okay=False), help="Checkpoint public key PEM."
)
@UNVERIFIED_OPT
@click.pass_context
def report_cmd(ctx: click.Context, html_file: str, public_key: str | None, unverified: bool) -> None:
    """Write a self-contained HTML report (counts, timeline, denied and audited launches)."""
    state = state_of(ctx)
    verification = verify_log(state, public_key, False) if has_log(state) else None
    if verification is not None and not verification.ok:
        require_verified(state, unverified)
    page = render_html(read_records(state), source=source_name(state), verification=verification)
    try:
        Path(html_file).write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {html_file}: {exc.strerror or exc}")
    click.echo(f"wrote {html_file}")


@click.command("export")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Output file (default: stdout).")
@UNVERIFIED_OPT
@click.pass_context
def export_cmd(ctx: click.Context, out_file: str | None, unverified: bool) -> None:
    """Export the log as OPA decision-log events, one JSON object per line."""
    state = state_of(ctx)
    require_verified(state, unverified)
    errors: list[str] = []
    try:
        if out_file is None:
            for lr in read_records(state, errors):
                click.echo(opa_jsonl(lr.record))
            sys.stdout.flush()
        else:
            n = 0
            with open(out_file, "w", encoding="utf-8") as fh:
                for lr in read_records(state, errors):
                    fh.write(opa_jsonl(lr.record) + "\n")
                    n += 1
            click.echo(f"wrote {n} events to {out_file}", err=True)
    except BrokenPipeError:
        closed_stdout()
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}")
    for e in errors[:20]:
        click.echo(f"warning: unreadable record {e}", err=True)
