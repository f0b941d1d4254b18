"""`enforcer decide` as a user runs it: exit codes, one clear error line, audited decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli
from tests.conftest import EVENTS, ROOT

ACCOUNT = "111122223333"


def run(state: Path, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["--state", str(state), *args], input=input)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def add(state: Path, country: str, kyc: str = "verified", account: str = ACCOUNT, **kw: str) -> None:
    extra = [x for k, v in kw.items() for x in (f"--{k.replace('_', '-')}", v)]
    res = run(state, "account", "add", account, "--country", country, "--kyc", kyc, *extra)
    assert res.exit_code == 0, res.output


def test_us_verified_allowed_exit_0(state: Path) -> None:
    add(state, "US")
    res = run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json"))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["effect"] == "allow" and doc["enforced"] is True
    assert set(doc) >= {"decision_id", "timestamp", "effect", "enforced", "reasons", "request", "policy"}
    assert doc["request"]["items"][0]["chip_class"] == "3A090.a"
    assert doc["policy"]["engine"] == "embedded"


def test_cn_origin_denied_exit_3(state: Path) -> None:
    add(state, "CN")
    res = run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json"), "--mode", "dryrun")
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["effect"] == "deny" and doc["enforced"] is False
    assert "ORIGIN_RESTRICTED" in [r["code"] for r in doc["reasons"]]


def test_unknown_account_denied(state: Path) -> None:
    res = run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json"))
    assert res.exit_code == 3
    assert [r["code"] for r in json.loads(res.stdout)["reasons"]] == ["ACCOUNT_UNKNOWN"]


def test_reseller_account_without_attestation_denied(state: Path) -> None:
    add(state, "SG", kyc="none", reseller="acme-cloud")
    res = run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json"))
    assert res.exit_code == 3
    assert [r["code"] for r in json.loads(res.stdout)["reasons"]] == ["ATTESTATION_MISSING"]


def test_failed_call_is_recognised_not_decided(state: Path) -> None:
    res = run(state, "decide", str(EVENTS / "cloudtrail_failed_call.json"))
    assert res.exit_code == 0
    assert json.loads(res.stdout)["decided"] is False


def test_decide_from_stdin(state: Path) -> None:
    add(state, "US")
    res = run(state, "decide", "-", input=(EVENTS / "cloudtrail_runinstances.json").read_text())
    assert res.exit_code == 0 and json.loads(res.stdout)["effect"] == "allow"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"detail-type": "AWS API Call via CloudTrail", "detail": {', "JSON"),
        ("[1, 2, 3]", ""),
        (
            '{"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": {"eventName": 5}}',
            "",
        ),
        ('{"hello": "world"}', ""),
        ("", ""),
    ],
)
def test_malformed_events_exit_2_with_one_line(
    state: Path, tmp_path: Path, content: str, needle: str
) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content)
    res = run(state, "decide", str(f))
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in res.output and needle in lines[0]


def test_ten_megabyte_payload_exit_2(state: Path, tmp_path: Path) -> None:
    f = tmp_path / "huge.json"
    f.write_text('{"detail": "' + "A" * (10 * 1024 * 1024) + '"}')
    res = run(state, "decide", str(f))
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_file_exit_2(state: Path) -> None:
    res = run(state, "decide", "/no/such/event.json")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1


def test_bad_now_exit_2(state: Path) -> None:
    res = run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json"), "--now", "yesterday")
    assert res.exit_code == 2


def test_every_fixture_decides_without_crashing(state: Path) -> None:
    add(state, "US")
    for f in sorted(EVENTS.glob("*.json")):
        res = run(state, "decide", str(f))
        assert res.exit_code in (0, 2, 3), (f.name, res.output)
        assert "Traceback" not in res.output, f.name


def test_catalog_classify_contract() -> None:
    res = CliRunner().invoke(cli, ["catalog", "classify", "p5.48xlarge"])
    doc = json.loads(res.stdout)
    assert set(doc) == {"instance_type", "accelerators", "chip_class", "total_tpp"}
    assert doc["accelerators"][0] == {
        "model": "H100",
        "count": 8,
        "tpp": 15831.2,
        "pd": 19.45,
        "chip_class": "3A090.a",
    }


def test_catalog_list_filters_by_class() -> None:
    res = CliRunner().invoke(cli, ["catalog", "list", "--class", "indeterminate", "--json"])
    types = {json.loads(x)["instance_type"] for x in res.stdout.splitlines()}
    assert "trn1.32xlarge" in types and "p5.48xlarge" not in types


def test_account_add_list_show(state: Path) -> None:
    add(state, "sg", kyc="none", reseller="acme")
    shown = json.loads(run(state, "account", "show", ACCOUNT).stdout)
    assert shown["country"] == "SG" and shown["reseller"] == "acme"
    assert ACCOUNT in run(state, "account", "list").stdout
    assert run(state, "account", "show", "000000000000").exit_code == 2
    assert run(state, "account", "add", "12", "--country", "US").exit_code == 2


def test_policy_test_command_passes_and_fails(tmp_path: Path) -> None:
    from tests.conftest import POLICIES

    ok = CliRunner().invoke(cli, ["policy", "test", str(POLICIES)])
    assert ok.exit_code == 0 and "PASS:" in ok.stdout
    import shutil

    shutil.copytree(POLICIES, tmp_path / "p")
    cfg = tmp_path / "p" / "gpu" / "config" / "data.json"
    cfg.write_text(cfg.read_text().replace("1000000", "10"))
    bad = CliRunner().invoke(cli, ["policy", "test", str(tmp_path / "p")])
    assert bad.exit_code == 2 and "FAIL" in bad.stdout  # opa test's code for a failing test


def test_decide_and_replay_through_an_opa_server(state: Path, tmp_path: Path) -> None:
    """`--engine opa --opa-url`: the same decision through OPA's REST API, and a dead server fails closed."""
    from tests.opa_server import OpaTestServer, unused_port

    add(state, "CN", account="222233334444")
    add(state, "US")
    with OpaTestServer() as server:
        assert CliRunner().invoke(cli, ["policy", "push", "--opa-url", server.url]).exit_code == 0
        res = run(
            state,
            "decide",
            str(ROOT / "examples/events/runinstances-p5.json"),
            "--engine",
            "opa",
            "--opa-url",
            server.url,
        )
        assert res.exit_code == 0 and json.loads(res.stdout)["policy"]["engine"] == "opa"
        res = run(
            state,
            "decide",
            str(ROOT / "examples/events/runinstances-p5-cn.json"),
            "--engine",
            "opa",
            "--opa-url",
            server.url,
        )
        assert res.exit_code == 3 and "ORIGIN_RESTRICTED" in res.stdout
        rep = run(
            state,
            "replay",
            str(ROOT / "examples/cloudtrail"),
            "--engine",
            "opa",
            "--opa-url",
            server.url,
            "--out",
            str(tmp_path / "o.jsonl"),
        )
        assert rep.exit_code == 0 and "Replayed 500 events" in rep.output
    event = json.loads(Path(str(ROOT / "examples/events/runinstances-p5.json")).read_text())
    event["id"] = "another-launch"
    f = tmp_path / "ev.json"
    f.write_text(json.dumps(event))
    dead = f"http://127.0.0.1:{unused_port()}"
    res = run(state, "decide", str(f), "--engine", "opa", "--opa-url", dead)
    assert res.exit_code == 3
    assert [r["code"] for r in json.loads(res.stdout)["reasons"]] == ["POLICY_ENGINE_UNAVAILABLE"]


def test_policy_that_does_not_compile_is_exit_2_not_a_traceback(state: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package gpu.launch\n\ndecision := {\n")
    res = run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json"), "--policy", str(tmp_path))
    assert res.exit_code == 2 and "POLICY_LOAD_ERROR" in res.stderr and "Traceback" not in res.output


def test_replay_baseline_needs_the_embedded_engine(state: Path) -> None:
    res = run(
        state,
        "replay",
        str(ROOT / "examples/cloudtrail"),
        "--engine",
        "opa",
        "--baseline",
        str(ROOT / "policies"),
    )
    assert res.exit_code == 2 and "--baseline" in res.stderr
