"""``enforcer catalog classify|list``: the chip catalogue (instance type -> accelerators -> 3A090 class)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from enforcer.cli.common import Rows, emit_records, format_options


@click.group("catalog")
def catalog() -> None:
    """Chip catalogue: instance type -> accelerators -> ECCN 3A090 class."""


@catalog.command("classify")
@click.argument("instance_type")
def catalog_classify(instance_type: str) -> None:
    """Classify INSTANCE_TYPE and print JSON."""
    from enforcer.chips import default_catalog

    click.echo(json.dumps(default_catalog().classify(instance_type).to_dict(), indent=2))


#: chip classes ``--class`` accepts besides those in the catalogue
CLASSES = ("3A090.a", "3A090.b", "indeterminate", "none", "unknown")


@catalog.command("list")
@format_options(default="table", json_alias="jsonl")
@click.option(
    "--class",
    "chip_class",
    default=None,
    help="Only this class (3A090.a, 3A090.b, indeterminate, none, unknown).",
)
@click.option("--all", "show_all", is_flag=True, help="Include types without accelerators.")
def catalog_list(chip_class: str | None, show_all: bool, fmt: str) -> None:
    """List instance types with their accelerators and class (--json: JSON lines, as before --format)."""
    from enforcer.chips import default_catalog

    cat = default_catalog()
    classified = [cat.classify(itype) for itype in cat.known_types()]
    if chip_class is not None and chip_class not in {*CLASSES, *(c.chip_class for c in classified)}:
        raise click.BadParameter(f"unknown class {chip_class!r}", param_hint="--class")
    rows = [
        c.to_dict()
        for c in classified
        if (c.accelerators or show_all) and (chip_class is None or c.chip_class == chip_class)
    ]
    emit_records(rows, fmt, _catalog_table)


def _catalog_table(rows: Rows) -> None:
    table = Table(title="Instance types by ECCN 3A090 chip class")
    for col in ("instance type", "accelerators", "class", "total TPP"):
        table.add_column(col)
    for r in rows:
        accs = ", ".join(f"{a['count']:g}x {a['model']}" for a in r.get("accelerators") or []) or "-"
        table.add_row(r["instance_type"], accs, r["chip_class"], f"{r['total_tpp']:,.0f}")
    Console().print(table)
