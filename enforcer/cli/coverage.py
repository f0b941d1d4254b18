"""``enforcer coverage [--json]``: the coverage table derived from the botocore service models."""

from __future__ import annotations

import json

import click

from enforcer.coverage.table import STATUSES, load_table


@click.command("coverage")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON: a list of {service, operation, status, reason, paths}."
)
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only operations with this status.")
def coverage_command(as_json: bool, status: str | None) -> None:
    """Every botocore operation that carries an instance type, and what the enforcer does with it."""
    rows = [e for e in load_table() if status is None or e.status == status]
    if as_json:
        keys = ("service", "operation", "status", "reason", "paths")
        click.echo(json.dumps([{k: getattr(e, k) for k in keys} for e in rows], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "operation", "status", "reason", "paths", show_lines=False)
    for e in rows:
        table.add_row(e.service, e.operation, e.status, e.reason, "\n".join(e.paths))
    Console(width=200).print(table)
    counts = {s: sum(1 for e in rows if e.status == s) for s in STATUSES}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()), err=True)
