"""The CloudFormation Lambda Hook handler: FAILED/NonCompliant for the CN account, SUCCESS for the US one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas import cfn_hook
from tests.lambda_env import (
    ACCOUNTS_TABLE,
    HOME,
    MEMBER,
    LambdaContext,
    World,
    hook_event,
    load_event,
    world_factory,
)

CTX = LambdaContext(function_name="gpu-cfn-hook")


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def hook(event: dict[str, Any]) -> dict[str, Any]:
    return cfn_hook.handler(event, CTX)


def test_cn_account_fails_noncompliant_us_account_succeeds(make_world: Any) -> None:
    w: World = make_world()
    cn, us = hook_event(MEMBER), hook_event(HOME)

    denied, allowed = hook(cn), hook(us)

    assert denied["hookStatus"] == "FAILED" and denied["errorCode"] == "NonCompliant"
    assert "ORIGIN_RESTRICTED" in denied["message"] and len(denied["message"]) < 1024
    assert denied["clientRequestToken"] == cn["clientRequestToken"]
    assert allowed["hookStatus"] == "SUCCESS" and "errorCode" not in allowed
    assert allowed["clientRequestToken"] == us["clientRequestToken"]
    assert w.audit_count() == 2


def test_uncontrolled_type_succeeds_for_any_account(make_world: Any) -> None:
    make_world()
    assert hook(hook_event(MEMBER, "t3.micro"))["hookStatus"] == "SUCCESS"


def test_cloud_control_and_deletes(make_world: Any) -> None:
    make_world()
    cc = load_event("cfn_hook_cloud_control.json")
    cc["awsAccountId"] = MEMBER
    result = hook(cc)
    assert result["hookStatus"] == "FAILED" and result["errorCode"] == "NonCompliant"
    assert len(result["message"]) < 1024  # Cloud Control truncates at 1,024
    delete = load_event("cfn_hook_delete.json")
    assert hook(delete)["hookStatus"] == "SUCCESS"


def test_malformed_request_fails_closed(make_world: Any) -> None:
    make_world()
    event = hook_event(MEMBER)
    event["requestData"]["targetModel"]["resourceProperties"]["InstanceType"] = 48
    result = hook(event)
    assert (result["hookStatus"], result["errorCode"]) == ("FAILED", "InternalFailure")
    assert result["clientRequestToken"] == event["clientRequestToken"]
    garbage = hook({"clientRequestToken": "t-1", "requestData": "nope"})
    assert garbage["hookStatus"] == "FAILED" and garbage["clientRequestToken"] == "t-1"


@pytest.mark.parametrize(
    ("fail_policy", "instance_type", "status"),
    [
        ("closed", "p5.48xlarge", "FAILED"),
        ("open", "p5.48xlarge", "FAILED"),
        ("closed", "t3.micro", "FAILED"),
        ("open", "t3.micro", "SUCCESS"),
    ],
)
def test_internal_error_fails_closed_for_controlled_types(
    make_world: Any, fail_policy: str, instance_type: str, status: str
) -> None:
    w: World = make_world(ENFORCER_FAIL_POLICY=fail_policy)
    w.client("dynamodb").delete_table(TableName=ACCOUNTS_TABLE)  # the account directory is down

    result = hook(hook_event(HOME, instance_type))

    assert result["hookStatus"] == status
    if status == "FAILED":
        assert result["errorCode"] == "InternalFailure"


def test_dryrun_answers_success_with_would_deny(make_world: Any) -> None:
    make_world(ENFORCER_MODE="dryrun")
    result = hook(hook_event(MEMBER))
    assert result["hookStatus"] == "SUCCESS" and "would deny" in result["message"]


def test_message_is_cut_under_the_cloud_control_limit() -> None:
    out = cfn_hook.respond("tok", "FAILED", "x" * 5000, "NonCompliant")
    assert len(out["message"]) <= 1000 and out["clientRequestToken"] == "tok"
