"""``enforcer audit report|export``: the HTML report and the OPA decision-log export of the audit log."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from enforcer.audit.defaults import default_public_key
from enforcer.audit.opa_export import instance_id, opa_jsonl
from enforcer.audit.query import LoggedRecord
from enforcer.audit.report import render_html
from enforcer.audit.report_rows import write_csv
from enforcer.audit.row_check import check_rows, local_checkpoints
from enforcer.audit.verify import VerifyReport
from enforcer.cli.audit_support import (
    UNVERIFIED_OPT,
    closed_stdout,
    has_log,
    read_records,
    read_records_marked,
    require_verified,
    source_name,
    state_of,
    verify_log,
)
from enforcer.cli.common import fail, require_state
from enforcer.state import CliState


def _row_failures(
    state: CliState,
    public_key: str | None,
    verification: VerifyReport | None,
    records: Iterable[LoggedRecord] | None = None,
) -> dict[int, str]:
    """Which records fail verification (by reading position), located against the local checkpoints."""
    checkpoints = None
    if not state.is_aws and has_log(state):
        pem = Path(public_key).read_bytes() if public_key else default_public_key(state.keys_dir)
        checkpoints = local_checkpoints(state.audit_dir, pem)
    return check_rows(read_records(state) if records is None else records, checkpoints, verification)


@click.command("report")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Output HTML file.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False),
    help="Also (or only) write every decision as CSV, with its verification.",
)
@click.option(
    "--public-key", "public_key", type=click.Path(dir_okay=False), help="Checkpoint public key PEM."
)
@UNVERIFIED_OPT
@click.pass_context
def report_cmd(
    ctx: click.Context, html_file: str | None, csv_file: str | None, public_key: str | None, unverified: bool
) -> None:
    """Write an HTML report and/or a CSV; records that fail verification are marked, not counted."""
    if html_file is None and csv_file is None:
        fail("give --html FILE, --csv FILE or both")
    state = require_state(state_of(ctx))
    verification = verify_log(state, public_key, False) if has_log(state) else None
    if verification is not None and not verification.ok:
        require_verified(state, unverified)
    failures = _row_failures(state, public_key, verification)
    # a line that cannot be read is a failed row in its place, never left out of the rows and counts
    unreadable: dict[int, str] = {}
    if verification is not None and not verification.ok:
        checked = _row_failures(state, public_key, verification, read_records_marked(state, unreadable))
        failures = {**checked, **unreadable} if unreadable else failures

    def rows() -> Iterator[LoggedRecord]:
        return read_records_marked(state, {}) if unreadable else read_records(state)

    try:
        if html_file is not None:
            src = source_name(state)
            page = render_html(rows(), source=src, verification=verification, failures=failures)
            Path(html_file).write_text(page, encoding="utf-8")
            click.echo(f"wrote {html_file}")
        if csv_file is not None:
            with open(csv_file, "w", newline="", encoding="utf-8") as fh:
                n = write_csv(fh, rows(), failures)
            click.echo(f"wrote {n} decisions to {csv_file}")
    except OSError as exc:
        fail(f"cannot write {exc.filename or html_file or csv_file}: {exc.strerror or exc}")


@click.command("export")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Output file (default: stdout).")
@UNVERIFIED_OPT
@click.pass_context
def export_cmd(ctx: click.Context, out_file: str | None, unverified: bool) -> None:
    """Export the log as OPA decision-log events, one JSON object per line.

    OPA's event members (labels with OPA's engine version, bundles, requested_by ...); the
    enforcer's additions (chain seq/hash, reasons, trigger, attestation ids) under gpu_enforcer.
    """
    state = require_state(state_of(ctx))
    require_verified(state, unverified)
    errors: list[str] = []
    labels_id = instance_id(source_name(state))
    verification = verify_log(state, None, False) if unverified and has_log(state) else None
    # Exported anyway (--unverified): each record that fails says so (gpu_enforcer.verification_failure).
    bad = _row_failures(state, None, verification) if verification is not None and not verification.ok else {}
    unreadable: dict[int, str] = {}
    if bad or (verification is not None and not verification.ok):  # an unreadable line: an event in its place
        checked = _row_failures(state, None, verification, read_records_marked(state, unreadable))
        if unreadable:
            bad = {**checked, **unreadable}
            errors += [why.removeprefix("unreadable record at ") for why in unreadable.values()]

    def rows() -> Iterator[LoggedRecord]:
        return read_records_marked(state, {}) if unreadable else read_records(state, errors)

    try:
        if out_file is None:
            for pos, lr in enumerate(rows()):
                click.echo(opa_jsonl(lr.record, labels_id=labels_id, failure=bad.get(pos)))
            sys.stdout.flush()
        else:
            n = 0
            with open(out_file, "w", encoding="utf-8") as fh:
                for pos, lr in enumerate(rows()):
                    fh.write(opa_jsonl(lr.record, labels_id=labels_id, failure=bad.get(pos)) + "\n")
                    n += 1
            click.echo(f"wrote {n} events to {out_file}", err=True)
    except BrokenPipeError:
        closed_stdout()
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}")
    for e in errors[:20]:
        click.echo(f"warning: unreadable record {e}", err=True)
