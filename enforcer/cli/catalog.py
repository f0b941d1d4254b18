"""``enforcer catalog classify|list``: the chip catalogue (instance type -> accelerators -> 3A090 class)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table


@click.group("catalog")
def catalog() -> None:
    """Chip catalogue: instance type -> accelerators -> ECCN 3A090 class."""


@catalog.command("classify")
@click.argument("instance_type")
def catalog_classify(instance_type: str) -> None:
    """Classify INSTANCE_TYPE and print JSON."""
    from enforcer.chips import default_catalog

    click.echo(json.dumps(default_catalog().classify(instance_type).to_dict(), indent=2))


@catalog.command("list")
@click.option(
    "--class",
    "chip_class",
    default=None,
    help="Only this class (3A090.a, 3A090.b, indeterminate, none, unknown).",
)
@click.option("--all", "show_all", is_flag=True, help="Include types without accelerators.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def catalog_list(chip_class: str | None, show_all: bool, as_json: bool) -> None:
    """List instance types with their accelerators and class."""
    catalog_table(chip_class, show_all, as_json)


def catalog_table(chip_class: str | None, show_all: bool, as_json: bool) -> None:
    """Print the bundled catalogue as a rich table (or JSON lines)."""
    from enforcer.chips import default_catalog

    cat = default_catalog()
    table = Table(title="Instance types by ECCN 3A090 chip class")
    for col in ("instance type", "accelerators", "class", "total TPP"):
        table.add_column(col)
    for itype in cat.known_types():
        c = cat.classify(itype)
        if not c.accelerators and not show_all:
            continue
        if chip_class and c.chip_class != chip_class:
            continue
        if as_json:
            click.echo(json.dumps(c.to_dict()))
            continue
        accs = ", ".join(f"{a.count:g}x {a.model}" for a in c.accelerators) or "-"
        table.add_row(itype, accs, c.chip_class, f"{c.total_tpp:,.0f}")
    if not as_json:
        Console().print(table)
