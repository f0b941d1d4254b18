"""Operational CLI commands attached by ``enforcer.cli``: ``scp`` (and, later, replay, demo, policy push)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from enforcer.cli.common import fail
from enforcer.model import InputError


# -- scp -----------------------------------------------------------------------------------
@click.group("scp")
def scp_group() -> None:
    """Service control policies generated from the chip catalogue (the preventive control)."""


@scp_group.command("generate")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write one JSON file per policy into DIR (default: JSON lines on stdout).",
)
@click.option(
    "--broker-role",
    default="GpuLaunchBroker",
    show_default=True,
    help="Role name exempt from the denies (the launch broker).",
)
@click.option(
    "--guard-role",
    default="GpuEnforcerGuard",
    show_default=True,
    help="Role the guard assumes in member accounts (protected with the broker role).",
)
@click.option(
    "--partition", type=click.Choice(["aws", "aws-us-gov", "aws-cn"]), default="aws", show_default=True
)
def scp_generate(out_dir: Path | None, broker_role: str, guard_role: str, partition: str) -> None:
    """Generate SCPs denying controlled instance types to everyone but the broker role."""
    from enforcer.scp import MAX_POLICIES_PER_TARGET, controlled_types, generate_scps, write_scps

    types = controlled_types()
    try:
        docs = generate_scps(types, broker_role=broker_role, guard_role=guard_role, partition=partition)
    except InputError as exc:
        fail(str(exc))
    if out_dir is None:
        for doc in docs:
            click.echo(json.dumps(doc, separators=(",", ":")))
    else:
        for path in write_scps(docs, out_dir):
            click.echo(f"wrote {path}", err=True)
    sizes = ", ".join(str(len(json.dumps(d, separators=(",", ":")))) for d in docs)
    click.echo(
        f"{len(docs)} policy document(s), {len(types)} controlled types, sizes {sizes} chars", err=True
    )
    if len(docs) > MAX_POLICIES_PER_TARGET:
        click.echo(
            f"warning: more than {MAX_POLICIES_PER_TARGET} SCPs; attach them at different OU levels", err=True
        )
