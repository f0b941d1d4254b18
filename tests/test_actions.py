"""Remediation pieces against moto: budget, remediator edge cases, broker launch checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enforcer.act_state import AccountCaps, create_counter_table
from enforcer.actions import MAX_TAG_VALUE, Budget, Remediator, reason_text
from enforcer.broker_launch import broker_launch
from enforcer.model import AccountOrigin, InputError, LaunchItem, LaunchRequest
from enforcer.pipeline import Outcome
from enforcer.ports import AuditReceipt
from tests.lambda_env import MOTO_AMI

ACCOUNT = "123456789012"
CN = AccountOrigin(ACCOUNT, "CN", "CN", "CN", kyc="verified")
US = AccountOrigin(ACCOUNT, "US", "US", "US", kyc="verified")


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        create_counter_table(ddb, "counters")
        ami = ec2.describe_images(ImageIds=[MOTO_AMI])["Images"][0]["ImageId"]
        yield {"ddb": ddb, "ec2": ec2, "ami": ami, "sns": boto3.client("sns", region_name="us-east-1")}


def test_budget_per_invocation_then_per_account(aws: dict[str, Any]) -> None:
    budget = Budget(3)
    assert [budget.take(2), budget.take(2), budget.take(1)] == [2, 1, 0]
    shared = Budget(10, caps=AccountCaps(aws["ddb"], "counters", cap=2))
    assert shared.take_for(3, ACCOUNT, "us-east-1", legal=False) == 1  # backs off to what fits the hour
    assert shared.take_for(5, ACCOUNT, "us-east-1", legal=False) == 1
    assert shared.take_for(1, ACCOUNT, "us-east-1", legal=False) == 0
    assert shared.take_for(4, ACCOUNT, "us-east-1", legal=True) == 4  # a legal prohibition is never capped


def test_budget_does_not_act_when_the_counter_fails(aws: dict[str, Any]) -> None:
    budget = Budget(10, caps=AccountCaps(aws["ddb"], "no-such-table", cap=10))
    assert budget.take_for(2, ACCOUNT, "us-east-1", legal=False) == 0
    assert budget.errors and "counter failed" in budget.errors[0]


def outcome(make_enforcer: Any, origin: AccountOrigin, ids: list[str], duplicate: bool = False) -> Outcome:
    req = LaunchRequest(
        source="cloudtrail",
        action="ec2:RunInstances",
        account_id=ACCOUNT,
        region="us-east-1",
        items=[LaunchItem("p5.48xlarge", len(ids))],
        instance_ids=ids,
        event_id="ev-1",
    )
    d = make_enforcer([origin]).decide(req)
    return Outcome(d, AuditReceipt(0, "h", duplicate=duplicate, decision_id=d.decision_id))


def test_remediator_outcomes(aws: dict[str, Any], make_enforcer: Any) -> None:
    ec2 = aws["ec2"]
    iid = ec2.run_instances(ImageId=aws["ami"], InstanceType="p5.48xlarge", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    rem = Remediator("stop")
    assert rem.remediate(outcome(make_enforcer, US, [iid]), ec2, None, Budget(5)).status == "allowed"
    assert (
        rem.remediate(outcome(make_enforcer, CN, [iid], duplicate=True), ec2, None, Budget(5)).status
        == "duplicate"
    )
    result = rem.remediate(outcome(make_enforcer, CN, [iid, "i-0123456789abcdef0"]), ec2, None, Budget(5))
    assert result.status == "stopped" and result.acted == [iid]
    assert any("not found" in e for e in result.errors)
    again = rem.remediate(outcome(make_enforcer, CN, [iid]), ec2, None, Budget(5))
    assert again.status == "already_stopped" and again.acted == []


def test_notification_failure_is_reported_not_raised(aws: dict[str, Any], make_enforcer: Any) -> None:
    ec2 = aws["ec2"]
    iid = ec2.run_instances(ImageId=aws["ami"], InstanceType="p5.48xlarge", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    rem = Remediator("terminate", sns=aws["sns"], topic_arn="arn:aws:sns:us-east-1:123456789012:missing")
    result = rem.remediate(outcome(make_enforcer, CN, [iid]), ec2, None, Budget(5))
    assert result.status == "terminated" and result.notified is False
    assert any(e.startswith("notify failed") for e in result.errors)


def test_reason_text_fits_a_tag(make_enforcer: Any) -> None:
    d = outcome(make_enforcer, CN, []).decision
    d.reasons = d.reasons * 20
    text = reason_text(d)
    assert len(text) == MAX_TAG_VALUE and text.endswith("…")


def test_broker_launch_refuses_what_it_cannot_launch_exactly(aws: dict[str, Any], make_enforcer: Any) -> None:
    d = outcome(make_enforcer, US, []).decision
    fleet = LaunchRequest("broker", "broker:Launch", ACCOUNT, "us-east-1", items=[LaunchItem("p5.48xlarge")])
    fleet.extra["launch"] = {"fleet": {"instanceTypes": ["p5.48xlarge"], "type": "instant"}, "count": 1}
    with pytest.raises(InputError, match="launchTemplate"):
        broker_launch(aws["ec2"], fleet, d)
    no_image = LaunchRequest(
        "broker", "broker:Launch", ACCOUNT, "us-east-1", items=[LaunchItem("p5.48xlarge")]
    )
    no_image.extra["launch"] = {"instanceType": "p5.48xlarge", "count": 1}
    with pytest.raises(InputError, match="imageId"):
        broker_launch(aws["ec2"], no_image, d)
    ok = LaunchRequest(
        "broker", "broker:Launch", ACCOUNT, "us-east-1", items=[LaunchItem("p5.48xlarge")], event_id="req-1"
    )
    ok.extra["launch"] = {"instanceType": "p5.48xlarge", "count": 1, "imageId": aws["ami"]}
    first = broker_launch(aws["ec2"], ok, d)
    assert len(first) == 1
