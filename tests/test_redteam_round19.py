"""Red team, round 19: attacks from the outside on this round's changes (since commit 9c317c5).

One test per finding, named for it. Inputs are built without the authors' helpers: the real CLI
through click's runner, the real policy, botocore's own models. The old-vs-new policy differential
(focus area 1) is its own module: tests/test_policy_differential.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


# -- CLI: a mistyped --state read as an empty state by `replay` ------------------------------------
def test_replay_with_a_missing_state_folder_exits_2_instead_of_deciding_against_an_empty_directory(
    tmp_path: Path,
) -> None:
    """`replay` decides "with the current policy and STATE": the account directory, licences and
    attestation registry come from the state folder. A mistyped ``--state`` made it decide every
    launch against an empty directory (every account unknown) and exit 0. With ``--baseline`` both
    sides are then equally wrong, so a policy change that lets a D:5 account through shows as "no
    change" -- the preview hides exactly the decision the author needs to see. Every other reader of
    the state folder exits 2 (docs/cli.md); so must replay, before reading anything."""
    state = tmp_path / "mistyped"
    out = tmp_path / "o.jsonl"
    for extra in ([], ["--out", str(out)], ["--out", str(out), "--jobs", "2"]):
        res = CliRunner().invoke(cli, ["--state", str(state), "replay", str(EXAMPLES / "cloudtrail"), *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert "no state folder" in res.stderr
        assert not state.exists() and not out.exists()
    # with the folder there, the same replay runs (and decides against its accounts)
    state.mkdir()
    ok = CliRunner().invoke(
        cli, ["--state", str(state), "replay", str(EXAMPLES / "cloudtrail"), "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert out.exists()


# -- cold start: the full-model fallback of the trimmed EC2 model ---------------------------------
def test_full_model_client_built_first_is_not_the_trimmed_one(monkeypatch: Any) -> None:
    """``ClientFactory.full_session`` asked ``_trimmed`` before the base session existed: when the first
    client a container builds is a full-model one (a paginator of an operation outside the trimmed
    EC2 model, e.g. from a plugin or a future caller), it got the TRIMMED session, was cached under
    the "full" key, and every operation outside the 15 failed for the container's life (KeyError /
    AttributeError) -- the cross-model fallback the trimmed model relies on silently gone."""
    from enforcer.aws_models import trimmed_operations
    from enforcer.wiring.aws import ClientFactory

    ops = trimmed_operations("ec2")
    if ops is None:  # the trimmed model is only used with the botocore it was cut from
        pytest.fail(
            "trimmed EC2 model not in use with this botocore; regenerate (python -m enforcer.aws_models)"
        )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    factory = ClientFactory("us-east-1", home_account="123456789012")
    ec2 = factory.client("ec2")
    assert "describe_spot_price_history" not in ops
    paginator = ec2.get_paginator("describe_spot_price_history")  # no AWS call: building only
    assert paginator is not None
    full = factory.real_client("ec2", full=True)
    assert "DescribeSpotPriceHistory" in full.meta.service_model.operation_names
    assert callable(ec2.describe_spot_price_history)


# -- report: an unreadable record vanishes instead of being marked ---------------------------------
def _cli(state: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--state", str(state), *args])


def test_report_lists_an_unreadable_record_as_failed_instead_of_dropping_it(tmp_path: Path) -> None:
    """An insider appends a repeated member after a deny record's hash (``..."hash":"..","result":
    {"effect":"allow"}}``): the line no longer parses as a record. ``audit report --unverified`` then
    left the deny out of every row -- CSV and HTML -- and its "failed verification" card said 0, so
    the reviewer's spreadsheet had only the genuine allow and nothing marked in place of the deny.
    A record that cannot be read must be listed as a failed row (verified=no) and counted as failed."""
    state = tmp_path / "st"
    assert (
        _cli(state, "account", "add", "222233334444", "--country", "CN", "--kyc", "verified").exit_code == 0
    )
    assert (
        _cli(state, "account", "add", "222233334445", "--country", "US", "--kyc", "verified").exit_code == 0
    )
    us = json.loads((EXAMPLES / "events" / "runinstances-p5-cn.json").read_text())
    us["id"], us["detail"]["eventID"] = "us-1", "us-1"
    us["detail"]["recipientAccountId"] = us["account"] = "222233334445"
    us["detail"]["userIdentity"]["accountId"] = "222233334445"
    (tmp_path / "us.json").write_text(json.dumps(us))
    assert _cli(state, "decide", str(tmp_path / "us.json")).exit_code == 0
    assert _cli(state, "decide", str(EXAMPLES / "events" / "runinstances-p5-cn.json")).exit_code == 3
    seg = next((state / "audit").glob("segment-*.jsonl"))
    lines = seg.read_bytes().splitlines()
    assert json.loads(lines[-1])["result"]["effect"] == "deny"
    lines[-1] = lines[-1][:-1] + b',"result":{"effect":"allow","reasons":[]}}'
    seg.write_bytes(b"\n".join(lines) + b"\n")

    out = tmp_path / "r.csv"
    html = tmp_path / "r.html"
    res = _cli(state, "audit", "report", "--csv", str(out), "--html", str(html), "--unverified")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert len(rows) == 2, rows  # the genuine allow, and a row in place of the unreadable deny
    assert rows[0]["verified"] == "yes" and rows[0]["effect"] == "allow"
    assert rows[1]["verified"] == "no" and "unreadable" in rows[1]["verification_failure"]
    assert rows[1]["effect"] != "allow"  # never the forged content
    page = html.read_text(encoding="utf-8")
    assert "<span>failed verification</span><b>1</b>" in page
    assert page.count("class='tampered'") == 1


def test_export_marks_an_unreadable_record_instead_of_dropping_it(tmp_path: Path) -> None:
    """The same broken deny line in ``audit export --unverified``: the OPA decision-log stream had
    no event for it (only a warning on stderr), so a SIEM fed by the export never saw that a
    decision was there. It gets an event in its place carrying gpu_enforcer.verification_failure."""
    state = tmp_path / "st"
    assert (
        _cli(state, "account", "add", "222233334444", "--country", "CN", "--kyc", "verified").exit_code == 0
    )
    assert _cli(state, "decide", str(EXAMPLES / "events" / "runinstances-p5-cn.json")).exit_code == 3
    seg = next((state / "audit").glob("segment-*.jsonl"))
    line = seg.read_bytes().rstrip(b"\n")
    seg.write_bytes(line[:-1] + b',"result":{"effect":"allow","reasons":[]}}\n')
    out = tmp_path / "x.jsonl"
    res = _cli(state, "audit", "export", "--unverified", "--out", str(out))
    assert res.exit_code == 0, res.output
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(events) == 1
    assert "unreadable" in events[0]["gpu_enforcer"]["verification_failure"]
    assert events[0].get("result", {}).get("effect") != "allow"


# -- signed JSON: the strict reader's "no Infinity" -------------------------------------------------
@pytest.mark.parametrize("number", ["1e999", "-1e999", "1E400", "-0.5e99999"])
def test_strict_json_refuses_a_number_that_overflows_to_infinity(number: str) -> None:
    """``strict_json.loads_strict`` (one reader for attestation tokens and policy signatures, this
    round) promises no NaN/Infinity, but only hooked ``parse_constant``: a literal beyond a double
    (``1e999``) parsed to ``inf`` silently. A signed document must mean one thing to every reader
    (orjson and msgspec refuse it, others clamp or fail): refuse it like ``Infinity``."""
    from enforcer.strict_json import loads_strict

    with pytest.raises(ValueError, match="non-finite"):
        loads_strict('{"exp": ' + number + "}")
    assert loads_strict('{"exp": 1.5e3, "n": 1e308}') == {"exp": 1500.0, "n": 1e308}
