"""``enforcer account add|list|show|import``: the account directory (local file or the stack's table)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from enforcer.cli.common import CliState, emit_records, fail, format_options, reads_state
from enforcer.model import AccountOrigin, InputError


@click.group("account")
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
@format_options()
@reads_state
@click.pass_obj
def account_list(obj: CliState, fmt: str) -> None:
    """List every account."""
    from enforcer.account_import import directory_for, list_accounts

    try:
        accounts = list_accounts(directory_for(obj))
    except InputError as exc:
        fail(str(exc))
    emit_records([a.to_dict() for a in accounts], fmt, lambda _rows: accounts_table(accounts))


@account.command("show")
@reads_state
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


@account.command("import")
@click.option(
    "--from-organizations",
    "from_org",
    is_flag=True,
    help="Every active account of the organisation: id, name and the origin:/kyc:/reseller: tags "
    "(run with management or delegated-administrator credentials).",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="CSV with a header: account_id,country[,hq_country,parent_hq_country,kyc,reseller,name,parent].",
)
@click.pass_obj
def account_import(obj: CliState, from_org: bool, csv_file: Path | None) -> None:
    """Import accounts in bulk into the directory (--backend aws: the stack's DynamoDB table).

    Accounts without a valid origin country are skipped and named on stderr (they stay
    ACCOUNT_UNKNOWN: controlled launches fail closed). Exit 0 when every row was imported, 1 when
    some were skipped, 2 on unusable input.
    """
    from enforcer.account_import import csv_rows, directory_for, import_rows, organizations_rows

    if from_org == (csv_file is not None):
        fail("give exactly one of --from-organizations or --csv FILE")
    try:
        directory = directory_for(obj)
        if csv_file is not None:
            try:
                data = sys.stdin.buffer.read() if str(csv_file) == "-" else csv_file.read_bytes()
            except OSError as exc:
                fail(f"cannot read {csv_file}: {exc.strerror or exc}")
            result = import_rows(directory, csv_rows(data))
        else:
            org = obj.aws().client("organizations")
            result = import_rows(directory, organizations_rows(org))
    except InputError as exc:
        fail(str(exc))
    except Exception as exc:  # AWS errors: one clear line, no traceback
        from enforcer.aws_errors import error_code

        fail(f"import failed: {error_code(exc) or type(exc).__name__}: {str(exc)[:200]}")
    for label, why in result.skipped:
        click.echo(f"skipped {label}: {why}", err=True)
    click.echo(json.dumps(result.to_dict()))
    if result.skipped:
        sys.exit(1)


def accounts_table(accounts: list[AccountOrigin]) -> None:
    """Print the account directory as a table."""
    table = Table(title="Account directory")
    for col in ("account", "name", "country", "HQ", "parent HQ", "KYC", "reseller"):
        table.add_column(col)
    for a in accounts:
        table.add_row(
            a.account_id,
            a.name or "",
            a.country or "",
            a.hq_country or "",
            a.parent_hq_country or "",
            a.kyc,
            a.reseller or "",
        )
    Console().print(table)
