"""``enforcer coverage [--format table|json|jsonl]``: the coverage table from the botocore service models."""

from __future__ import annotations

import click

from enforcer.cli.common import Rows, emit_records, format_options
from enforcer.coverage.table import STATUSES, load_table

KEYS = ("service", "operation", "status", "reason", "paths")


@click.command("coverage")
@format_options()
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only operations with this status.")
def coverage_command(status: str | None, fmt: str) -> None:
    """Every botocore operation that carries an instance type, and what the enforcer does with it.

    JSON: a list of {service, operation, status, reason, paths}.
    """
    rows = [{k: getattr(e, k) for k in KEYS} for e in load_table() if status is None or e.status == status]
    emit_records(rows, fmt, _table)


def _table(rows: Rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*KEYS, show_lines=False)
    for r in rows:
        table.add_row(r["service"], r["operation"], r["status"], r["reason"], "\n".join(r["paths"]))
    Console(width=200).print(table)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()), err=True)
