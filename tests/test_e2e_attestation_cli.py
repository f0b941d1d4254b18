"""Issue 3 end to end through the CLI, as a reseller and an operator would run it:
keygen -> reseller add -> account add -> sign -> submit -> decide, then revoke."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli
from tests.conftest import EVENTS

ACCOUNT = "111122223333"  # the account in cloudtrail_runinstances.json (p5.48xlarge)
NOW = "2026-11-26T10:00:00Z"


def run(state: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--state", str(state), *args])
    assert "Traceback" not in res.output
    return res


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    state, key = tmp_path / "state", tmp_path / "reseller.pem"
    res = run(state, "attest", "keygen", "--out", str(key), "--alg", "ES256")
    assert res.exit_code == 0, res.output
    pub = tmp_path / "reseller.pub.pem"
    pub.write_text(res.stdout)
    assert (
        run(
            state,
            "reseller",
            "add",
            "lionbridge-sg",
            "--public-key",
            str(pub),
            "--kid",
            "lb-2026",
            "--country",
            "SG",
            "--hq-country",
            "SG",
            "--parent-hq-country",
            "SG",
        ).exit_code
        == 0
    )
    assert (
        run(state, "account", "add", ACCOUNT, "--country", "SG", "--reseller", "lionbridge-sg").exit_code == 0
    )
    return {"state": state, "key": key, "dir": tmp_path}


def sign_and_submit(w: dict[str, Path], parent_hq: str) -> str:
    res = run(
        w["state"],
        "attest",
        "sign",
        "--key",
        str(w["key"]),
        "--kid",
        "lb-2026",
        "--issuer",
        "lionbridge-sg",
        "--account",
        ACCOUNT,
        "--end-customer-country",
        "SG",
        "--end-customer-hq-country",
        "SG",
        "--end-customer-parent-hq-country",
        parent_hq,
        "--end-customer-kyc-level",
        "verified",
        "--end-use",
        "LLM fine-tuning",
        "--now",
        NOW,
    )
    assert res.exit_code == 0, res.output
    token = w["dir"] / f"att-{parent_hq}.jwt"
    token.write_text(res.stdout)
    sub = run(w["state"], "attest", "submit", str(token), "--now", NOW)
    assert sub.exit_code == 0, sub.output
    return str(sub.stdout.strip())


def event_with(w: dict[str, Path], jti: str, event_id: str = "evt-1") -> Path:
    """The RunInstances fixture, carrying the attestation id in its gpu-attestation tag."""
    text = (EVENTS / "cloudtrail_runinstances.json").read_text()
    event = json.loads(text)
    event["id"] = event_id
    for spec in event["detail"]["requestParameters"]["tagSpecificationSet"]["items"]:
        for tag in spec["tags"]:
            if tag["key"] == "gpu-attestation":
                tag["value"] = jti
    f = w["dir"] / f"{event_id}.json"
    f.write_text(json.dumps(event))
    return f


def decide(w: dict[str, Path], event: Path) -> tuple[int, dict[str, Any]]:
    res = run(w["state"], "decide", str(event), "--now", "2026-11-27T00:00:00Z")
    return res.exit_code, json.loads(res.stdout)


def test_singapore_end_customer_allowed(world: dict[str, Path]) -> None:
    jti = sign_and_submit(world, "SG")
    code, doc = decide(world, event_with(world, jti))
    assert code == 0 and doc["effect"] == "allow", doc
    assert doc["attestation"]["status"] == "valid" and doc["attestation"]["issuer"] == "lionbridge-sg"


def test_parent_in_china_denied(world: dict[str, Path]) -> None:
    jti = sign_and_submit(world, "CN")
    code, doc = decide(world, event_with(world, jti))
    assert code == 3 and [r["code"] for r in doc["reasons"]] == ["END_CUSTOMER_RESTRICTED"]


def test_denied_after_key_revoked_and_all_audited(world: dict[str, Path]) -> None:
    jti = sign_and_submit(world, "SG")
    assert decide(world, event_with(world, jti))[0] == 0
    assert run(world["state"], "reseller", "revoke-key", "lionbridge-sg", "lb-2026").exit_code == 0
    # a new launch (new event id); the first one's id is already logged (at-least-once dedup)
    code, doc = decide(world, event_with(world, jti, "evt-2"))
    assert code == 3
    assert [r["code"] for r in doc["reasons"]] == ["ATTESTATION_KEY_REVOKED"]
    verify = run(world["state"], "audit", "verify")
    assert verify.exit_code == 0, verify.output
    assert "2 records" in verify.output


def test_same_event_twice_logs_once(world: dict[str, Path]) -> None:
    jti = sign_and_submit(world, "SG")
    _, first = decide(world, event_with(world, jti))
    _, second = decide(world, event_with(world, jti))
    assert second.get("duplicate_of") == first["decision_id"]
    assert "1 records" in run(world["state"], "audit", "verify").output


def test_launch_naming_an_unknown_attestation_is_missing(world: dict[str, Path]) -> None:
    sign_and_submit(world, "SG")
    code, doc = decide(world, event_with(world, "att-that-was-never-submitted"))
    assert code == 3 and [r["code"] for r in doc["reasons"]] == ["ATTESTATION_MISSING"]
