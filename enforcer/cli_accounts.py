"""``enforcer account import``: bulk-fill the account directory from AWS Organizations or a CSV file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from enforcer.cli_common import CliState, fail
from enforcer.model import InputError


@click.command("import")
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
