"""Bulk import into the account directory: AWS Organizations (moto) and CSV, local and DynamoDB backends."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from enforcer.account_import import csv_rows, import_rows, list_accounts, organizations_rows
from enforcer.accounts import LocalAccountDirectory
from enforcer.accounts_aws import DynamoDBAccountDirectory, create_accounts_table
from enforcer.cli import cli
from enforcer.model import InputError

REGION = "us-east-1"


def test_organizations_import_reads_ids_names_and_origin_tags() -> None:
    with mock_aws():
        org = boto3.client("organizations", region_name=REGION)
        org.create_organization(FeatureSet="ALL")
        ids = {}
        for name, tags in (
            ("research-de", {"origin:country": "de", "kyc:status": "verified", "reseller:id": "acme"}),
            ("lab-cn", {"origin:country": "CN", "origin:hq-country": "CN"}),
            ("untagged", {}),
            ("bad-country", {"origin:country": "Germany"}),
        ):
            acct = org.create_account(AccountName=name, Email=f"{name}@example.com")
            aid = org.describe_create_account_status(
                CreateAccountRequestId=acct["CreateAccountStatus"]["Id"]
            )["CreateAccountStatus"]["AccountId"]
            if tags:
                org.tag_resource(ResourceId=aid, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
            ids[name] = aid
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_accounts_table(ddb, "accounts")
        directory = DynamoDBAccountDirectory(ddb, "accounts")
        result = import_rows(directory, organizations_rows(org))
        de = directory.get(ids["research-de"])
        assert de is not None and (de.country, de.kyc, de.reseller, de.name) == (
            "DE",
            "verified",
            "acme",
            "research-de",
        )
        cn = directory.get(ids["lab-cn"])
        assert cn is not None and cn.country == "CN" and cn.parent_hq_country == "CN"
        # no origin tag, or a malformed one: not imported, so those accounts stay ACCOUNT_UNKNOWN
        assert directory.get(ids["untagged"]) is None and directory.get(ids["bad-country"]) is None
        skipped = dict(result.skipped)
        assert any(ids["untagged"] in k for k in skipped) and any(ids["bad-country"] in k for k in skipped)
        listed = {o.account_id for o in list_accounts(directory)}
        assert listed == {ids["research-de"], ids["lab-cn"]} | {  # the management account, if tagged
            o.account_id for o in list_accounts(directory) if o.account_id not in ids.values()
        }


def test_csv_import_validates_every_row_like_account_add(tmp_path: Path) -> None:
    directory = LocalAccountDirectory(tmp_path / "accounts.json")
    data = (
        "\ufeffaccount_id,country,hq_country,kyc,reseller,name\n"
        "111122223333,us,,verified,,lab\n"
        "11112222333,US,,,,short id\n"
        "222233334444,XX,,,,not a country\n"
        "333344445555,DE,DE,maybe,,bad kyc\n"
        '444455556666,FR,,none,,"=HYPERLINK(""http://x"")"\n'
        "555566667777,,,,,\n"
        f"666677778888,US,,,,{'x' * 300}\n"
    ).encode()
    result = import_rows(directory, csv_rows(data))
    assert result.imported == ["111122223333", "444455556666"]
    assert [label.split()[1] for label, _ in result.skipped] == ["3", "4", "5", "7", "8"]
    lab = directory.get("111122223333")
    assert lab is not None and (lab.country, lab.hq_country, lab.parent_hq_country) == ("US", "US", "US")
    fr = directory.get("444455556666")
    assert fr is not None and fr.name == '=HYPERLINK("http://x")'  # stored as data, never evaluated


@pytest.mark.parametrize(
    "data",
    [
        b"id,country\n111122223333,US\n",  # no account_id column
        b"account_id,country,admin\n111122223333,US,1\n",  # unknown column
        b"account_id,country\n\xff\xfe\n",  # not UTF-8
        b"account_id,country\n" + b"1" * 200_000 + b",US\n",  # a field over csv's limit
    ],
)
def test_csv_import_refuses_an_unusable_file(data: bytes) -> None:
    with pytest.raises(InputError):
        list(csv_rows(data))


def test_cli_import_exit_codes(tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("account_id,country\n111122223333,US\n")
    runner = CliRunner()
    ok = runner.invoke(cli, ["--state", str(tmp_path), "account", "import", "--csv", str(csv_file)])
    assert ok.exit_code == 0 and json.loads(ok.output) == {"imported": 1, "skipped": []}
    listed = runner.invoke(cli, ["--state", str(tmp_path), "account", "show", "111122223333"])
    assert json.loads(listed.output)["country"] == "US"
    both = runner.invoke(cli, ["--state", str(tmp_path), "account", "import"])
    assert both.exit_code == 2 and "exactly one" in both.output
    bad = tmp_path / "b.csv"
    bad.write_text("who,country\n1,US\n")
    refused = runner.invoke(cli, ["--state", str(tmp_path), "account", "import", "--csv", str(bad)])
    assert refused.exit_code == 2 and "account_id" in refused.output


def test_aws_backend_without_a_stack_is_one_clear_line() -> None:
    with mock_aws():
        r = CliRunner().invoke(cli, ["--backend", "aws", "--stack", "nope", "account", "list"])
    assert r.exit_code == 2 and "cannot read stack 'nope'" in r.output and "Traceback" not in r.output


def test_skipped_rows_are_reported_without_terminal_control_characters() -> None:
    data = b"account_id,country\n\x1b[2J\x1b]0;owned\x07,US\n"
    result = import_rows(LocalAccountDirectory(Path("/nonexistent/accounts.json")), csv_rows(data))
    ((label, _why),) = result.skipped
    assert "\x1b" not in label and "\\x1b" in label
