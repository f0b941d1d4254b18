"""``enforcer screening load|check`` and ``enforcer ledger show``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from enforcer.cli.common import (
    CliState,
    emit_records,
    fail,
    format_options,
    parse_now,
    plain_table,
    reads_state,
)
from enforcer.model import InputError

SCREENING_TABLE = plain_table(
    "Screening candidates", ("score", "entry", "matched_name", "list", "programs", "entry_id")
)


@click.group("screening")
def screening_group() -> None:
    """Restricted-party screening (US Consolidated Screening List)."""


@screening_group.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_obj
def screening_load(obj: CliState, file: Path) -> None:
    """Load the CSL FILE (its published JSON or CSV) as the list every decision screens against."""
    from enforcer.screening.store import load_file

    try:
        meta = load_file(file, obj.state, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    except InputError as exc:
        fail(f"{exc.code}: {exc}")
    click.echo(json.dumps(meta, indent=2))


@screening_group.command("check")
@format_options(default="json")
@reads_state
@click.argument("name")
@click.pass_obj
def screening_check(obj: CliState, name: str, fmt: str) -> None:
    """Screen NAME against the loaded list and print the candidates (exit 3 when any scores 80+)."""
    from enforcer.screening.store import LIST_FILE, open_screener

    try:
        screener = open_screener(obj.state / LIST_FILE)
    except InputError as exc:
        fail(f"{exc.code}: {exc}")
    if screener is None:
        fail("no screening list loaded (enforcer screening load FILE)")
    hits = [h.to_policy("name") for h in screener.screen(name)]
    emit_records(hits, fmt, SCREENING_TABLE)
    raise SystemExit(3 if any(h["score"] >= 80 for h in hits) else 0)


@click.group("ledger")
def ledger_group() -> None:
    """Compute ledger per beneficial owner (account, end customer, parent, reseller)."""


@ledger_group.command("show")
@format_options()
@reads_state
@click.option(
    "--owner", default=None, help="Only owners whose key or id starts with this (e.g. end_customer:)."
)
@click.option("--now", default=None, help="TPP-hours as of this time (RFC 3339; default: now).")
@click.pass_obj
def ledger_show(obj: CliState, owner: str | None, now: str | None, fmt: str) -> None:
    """Who holds how much compute: running TPP, TPP-hours and cumulative TPP per owner."""
    from enforcer.evidence.local import local_ledger

    rows = local_ledger(obj.state).owners(parse_now(now), owner)
    emit_records(rows, fmt, lambda r: ledger_table(r, "Compute ledger"))


def ledger_table(rows: list[dict[str, object]], title: str, console: Console | None = None) -> None:
    """Render ledger rows (``owners()``) as a table."""
    table = Table(title=title)
    peaks = bool(rows) and "peak_running_tpp" in rows[0]
    cols = ["kind", "owner", "label", "running TPP", "TPP-hours", "cumulative TPP", "launches"]
    cols += ["peak running TPP", "AGGREGATE_COMPUTE"] if peaks else []
    for col in cols:
        table.add_column(col, justify="left" if col in ("kind", "owner", "label") else "right")
    for r in rows:
        cells = [str(r["kind"]), str(r["owner"])[:40], str(r.get("label") or "")]
        cells += [f"{float(str(r[k])):,.0f}" for k in ("running_tpp", "tpp_hours", "cumulative_tpp")]
        cells.append(str(r.get("launches", "")))
        if peaks:
            cells += [f"{float(str(r['peak_running_tpp'])):,.0f}", str(r.get("aggregate_compute", 0))]
        table.add_row(*cells)
    (console or Console()).print(table)
