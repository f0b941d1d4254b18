"""Issue 11: a redelivered event is answered and acted on as LOGGED, never decided again.

Between the first delivery and the redelivery the world changes (the account is added to the
directory, or its country changes), so a fresh decision would differ: the CLI exit code, the hook's
answer and the pipeline's decision must still be the logged ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli
from lambdas import cfn_hook
from tests.conftest import EVENTS
from tests.lambda_env import MEMBER, LambdaContext, World, hook_event, world_factory

ACCOUNT = "111122223333"


def run(state: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--state", str(state), *args])


def test_cli_exit_code_follows_the_logged_decision(tmp_path: Path) -> None:
    state = tmp_path / "state"
    event = str(EVENTS / "cloudtrail_runinstances.json")
    first = run(state, "decide", event)
    assert first.exit_code == 3, first.output  # unknown account: deny
    doc1 = json.loads(first.stdout)
    assert run(state, "account", "add", ACCOUNT, "--country", "US", "--kyc", "verified").exit_code == 0
    again = run(state, "decide", event)  # the same event again: a fresh decision would allow
    assert again.exit_code == 3, again.output
    doc2 = json.loads(again.stdout)
    assert doc2["effect"] == "deny" and doc2["decision_id"] == doc1["decision_id"]
    assert [r["code"] for r in doc2["reasons"]] == [r["code"] for r in doc1["reasons"]]
    assert doc2["duplicate_of"] == doc1["decision_id"]
    fresh = json.loads((EVENTS / "cloudtrail_runinstances.json").read_text())
    fresh["id"] = fresh["detail"]["eventID"] = "a-new-launch"
    f = tmp_path / "new.json"
    f.write_text(json.dumps(fresh))
    assert run(state, "decide", str(f)).exit_code == 0  # a new event is decided afresh: allow


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def test_hook_answer_follows_the_logged_decision(make_world: Any) -> None:
    w: World = make_world()
    event = hook_event(MEMBER)
    ctx = LambdaContext(function_name="gpu-cfn-hook")
    first = cfn_hook.handler(json.loads(json.dumps(event)), ctx)
    assert first["hookStatus"] == "FAILED"
    w.add_account(MEMBER, "US")  # the directory is corrected: a fresh decision would succeed
    again = cfn_hook.handler(json.loads(json.dumps(event)), ctx)
    assert again["hookStatus"] == "FAILED" and again["message"] == first["message"]
    assert w.audit_count() == 1


def test_pipeline_returns_the_logged_decision(make_enforcer: Any, tmp_path: Path) -> None:
    from enforcer.audit.local import LocalAuditStore
    from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest

    def req() -> LaunchRequest:
        return LaunchRequest(
            "cloudtrail",
            "ec2:RunInstances",
            ACCOUNT,
            "us-east-1",
            items=[LaunchItem("p5.48xlarge", 1)],
            event_id="e-1",
        )

    store = LocalAuditStore(tmp_path / "audit", salt=b"0123456789abcdef")
    denied = make_enforcer([], audit=store).enforce(req())
    us = AccountOrigin(ACCOUNT, "US", "US", "US", "verified")
    again = make_enforcer([us], audit=store).enforce(req())
    assert again.duplicate and again.decision.effect == "deny"
    assert again.decision.decision_id == denied.decision.decision_id
    assert again.decision.reason_codes == denied.decision.reason_codes == ["ACCOUNT_UNKNOWN"]
