"""Replay: CloudTrail files (gz or not), EventBridge JSONL, malformed input, and the policy diff."""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from enforcer.model import AccountOrigin
from enforcer.policy import load_bundle
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.memo import MemoEngine, is_deterministic
from enforcer.replay import iter_events, replay
from tests.conftest import POLICIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from synth_cloudtrail import record, write

ACCOUNTS = [
    AccountOrigin("111122223333", "US", "US", "US", "verified"),
    AccountOrigin("222233334444", "CN", "CN", "CN", "verified"),
    AccountOrigin("444455556666", "AE", "AE", "AE", "verified"),
    AccountOrigin("555566667777", "DE", "DE", "DE", "pending"),
]


def test_replay_reads_gzip_plain_and_jsonl(tmp_path: Path, make_enforcer: Any) -> None:
    rng = random.Random(1)
    write(tmp_path / "ct", 30, per_file=10)
    (tmp_path / "plain.json").write_text(json.dumps({"Records": [record(100, rng), record(101, rng)]}))
    eb = {
        "version": "0",
        "id": "eb-1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "111122223333",
        "region": "us-east-1",
        "time": "2026-10-01T00:00:00Z",
        "detail": record(102, rng),
    }
    (tmp_path / "events.jsonl").write_text(
        json.dumps(eb) + "\n" + json.dumps(eb | {"id": "eb-2"}) + "\nnot json\n"
    )
    out = io.StringIO()
    summary = replay(iter_events([str(tmp_path)]), make_enforcer(ACCOUNTS), out)
    assert summary.events == 30 + 2 + 3
    assert summary.decided == 34 and summary.errors == 1
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert sum(1 for x in lines if "effect" in x) == 34
    assert any(x.get("error") == "BAD_INPUT" for x in lines)
    assert sum(summary.by_effect.values()) == 34


def test_a_launch_record_the_intake_rejects_is_decided_as_the_guard_decides_it(
    tmp_path: Path, make_enforcer: Any
) -> None:
    """The guard denies a launch call it cannot read (REQUEST_UNRESOLVED, enforcer.intake.malformed);
    a preview of the same history shows that deny, not only an error line."""
    rng = random.Random(3)
    bad = record(200, rng)
    assert bad["eventName"] == "RunInstances"
    bad["recipientAccountId"] = "111122223333"
    bad["requestParameters"] = "nonsense"
    unreadable_read = dict(bad, eventName="DescribeInstances", readOnly=True)
    (tmp_path / "ct.json").write_text(json.dumps({"Records": [bad, unreadable_read, record(201, rng)]}))
    out = io.StringIO()
    summary = replay(iter_events([str(tmp_path)]), make_enforcer(ACCOUNTS), out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    denied = [x for x in lines if x.get("malformed")]
    assert len(denied) == 1 and denied[0]["effect"] == "deny", lines
    assert [r["code"] for r in denied[0]["reasons"]] == ["REQUEST_UNRESOLVED"]
    assert denied[0]["request"]["account_id"] == "111122223333"
    assert summary.errors == 1 and summary.by_reason["REQUEST_UNRESOLVED"] >= 1
    assert sum(1 for x in lines if "error" in x and "effect" not in x) == 0  # the read-only one is ignored


def test_replay_never_writes_the_audit_log(tmp_path: Path, make_enforcer: Any) -> None:
    class Exploding:
        def write(self, decision: Any, action: Any = None) -> Any:
            raise AssertionError("replay must not log")

    write(tmp_path / "ct", 5)
    replay(iter_events([str(tmp_path / "ct")]), make_enforcer(ACCOUNTS, audit=Exploding()), io.StringIO())


def test_missing_source_is_an_error_line_not_a_crash(make_enforcer: Any) -> None:
    out = io.StringIO()
    s = replay(iter_events(["/nonexistent/path"]), make_enforcer(ACCOUNTS), out)
    assert s.errors == 1 and "no such file" in out.getvalue()


def test_policy_diff_finds_exactly_the_flipped_launches(
    tmp_path: Path, make_enforcer: Any, engine: Any
) -> None:
    """Adding AE to D:5 must flip exactly the AE account's controlled launches from audit to deny."""
    write(tmp_path / "ct", 400, per_file=100)
    changed_dir = tmp_path / "policy"
    shutil.copytree(POLICIES, changed_dir)
    groups = changed_dir / "gpu" / "country_groups" / "data.json"
    doc = json.loads(groups.read_text())
    doc["groups"]["D5"]["AE"] = [{"since": "2020-01-01", "source": "ear-740-supp1"}]
    groups.write_text(json.dumps(doc))
    new = make_enforcer(ACCOUNTS, engine=EmbeddedEngine(load_bundle(changed_dir)))
    old = make_enforcer(ACCOUNTS, engine=engine)
    out = io.StringIO()
    summary = replay(iter_events([str(tmp_path / "ct")]), new, out, baseline=old, now=1.8e9)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    flipped = {x["request"]["event_id"] for x in lines if x["changed"]}
    controlled = {"3A090.a", "3A090.b", "indeterminate", "unknown"}
    expected = {
        x["request"]["event_id"]
        for x in lines
        if x["request"]["account_id"] == "444455556666"
        and any(i["chip_class"] in controlled for i in x["request"]["items"])
    }
    assert expected and flipped == expected
    assert summary.changed == len(expected)
    assert set(summary.transitions) == {("audit", "deny")}


def test_memo_gives_the_same_decisions_as_no_memo(
    tmp_path: Path, make_enforcer: Any, engine: Any, bundle: Any
) -> None:
    assert is_deterministic(bundle)
    write(tmp_path / "ct", 300, per_file=100)
    plain, memo = io.StringIO(), io.StringIO()
    replay(iter_events([str(tmp_path / "ct")]), make_enforcer(ACCOUNTS), plain, now=1.8e9)
    memo_engine = MemoEngine(engine, size=64)
    replay(iter_events([str(tmp_path / "ct")]), make_enforcer(ACCOUNTS, engine=memo_engine), memo, now=1.8e9)

    def key(s: str) -> list[tuple[str, str, list[str]]]:
        return [
            (x["request"]["event_id"], x["effect"], [r["code"] for r in x["reasons"]])
            for x in map(json.loads, s.splitlines())
        ]

    assert key(plain.getvalue()) == key(memo.getvalue())
    assert memo_engine.hits > 0


class _Counting:
    """An engine answering from the input's ``n`` (and counting what it is asked)."""

    name, revision = "fake", "r"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"effect": "deny" if doc["n"] % 2 else "allow", "reasons": [], "n": doc["n"]}


