"""The ``enforcer`` command. Sub-command groups live beside their libraries and are attached here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from enforcer.cli_common import DEFAULT_STATE, CliState, engine_options, fail, parse_now
from enforcer.model import InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


# -- catalog -------------------------------------------------------------------------------
@cli.group()
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
    from enforcer.cli_views import catalog_table

    catalog_table(chip_class, show_all, as_json)


# -- accounts ------------------------------------------------------------------------------
@cli.group()
def account() -> None:
    """Account directory (the state directory's file, or the stack's DynamoDB table with --backend aws)."""


@account.command("add")
@click.argument("account_id")
@click.option("--country", required=True)
@click.option("--hq-country")
@click.option("--parent-hq-country")
@click.option("--reseller")
@click.option("--kyc", type=click.Choice(["verified", "pending", "none"]), default="none", show_default=True)
@click.option("--name")
@click.option("--parent", help="Name of the ultimate parent (screened; a ledger owner).")
@click.pass_obj
def account_add(
    obj: CliState,
    account_id: str,
    country: str,
    hq_country: str | None,
    parent_hq_country: str | None,
    reseller: str | None,
    kyc: str,
    name: str | None,
    parent: str | None,
) -> None:
    """Add or replace ACCOUNT_ID in the directory."""
    from enforcer.account_import import directory_for
    from enforcer.accounts import origin_from_dict

    try:
        origin = origin_from_dict(
            {
                "account_id": account_id,
                "country": country,
                "hq_country": hq_country or country,
                "parent_hq_country": parent_hq_country or hq_country or country,
                "kyc": kyc,
                "reseller": reseller,
                "name": name,
                "parent": parent,
            }
        )
    except InputError as exc:
        fail(str(exc))
    directory_for(obj).put(origin)
    click.echo(json.dumps(origin.to_dict()))


@account.command("list")
@click.pass_obj
def account_list(obj: CliState) -> None:
    """List every account."""
    from enforcer.account_import import directory_for, list_accounts
    from enforcer.cli_views import accounts_table

    try:
        accounts_table(list_accounts(directory_for(obj)))
    except InputError as exc:
        fail(str(exc))


@account.command("show")
@click.argument("account_id")
@click.pass_obj
def account_show(obj: CliState, account_id: str) -> None:
    """Show one account as JSON (exit 2 if unknown)."""
    from enforcer.account_import import directory_for

    try:
        origin = directory_for(obj).get(account_id)
    except InputError as exc:
        fail(str(exc))
    if origin is None:
        fail(f"account {account_id} is not in the directory")
    click.echo(json.dumps(origin.to_dict(), indent=2))


from enforcer.cli_accounts import account_import  # noqa: E402  (registers on ``account``)

account.add_command(account_import)


# -- policy --------------------------------------------------------------------------------
@cli.group()
def policy() -> None:
    """Policy authoring: test, push to an OPA server."""


@policy.command("test")
@click.argument("policy_dir", required=False, type=click.Path(path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="List every test, not only failures.")
@click.option("-r", "--run", default=None, help="Only tests whose data.<package>.<name> matches this regex.")
@click.option(
    "--explain",
    type=click.Choice(["fails", "notes", "full"]),
    default=None,
    help="Show the failing expressions, the notes, or the full trace.",
)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(["pretty", "json"]), default="pretty", show_default=True
)
@click.option(
    "--check/--no-check",
    "check",
    default=True,
    show_default=True,
    help="Run `policy check` on the data first (--no-check: plain `opa test` on any directory).",
)
def policy_test(
    policy_dir: Path | None, verbose: bool, run: str | None, explain: str | None, fmt: str, check: bool
) -> None:
    """Run the Rego tests (test_ rules of *_test.rego) on the embedded engine, like `opa test`.

    Exit 0 when all pass, 2 when a test fails, 1 when the policies do not compile (each error once).
    """
    from enforcer.policy.check import run_check
    from enforcer.policy.test_cli import run_policy_tests

    checked = run_check(policy_dir, quiet_ok=True) if check else 0  # data errors first: they change tests
    if checked:
        sys.exit(checked)
    sys.exit(run_policy_tests(policy_dir, verbose, run, explain, fmt))


@policy.command("check")
@click.argument("policy_dir", required=False, type=click.Path(path_type=Path))
def policy_check(policy_dir: Path | None) -> None:
    """Validate every data file of POLICY_DIR (default policies/) against its JSON schema and the Rego.

    Exit 0 when sound, 2 naming each problem on stderr (unknown keys, non-ISO countries, strings for
    numbers, reason codes missing from reasons/data.json, undated or unsourced group entries ...).
    """
    from enforcer.policy.check import run_check

    sys.exit(run_check(policy_dir))


# -- decide --------------------------------------------------------------------------------
@cli.command()
@click.argument("event_file", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--now", default=None, help="Decision time (RFC 3339), for attestation validity.")
@click.option("--mode", type=click.Choice(["enforce", "dryrun"]), default="enforce", show_default=True)
@engine_options
@click.pass_obj
def decide(
    obj: CliState,
    event_file: Path,
    now: str | None,
    mode: str,
    engine: str,
    opa_url: str | None,
    policy_dir: Path | None,
) -> None:
    """Decide on one launch EVENT_FILE (JSON; - for stdin) and log the decision.

    Exit 0 allow or audit, 3 deny, 2 bad input, 1 audit log failure (treated as deny).
    """
    from enforcer.cli_views import decide_command

    sys.exit(decide_command(obj, event_file, parse_now(now), mode, engine, opa_url, policy_dir))


def _attach_groups() -> None:
    """Attach the command groups that live beside their libraries."""
    from enforcer.audit.cli import audit_group
    from enforcer.audit.ingest_cli import ingest_command
    from enforcer.cli_attest import attest_group, reseller_group
    from enforcer.cli_licence import licence_group
    from enforcer.cli_ops import scp_group
    from enforcer.cli_replay import replay_command
    from enforcer.coverage.cli import coverage_command
    from enforcer.demo import demo_command
    from enforcer.policy.cli import build_command, eval_command, push_command, sign_command, verify_command

    for cmd in (attest_group, reseller_group, audit_group, scp_group, replay_command, demo_command):
        cli.add_command(cmd)
    cli.add_command(coverage_command)
    cli.add_command(licence_group)
    from enforcer.cli_evidence import ledger_group, screening_group

    cli.add_command(screening_group)
    cli.add_command(ledger_group)
    audit_group.add_command(ingest_command)
    for cmd in (push_command, sign_command, verify_command, build_command, eval_command):
        policy.add_command(cmd)


_attach_groups()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="enforcer")
