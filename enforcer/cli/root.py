"""The ``enforcer`` root group: global options, and the command groups it loads from :data:`COMMANDS`.

Each command group is one module of this package (``enforcer.cli.<group>``); to add one, write the
module and name it in :data:`COMMANDS` (docs/cli.md lists the conventions every command follows).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from enforcer.cli.common import DEFAULT_STATE, CliState, fail
from enforcer.model import InputError

#: Every command of the root group: name -> ``module:attribute``. A module is imported only when its
#: command runs (or ``--help`` lists them all), so ``enforcer decide`` does not load the audit report.
COMMANDS = {
    "decide": "enforcer.cli.decide:decide",
    "replay": "enforcer.cli.replay:replay_command",
    "catalog": "enforcer.cli.catalog:catalog",
    "account": "enforcer.cli.accounts:account",
    "attest": "enforcer.cli.attest:attest_group",
    "reseller": "enforcer.cli.reseller:reseller_group",
    "licence": "enforcer.cli.licence:licence_group",
    "screening": "enforcer.cli.evidence:screening_group",
    "ledger": "enforcer.cli.evidence:ledger_group",
    "policy": "enforcer.cli.policy:policy",
    "audit": "enforcer.cli.audit:audit_group",
    "coverage": "enforcer.cli.coverage:coverage_command",
    "scp": "enforcer.cli.scp:scp_group",
    "demo": "enforcer.cli.demo:demo_command",
}


class EnforcerGroup(click.Group):
    """The root group: an input or OS error no command caught is one line (exit 2), not a traceback.

    Exit codes (docs/cli.md): 0 allow or audit / success, 1 could not log (or write), 2 bad input,
    3 deny.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module from :data:`COMMANDS` on first use."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if command.name != cmd_name:
                raise RuntimeError(f"{COMMANDS[cmd_name]} is named {command.name!r}, not {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click reports these itself (usage errors are exit 2)
        except InputError as exc:
            fail(f"{exc.code}: {' '.join(str(exc).split())[:300]}")
        except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
            import contextlib
            import os
            import sys

            with contextlib.suppress(Exception):  # no later flush may fail on the closed pipe
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")  # a path the user named: bad input
        except Exception as exc:  # a bug: still one line (ENFORCER_DEBUG=1 shows the traceback)
            import os

            if os.environ.get("ENFORCER_DEBUG"):
                raise
            detail = " ".join(str(exc).split())[:300]
            fail(f"internal error: {type(exc).__name__}: {detail} (ENFORCER_DEBUG=1 for the traceback)", 1)


@click.group(cls=EnforcerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    envvar="ENFORCER_STATE",
    default=DEFAULT_STATE,
    show_default=True,
    help="State directory (accounts, registry, audit log).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "aws"]),
    envvar="ENFORCER_BACKEND",
    default="local",
    show_default=True,
    help="account, reseller, attest list/submit and audit verify|query|report|export: the state "
    "directory, or the deployed stack (DynamoDB, S3 Object Lock, KMS; docs/deploy.md).",
)
@click.option(
    "--stack",
    envvar="ENFORCER_STACK",
    default="gpu-enforcer",
    show_default=True,
    help="CloudFormation stack of infra/template.yaml (--backend aws reads its outputs).",
)
@click.version_option(package_name="gpu-launch-enforcer")
@click.pass_context
def cli(ctx: click.Context, state: Path, backend: str, stack: str) -> None:
    """GPU launch enforcer: export-control decisions for cloud GPU launches."""
    ctx.obj = CliState(state=state, backend=backend, stack=stack)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="enforcer")