def test_memo_steps_aside_when_the_probe_finds_too_few_hits() -> None:
    inner = _Counting()
    memo = MemoEngine(inner, probe=10, min_hit_rate=0.2)
    answers = [memo.evaluate({"n": n}) for n in range(30)]  # every input new: no hit
    assert [a["n"] for a in answers] == list(range(30)) and inner.calls == 30
    assert memo.bypassed and memo.hits == 0 and memo.misses == 10 and not memo._cache
    assert memo.evaluate({"n": 3}) == {"effect": "deny", "reasons": [], "n": 3} and inner.calls == 31


def test_memo_that_hits_keeps_memoising() -> None:
    inner = _Counting()
    memo = MemoEngine(inner, probe=10, min_hit_rate=0.2)
    answers = [memo.evaluate({"n": n % 4}) for n in range(40)]  # four shapes, repeated
    assert [a["n"] for a in answers] == [n % 4 for n in range(40)]
    assert not memo.bypassed and inner.calls == 4 and memo.hits == 36
    never = MemoEngine(_Counting(), probe=0)  # probe 0: never steps aside
    for n in range(600):
        never.evaluate({"n": n})
    assert not never.bypassed and never.misses == 600


def test_memo_refused_for_time_dependent_policy(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package gpu.launch\n\nimport rego.v1\n\nnow := time.now_ns()\n")
    assert not is_deterministic(load_bundle(tmp_path))


def test_replay_cli_with_baseline(tmp_path: Path) -> None:
    from enforcer.cli import cli

    write(tmp_path / "ct", 20, per_file=20)
    state = tmp_path / "state"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli,
            ["--state", str(state), "account", "add", "111122223333", "--country", "US", "--kyc", "verified"],
        ).exit_code
        == 0
    )
    res = runner.invoke(
        cli,
        [
            "--state",
            str(state),
            "replay",
            str(tmp_path / "ct"),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--baseline",
            str(POLICIES),
            "--policy",
            str(POLICIES),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Replayed 20 events" in res.output and "change effect" in res.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 20
    assert not (state / "audit").exists() or not any((state / "audit").glob("*.jsonl"))


def test_gzip_detection(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    with gzip.open(p, "wt") as fh:
        json.dump({"Records": [record(1, random.Random(0))]}, fh)
    assert len(list(iter_events([str(p)]))) == 1


def test_replay_from_an_s3_prefix_as_cloudtrail_writes_it(tmp_path: Path, make_enforcer: Any) -> None:
    import boto3
    from moto import mock_aws

    files = write(tmp_path / "ct", 40, per_file=20)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="org-trail")
        prefix = "AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2026/10/01/"
        for f in files:
            s3.put_object(Bucket="org-trail", Key=prefix + f.name, Body=f.read_bytes())
        s3.put_object(Bucket="org-trail", Key="elsewhere/ignored.json.gz", Body=files[0].read_bytes())
        out = io.StringIO()
        summary = replay(iter_events(["s3://org-trail/AWSLogs/"], s3), make_enforcer(ACCOUNTS), out)
    assert summary.events == 40 and summary.decided == 40
    assert all(
        json.loads(x)["source"].startswith("s3://org-trail/AWSLogs/") for x in out.getvalue().splitlines()
    )
