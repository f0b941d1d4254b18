"""Origin evidence the account does not control: caller IP country (a real MMDB), contact address
(the Account Management API's shape, validated by botocore), the share of recent calls per country."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from enforcer.cli import cli
from enforcer.evidence.collect import Observer
from enforcer.evidence.contact import ContactCountries
from enforcer.evidence.geoip import GeoIp, parse_ip
from enforcer.intake import normalise
from enforcer.ledger.sink import LedgerAuditSink
from enforcer.ledger.store import LocalLedgerStore
from enforcer.model import AccountOrigin, InputError
from tests.evidence_support import build_mmdb, runinstances

ACCOUNT = "111122223333"
CN_IP, US_IP = "198.51.100.23", "203.0.113.7"
NOW = "2026-11-30T10:00:05Z"


def run(state: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--state", str(state), *args])


@pytest.fixture
def mmdb(tmp_path: Path) -> Path:
    return build_mmdb(tmp_path / "geo.mmdb")


def codes(doc: dict[str, Any]) -> list[str]:
    return [r["code"] for r in doc["reasons"]]


# -- the MMDB reader -----------------------------------------------------------------------------


def test_mmdb_lookups_both_record_shapes(tmp_path: Path) -> None:
    geo = GeoIp(build_mmdb(tmp_path / "a.mmdb"))
    assert geo.country(CN_IP) == "CN" and geo.country(US_IP) == "US"
    assert geo.country("2001:db8::1") == "DE"
    assert geo.country("8.8.8.8") is None  # not in the database: no signal, never a guess
    assert geo.source.startswith("mmdb:GeoLite2-Country (")
    flat = GeoIp(build_mmdb(tmp_path / "b.mmdb", flat=True))  # IPinfo/DB-IP "lite" records
    assert flat.country(CN_IP) == "CN"


def test_not_an_mmdb_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.mmdb"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(InputError, match="cannot open MMDB"):
        GeoIp(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("198.51.100.23", "198.51.100.23"),
        ("2001:DB8::1", "2001:db8::1"),
        ("ec2.amazonaws.com", None),  # a service called on the account's behalf
        ("AWS Internal", None),
        ("198.51.100.23\n", "198.51.100.23"),
        ("1" * 100, None),
        (None, None),
        (12, None),
    ],
)
def test_source_ip_parsing(value: Any, expected: str | None) -> None:
    assert parse_ip(value) == expected


# -- Done-when: a declared-US account launching from a CN address ---------------------------------


def test_declared_us_account_calling_from_cn_gets_origin_signal_conflict(
    tmp_path: Path, mmdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENFORCER_GEOIP_DB", str(mmdb))
    state = tmp_path / "state"
    assert run(state, "account", "add", ACCOUNT, "--country", "US", "--kyc", "verified").exit_code == 0
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps(runinstances(CN_IP, event_id="e-cn-1")))
    res = run(state, "decide", str(ev), "--now", NOW)
    assert res.exit_code == 0, res.output  # audit by default
    doc = json.loads(res.stdout)
    assert doc["effect"] == "audit" and codes(doc) == ["ORIGIN_SIGNAL_CONFLICT"]
    msg = doc["reasons"][0]["message"]
    assert "declared US" in msg and "caller_ip CN" in msg and "mmdb:GeoLite2-Country" in msg
    caller = doc["evidence"]["caller"]
    assert caller == {
        "ip": CN_IP,
        "country": "CN",
        "source": caller["source"],
        "time": "2026-11-30T10:00:00Z",
    }
    # the same account from a US address: nothing to say
    ev.write_text(json.dumps(runinstances(US_IP, event_id="e-us-1")))
    doc = json.loads(run(state, "decide", str(ev), "--now", NOW).stdout)
    assert doc["effect"] == "allow"


def test_most_calls_from_cn_deny(tmp_path: Path, mmdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the CN share of the account's recent calls passes deny_share (and min_calls), deny."""
    monkeypatch.setenv("ENFORCER_GEOIP_DB", str(mmdb))
    state = tmp_path / "state"
    run(state, "account", "add", ACCOUNT, "--country", "US", "--kyc", "verified")
    effects = []
    for n in range(7):  # t3 launches: recorded calls, no controlled chip
        ev = tmp_path / f"ev{n}.json"
        ev.write_text(json.dumps(runinstances(CN_IP if n % 4 else US_IP, event_id=f"e{n}", itype="t3.micro")))
        effects.append(json.loads(run(state, "decide", str(ev), "--now", NOW).stdout)["effect"])
    assert effects == ["allow"] * 7  # uncontrolled: signals are not judged
    ev = tmp_path / "p5.json"
    ev.write_text(json.dumps(runinstances(US_IP, event_id="p5")))  # even from a US address now
    res = run(state, "decide", str(ev), "--now", NOW)
    doc = json.loads(res.stdout)
    assert res.exit_code == 3 and doc["effect"] == "deny"
    share = doc["evidence"]["call_share"]
    assert share["total"] == 7 and share["shares"]["CN"] == pytest.approx(5 / 7, abs=1e-3)
    assert "call_share CN" in doc["reasons"][0]["message"]


