"""``enforcer demo``: the whole product end to end in a moto-simulated organisation (:mod:`enforcer.demo`)."""

from __future__ import annotations

import logging
import sys

import click
from rich.console import Console

from enforcer.cli.common import CliState


@click.command("demo")
@click.pass_obj
def demo_command(obj: CliState) -> None:
    """Run the end-to-end demo on a moto-simulated AWS organisation (no AWS account needed)."""
    from enforcer.demo import run_demo

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's access log
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    sys.exit(run_demo(obj.state, console))
