"""Licences as first-class data: ``enforcer licence add|list|revoke``, local and DynamoDB stores, and
a CN-origin account holding a licence for p5 through ``enforcer decide`` (LICENSED while valid, denied
after expiry or revocation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from enforcer.cli import cli
from enforcer.licences import DynamoDBLicenceStore, Licence, LicenceError, create_licence_table
from tests.conftest import EVENTS

ACCOUNT = "111122223333"  # recipientAccountId of tests/events/cloudtrail_runinstances.json (p5.48xlarge)
EVENT = EVENTS / "cloudtrail_runinstances.json"


def run(state: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--state", str(state), *args])


@pytest.fixture
def state(tmp_path: Path) -> Path:
    s = tmp_path / "state"
    assert run(s, "account", "add", ACCOUNT, "--country", "CN", "--kyc", "verified").exit_code == 0
    return s


def add_licence(state: Path, *extra: str, lid: str = "BIS-D123456") -> Any:
    return run(state, "licence", "add", lid, "--account", ACCOUNT, "--end-customer", "Example AI Lab",
               "--countries", "CN", "--classes", "3A090.a", "--max-tpp", "2000000",
               "--valid-from", "2026-01-15", "--expires", "2027-01-15",
               "--evidence", "https://example.invalid/licences/D123456.pdf", *extra)  # fmt: skip


def decide(state: Path, now: str) -> tuple[int, dict[str, Any]]:
    """Decide on a fresh copy of the event (a redelivered event is answered as logged)."""
    event = json.loads(EVENT.read_text())
    n = len(list(state.glob("event-*.json")))
    event["id"] = f"{event['id']}-{n}"
    event["detail"]["eventID"] = f"{event['detail'].get('eventID', 'e')}-{n}"
    f = state / f"event-{n}.json"
    f.write_text(json.dumps(event))
    res = run(state, "decide", str(f), "--now", now)
    assert res.exit_code in (0, 3), res.output
    return res.exit_code, json.loads(res.stdout)


def codes(doc: dict[str, Any]) -> set[str]:
    return {r["code"] for r in doc["reasons"]}


def test_cn_account_with_a_p5_licence_is_licensed_while_valid(state: Path) -> None:
    code, doc = decide(state, "2026-12-01T00:00:00Z")
    assert code == 3 and codes(doc) == {"ORIGIN_RESTRICTED"}

    added = add_licence(state)
    assert added.exit_code == 0, added.output
    code, doc = decide(state, "2026-12-01T00:00:00Z")
    assert code == 0 and doc["effect"] == "audit" and codes(doc) == {"LICENSED"}
    assert "BIS-D123456" in doc["reasons"][0]["message"]

    # before it starts and once it has expired it covers nothing
    assert decide(state, "2026-01-14T23:59:59Z")[1]["effect"] == "deny"
    code, doc = decide(state, "2027-01-15T00:00:00Z")
    assert code == 3 and codes(doc) == {"ORIGIN_RESTRICTED"}

    revoked = run(state, "licence", "revoke", "BIS-D123456", "--now", "2026-12-02T00:00:00Z")
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["status"] == "revoked"
    code, doc = decide(state, "2026-12-03T00:00:00Z")
    assert code == 3 and codes(doc) == {"ORIGIN_RESTRICTED"}
    # replaying a launch from before the revocation still finds it covered
    assert codes(decide(state, "2026-12-01T12:00:00Z")[1]) == {"LICENSED"}


def test_licence_scope_is_never_widened(state: Path) -> None:
    assert (
        add_licence(
            state,
            lid="L-B",
        ).exit_code
        == 0
    )
    run(state, "licence", "revoke", "L-B", "--now", "2026-11-30T00:00:00Z")
    for extra, lid in (
        (["--classes", "3A090.b"], "L-classes"),  # p5 is 3A090.a
        (["--max-tpp", "1000"], "L-tpp"),  # p5.48xlarge is ~126,650 TPP
    ):
        args = [
            "licence",
            "add",
            lid,
            "--account",
            ACCOUNT,
            "--countries",
            "CN",
            "--expires",
            "2027-01-01",
            *extra,
        ]
        assert run(state, *args).exit_code == 0
    other = [
        "licence",
        "add",
        "L-other",
        "--account",
        "999999999999",
        "--countries",
        "CN",
        "--expires",
        "2027-01-01",
    ]
    assert run(state, *other).exit_code == 0
    ru = ["licence", "add", "L-ru", "--account", ACCOUNT, "--countries", "RU", "--expires", "2027-01-01"]
    assert run(state, *ru).exit_code == 0
    assert codes(decide(state, "2026-12-01T00:00:00Z")[1]) == {"ORIGIN_RESTRICTED"}


def test_list_and_bad_input(state: Path) -> None:
    assert add_licence(state).exit_code == 0
    listed = run(state, "licence", "list")
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert [r["licence_id"] for r in rows] == ["BIS-D123456"] and rows[0]["end_customer"] == "Example AI Lab"
    assert add_licence(state).exit_code == 2  # the id is taken
    for bad in (["--countries", "China"], ["--countries", "XX"], ["--classes", "4A090.a"],
                ["--max-tpp", "-5"], ["--expires", "next year"], ["--account", "12345"],
                ["--valid-from", "2028-01-01"]):  # fmt: skip
        args = [
            "licence",
            "add",
            "L-bad",
            "--account",
            ACCOUNT,
            "--countries",
            "CN",
            "--expires",
            "2027-01-01",
        ]
        for i in range(0, len(bad), 2):
            at = args.index(bad[i]) if bad[i] in args else None
            if at is None:
                args += bad[i : i + 2]
            else:
                args[at + 1] = bad[i + 1]
        res = run(state, *args)
        assert res.exit_code == 2 and res.stderr.startswith("error:") and "Traceback" not in res.output, bad
    assert run(state, "licence", "revoke", "NOPE").exit_code == 2


def test_licence_input_carries_scope_but_no_names(state: Path) -> None:
    assert add_licence(state).exit_code == 0
    decide(state, "2026-12-01T00:00:00Z")
    audit = state / "audit"
    text = "".join(p.read_text() for p in audit.glob("*.jsonl"))
    assert "BIS-D123456" in text and "Example AI Lab" not in text


@mock_aws
def test_dynamodb_store() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = create_licence_table(client, "gle-")
    store = DynamoDBLicenceStore(client, table)
    lic = Licence("L-1", ACCOUNT, ("CN", "HK"), "2027-01-01T00:00:00Z", ("3A090.a",), 200000.0)
    store.add(lic)
    with pytest.raises(LicenceError):
        store.add(lic)
    store.add(Licence("L-2", "999999999999", ("RU",), "2027-01-01T00:00:00Z"))
    assert [x.licence_id for x in store.entries()] == ["L-1", "L-2"]
    assert store.for_account(ACCOUNT) == [
        {"id": "L-1", "account_id": ACCOUNT, "countries": ["CN", "HK"], "expires": "2027-01-01T00:00:00Z",
         "status": "active", "classes": ["3A090.a"], "max_tpp": 200000.0}
    ]  # fmt: skip
    revoked = store.revoke("L-1", "2026-12-01T00:00:00Z")
    assert revoked.status == "revoked" and store.for_account(ACCOUNT)[0]["status"] == "revoked"
    with pytest.raises(LicenceError):
        store.revoke("L-9", "2026-12-01T00:00:00Z")


def test_cli_writes_the_dynamodb_register_the_handlers_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb")
        create_licence_table(client, "gle-")
        args = ["licence", "--registry-prefix", "gle-", "add", "L-ddb", "--account", ACCOUNT, "--countries", "CN",
                "--expires", "2099-01-01"]  # fmt: skip
        assert run(tmp_path, *args).exit_code == 0
        store = DynamoDBLicenceStore(client, "gle-licences")
        assert [x["id"] for x in store.for_account(ACCOUNT)] == ["L-ddb"]
        monkeypatch.setenv("ENFORCER_REGISTRY_PREFIX", "gle-")  # the handlers' setting works too
        assert run(tmp_path, "licence", "revoke", "L-ddb").exit_code == 0
        assert store.for_account(ACCOUNT)[0]["status"] == "revoked"
        assert not (tmp_path / "registry" / "licences.json").exists()