# -- contact address through the Account Management API ------------------------------------------


def _account_client() -> Any:
    return boto3.client("account", region_name="us-east-1")


def test_contact_country_from_get_contact_information() -> None:
    """Responses validated against botocore's service model (moto does not implement this API)."""
    client = _account_client()
    stub = Stubber(client)
    info = {
        "AddressLine1": "1 Example Road",
        "City": "Shenzhen",
        "CountryCode": "CN",
        "FullName": "Ops",
        "PhoneNumber": "+86-755-0000000",
        "PostalCode": "518000",
    }
    stub.add_response("get_contact_information", {"ContactInformation": info}, {"AccountId": ACCOUNT})
    stub.add_client_error("get_contact_information", "AccessDeniedException", http_status_code=403,
                          expected_params={"AccountId": "222233334444"})  # fmt: skip
    stub.add_client_error("get_contact_information", "TooManyRequestsException", http_status_code=429,
                          expected_params={"AccountId": "333344445555"})  # fmt: skip
    with stub:
        contacts = ContactCountries(client, own_account="999999999999")
        sig = contacts.signal(ACCOUNT, 1_796_032_800)
        assert sig == {
            "country": "CN",
            "source": "account:GetContactInformation",
            "time": "2026-11-30T10:00:00Z",
        }
        assert contacts.signal(ACCOUNT, 1_796_032_900) == sig  # cached: no second call
        assert contacts.signal("222233334444", 0) is None  # not permitted: no signal
        assert contacts.signal("333344445555", 0) is None and contacts.errors == 1  # throttled: counted
    stub.assert_no_pending_responses()


def test_contact_in_cn_denies_a_declared_us_account(make_enforcer: Any, tmp_path: Path) -> None:
    client = _account_client()
    stub = Stubber(client)
    stub.add_response("get_contact_information", {"ContactInformation": {
        "AddressLine1": "x", "City": "Beijing", "CountryCode": "CN", "FullName": "x", "PhoneNumber": "+86 1",
        "PostalCode": "100000"}})  # fmt: skip
    origin = AccountOrigin(ACCOUNT, "US", "US", "US", "verified")
    with stub:
        enf = make_enforcer(
            [origin], observer=Observer(contacts=ContactCountries(client, own_account=ACCOUNT))
        )
        req = normalise(runinstances(US_IP))
        d = enf.decide(req, 1_796_032_805)
    assert d.effect == "deny" and d.reason_codes == ["ORIGIN_SIGNAL_CONFLICT"]
    assert "contact_address CN" in d.reasons[0].message
    assert d.to_dict()["evidence"]["contact"]["source"] == "account:GetContactInformation"


def test_evidence_is_audited_with_its_source(tmp_path: Path, mmdb: Path, make_enforcer: Any) -> None:
    from enforcer.audit import open_local_store

    origin = AccountOrigin(ACCOUNT, "US", "US", "US", "verified")
    ledger = LocalLedgerStore(tmp_path / "ledger.json")
    audit = LedgerAuditSink(open_local_store(tmp_path / "audit", tmp_path / "keys"), ledger)
    enf = make_enforcer([origin], observer=Observer(geoip=GeoIp(mmdb), ledger=ledger), audit=audit)
    enf.enforce(normalise(runinstances(CN_IP, event_id="audited")), 1_796_032_805)
    audit.close()
    rec = json.loads(next((tmp_path / "audit").glob("segment-*.jsonl")).read_text().splitlines()[-1])
    assert rec["input"]["evidence"]["caller"]["country"] == "CN"
    assert rec["input"]["evidence"]["caller"]["source"].startswith("mmdb:")
    assert rec["result"]["reasons"][0]["code"] == "ORIGIN_SIGNAL_CONFLICT"


def test_report_shows_the_evidence_and_ledger_behind_each_reason(
    tmp_path: Path, mmdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENFORCER_GEOIP_DB", str(mmdb))
    state = tmp_path / "state"
    run(state, "account", "add", ACCOUNT, "--country", "US", "--kyc", "verified", "--name", "Acme <Research>")
    for n in range(2):
        ev = tmp_path / f"ev{n}.json"
        ev.write_text(json.dumps(runinstances(CN_IP, count=7, event_id=f"r{n}", region=("us-east-1", "eu-west-1")[n])))
        run(state, "decide", str(ev), "--now", NOW)
    html = tmp_path / "r.html"
    res = run(state, "audit", "report", "--html", str(html))
    assert res.exit_code == 0, res.output
    page = html.read_text()
    assert "Compute per beneficial owner" in page and "Acme &lt;Research&gt;" in page  # escaped label
    assert f"caller {CN_IP} CN (mmdb:GeoLite2-Country" in page
    assert "account 111122223333 1,773,094 TPP running" in page  # the second launch: the sum it was judged on
    assert "AGGREGATE_COMPUTE" in page and "ORIGIN_SIGNAL_CONFLICT" in page
