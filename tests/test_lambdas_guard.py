"""The guard handler against moto: launches by a CN account end stopped and tagged, US ones keep running.

Every event is built from what was really launched in moto (accounts, instance ids, types). HOME
(moto's default account, US, KYC verified) is the security account; MEMBER (CN) is reached by
assuming the guard role, so each CN case also exercises the cross-account path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enforcer.ports import AuditWriteError
from lambdas import guard
from tests.lambda_env import (
    AUDIT_TABLE,
    COUNTER_TABLE,
    HOME,
    MEMBER,
    LambdaContext,
    World,
    cloudtrail,
    load_event,
    run_instances_event,
    state_change_event,
    world_factory,
)

CTX = LambdaContext()


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def handle(event: dict[str, Any]) -> dict[str, Any]:
    return guard.handler(event, CTX)


def only(result: dict[str, Any]) -> dict[str, Any]:
    assert result["status"] == "decided", result
    (r,) = result["results"]
    return r


def test_runinstances_cn_stopped_and_tagged_us_keeps_running(make_world: Any) -> None:
    w: World = make_world()
    cn = w.launch(account=MEMBER)
    us = w.launch(account=HOME)
    cn_id, us_id = cn["Instances"][0]["InstanceId"], us["Instances"][0]["InstanceId"]

    denied = only(handle(run_instances_event(cn, MEMBER, instanceType="p5.48xlarge")))
    allowed = only(handle(run_instances_event(us, HOME, instanceType="p5.48xlarge")))

    assert denied["effect"] == "deny" and "ORIGIN_RESTRICTED" in denied["reasons"]
    assert denied["remediation"]["status"] == "stopped"
    assert w.state(cn_id, MEMBER) == "stopped"
    tags = w.tags(cn_id, MEMBER)
    assert tags["gpu-enforcer:decision-id"] == denied["decision_id"]
    assert tags["gpu-enforcer:reason"].startswith("ORIGIN_RESTRICTED")
    assert len(tags["gpu-enforcer:reason"]) <= 256
    assert allowed["effect"] == "allow" and allowed["remediation"]["status"] == "allowed"
    assert w.state(us_id) == "running" and "gpu-enforcer:decision-id" not in w.tags(us_id)
    (note,) = w.notifications()
    assert note["decision_id"] == denied["decision_id"] and note["account_id"] == MEMBER
    assert w.audit_count() == 2


@pytest.mark.parametrize(("account", "final"), [(MEMBER, "stopped"), (HOME, "running")])
def test_launch_template_only_launch(make_world: Any, account: str, final: str) -> None:
    w: World = make_world()
    ec2 = w.client("ec2", account)
    lt = ec2.create_launch_template(
        LaunchTemplateName="gpu",
        LaunchTemplateData={"InstanceType": "p5.48xlarge", "ImageId": w.ami(account)},
    )["LaunchTemplate"]
    spec = {"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"}
    resp = w.launch(account=account, LaunchTemplate=spec)
    iid = resp["Instances"][0]["InstanceId"]
    assert resp["Instances"][0]["InstanceType"] == "p5.48xlarge"
    event = run_instances_event(
        resp, account, launchTemplate={"launchTemplateId": lt["LaunchTemplateId"], "version": "$Latest"}
    )
    for item in event["detail"]["responseElements"]["instancesSet"]["items"]:
        del item["instanceType"]  # the type is only in the template: the resolver must look it up

    r = only(handle(event))

    assert w.state(iid, account) == final
    req_items = r["remediation"]
    assert (r["effect"] == "deny") == (final == "stopped"), r
    if final == "stopped":
        assert req_items["acted"] == [iid]
        assert w.tags(iid, account)["gpu-enforcer:decision-id"] == r["decision_id"]


@pytest.mark.parametrize(("account", "final"), [(MEMBER, "stopped"), (HOME, "running")])
def test_auto_scaling_group_launch(make_world: Any, account: str, final: str) -> None:
    w: World = make_world()
    ec2, asg = w.client("ec2", account), w.client("autoscaling", account)
    lt = ec2.create_launch_template(
        LaunchTemplateName="gpu-asg",
        LaunchTemplateData={"InstanceType": "p5.48xlarge", "ImageId": w.ami(account)},
    )["LaunchTemplate"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName="trainers",
        LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
    )
    ids = [i["InstanceId"] for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]]
    assert len(ids) == 2
    request = {
        "autoScalingGroupName": "trainers",
        "launchTemplate": {"launchTemplateId": lt["LaunchTemplateId"], "version": "$Latest"},
        "minSize": 0,
        "maxSize": 2,
        "desiredCapacity": 2,
    }
    event = cloudtrail("CreateAutoScalingGroup", account, request, None, source="autoscaling.amazonaws.com")

    r = only(handle(event))

    assert [w.state(i, account) for i in ids] == [final, final]
    if final == "stopped":
        assert r["effect"] == "deny" and sorted(r["remediation"]["acted"]) == sorted(ids)
        assert r["remediation"]["suspended_groups"] == ["trainers"]
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["trainers"])["AutoScalingGroups"][0]
        assert {"Launch", "ReplaceUnhealthy"} <= {p["ProcessName"] for p in group["SuspendedProcesses"]}
    else:
        assert r["effect"] == "allow"


@pytest.mark.parametrize(("account", "final"), [(MEMBER, "stopped"), (HOME, "running")])
def test_resize_of_stopped_t3_to_p5(make_world: Any, account: str, final: str) -> None:
    w: World = make_world()
    ec2 = w.client("ec2", account)
    iid = w.launch("t3.micro", account=account)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[iid])
    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "p5.48xlarge"})
    if final == "running":
        ec2.start_instances(InstanceIds=[iid])  # the US account starts its resized instance
    event = cloudtrail(
        "ModifyInstanceAttribute",
        account,
        {"instanceId": iid, "instanceType": {"value": "p5.48xlarge"}},
        {"_return": True},
    )

    r = only(handle(event))

    assert w.state(iid, account) == final
    assert w.instance(iid, account)["InstanceType"] == "p5.48xlarge"
    if final == "stopped":
        assert r["effect"] == "deny" and r["remediation"]["status"] == "already_stopped"
        assert w.tags(iid, account)["gpu-enforcer:decision-id"] == r["decision_id"]
    else:
        assert r["effect"] == "allow"


def test_state_change_pending_is_described_then_decided(make_world: Any) -> None:
    w: World = make_world()
    iid = w.launch("p4d.24xlarge", account=MEMBER)["Instances"][0]["InstanceId"]

    r = only(handle(state_change_event(iid, MEMBER)))

    assert r["effect"] == "deny" and r["remediation"]["acted"] == [iid]
    assert w.state(iid, MEMBER) == "stopped"
    ignored = handle(state_change_event(iid, MEMBER, state="stopped"))
    assert ignored["status"] == "ignored"


def test_state_change_of_an_asg_member_holds_its_group(make_world: Any) -> None:
    w: World = make_world()
    ec2, asg = w.client("ec2", MEMBER), w.client("autoscaling", MEMBER)
    lt = ec2.create_launch_template(
        LaunchTemplateName="gpu-members",
        LaunchTemplateData={"InstanceType": "p5.48xlarge", "ImageId": w.ami(MEMBER)},
    )["LaunchTemplate"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName="members",
        LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "1"},
        MinSize=1,
        MaxSize=1,
        AvailabilityZones=["us-east-1a"],
    )
    (iid,) = [
        i["InstanceId"] for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    ]

    r = only(handle(state_change_event(iid, MEMBER)))

    assert r["remediation"]["acted"] == [iid] and r["remediation"]["suspended_groups"] == ["members"]
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["members"])["AutoScalingGroups"][0]
    assert "ReplaceUnhealthy" in {p["ProcessName"] for p in group["SuspendedProcesses"]}


def test_duplicate_event_acts_once(make_world: Any) -> None:
    w: World = make_world()
    resp = w.launch(account=MEMBER)
    iid = resp["Instances"][0]["InstanceId"]
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")

    first = only(handle(event))
    assert w.state(iid, MEMBER) == "stopped"
    w.client("ec2", MEMBER).start_instances(InstanceIds=[iid])  # someone restarts it
    second = only(handle(json.loads(json.dumps(event))))  # EventBridge redelivers the same event

    assert first["remediation"]["status"] == "stopped"
    assert second["duplicate"] is True and second["remediation"]["status"] == "duplicate"
    assert w.state(iid, MEMBER) == "running"  # the redelivery did not act again
    assert w.audit_count() == 1
    assert len(w.notifications()) == 1
    assert _hour_count(w) == 0  # ORIGIN_RESTRICTED is a legal prohibition: never counted against a cap


#: An account missing from the directory: ACCOUNT_UNKNOWN, a deny that caps may hold back.
UNKNOWN = "222222222222"


def _hour_count(w: World) -> int:
    items = w.client("dynamodb").scan(TableName=COUNTER_TABLE)["Items"]
    return sum(int(i["count"]["N"]) for i in items if i["pk"]["S"].startswith("cap#"))


def test_blast_radius_cap_per_invocation(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MAX_ACTIONS_PER_INVOCATION="2")
    resp = w.launch(count=3, account=UNKNOWN)
    ids = [i["InstanceId"] for i in resp["Instances"]]

    r = only(handle(run_instances_event(resp, UNKNOWN, instanceType="p5.48xlarge")))

    rem = r["remediation"]
    assert rem["status"] == "capped" and len(rem["acted"]) == 2 and len(rem["capped"]) == 1
    assert sorted(w.state(i, UNKNOWN) for i in ids) == ["running", "stopped", "stopped"]
    assert w.state(rem["capped"][0], UNKNOWN) == "running"
    (note,) = w.notifications()
    assert note["remediation"]["capped"] == rem["capped"]


def test_legal_prohibition_is_never_capped(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MAX_ACTIONS_PER_INVOCATION="1", ENFORCER_MAX_ACTIONS_PER_HOUR="1")
    resp = w.launch(count=3, account=MEMBER)
    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))
    assert r["reasons"] == ["ORIGIN_RESTRICTED"] and r["remediation"]["status"] == "stopped"
    assert {w.state(i["InstanceId"], MEMBER) for i in resp["Instances"]} == {"stopped"}


def test_blast_radius_cap_per_hour_across_invocations(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MAX_ACTIONS_PER_HOUR="3")
    first, second = w.launch(count=2, account=UNKNOWN), w.launch(count=2, account=UNKNOWN)

    a = only(handle(run_instances_event(first, UNKNOWN, instanceType="p5.48xlarge")))
    b = only(handle(run_instances_event(second, UNKNOWN, instanceType="p5.48xlarge")))

    assert a["remediation"]["status"] == "stopped" and len(a["remediation"]["acted"]) == 2
    assert b["remediation"]["status"] == "capped" and len(b["remediation"]["acted"]) == 1
    states = [w.state(i["InstanceId"], UNKNOWN) for i in first["Instances"] + second["Instances"]]
    assert states.count("stopped") == 3 and states.count("running") == 1
    assert _hour_count(w) == 3


class Records(logging.Handler):
    """Collects what the library logs (in Lambda, Powertools formats the same records as JSON)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_dryrun_acts_on_nothing_but_logs_would_deny(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MODE="dryrun")
    seen = Records()
    logging.getLogger("enforcer").addHandler(seen)
    resp = w.launch(account=MEMBER)
    iid = resp["Instances"][0]["InstanceId"]

    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))

    assert r["effect"] == "deny" and r["remediation"]["status"] == "would_deny"
    assert w.state(iid, MEMBER) == "running"
    assert "gpu-enforcer:decision-id" not in w.tags(iid, MEMBER)
    assert w.notifications() == []
    assert _hour_count(w) == 0
    assert w.audit_count() == 1  # dryrun decisions are still logged
    logging.getLogger("enforcer").removeHandler(seen)
    (line,) = [rec for rec in seen.records if "would deny" in rec.getMessage()]
    assert line.would_act_on == [iid]


def test_terminate_when_configured(make_world: Any) -> None:
    w: World = make_world(ENFORCER_ACTION="terminate")
    resp = w.launch(account=MEMBER)
    iid = resp["Instances"][0]["InstanceId"]

    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))

    assert r["remediation"]["status"] == "terminated"
    assert w.state(iid, MEMBER) == "terminated"


def test_sweep_stops_running_controlled_instances(make_world: Any) -> None:
    w: World = make_world(ENFORCER_SWEEP_ACCOUNTS=f"{HOME},{MEMBER}")
    cn_gpu = w.launch(account=MEMBER)["Instances"][0]["InstanceId"]
    cn_cpu = w.launch("t3.micro", account=MEMBER)["Instances"][0]["InstanceId"]
    us_gpu = w.launch(account=HOME)["Instances"][0]["InstanceId"]
    sweep = load_event("scheduled_sweep.json")
    sweep["account"] = HOME

    result = handle(sweep)

    assert result["status"] == "swept" and result["errors"] == []
    decided = {r["event_id"].rsplit("/", 1)[1]: r for r in result["results"]}
    assert set(decided) == {cn_gpu, us_gpu}  # the t3 is not decided on
    assert decided[cn_gpu]["effect"] == "deny" and decided[us_gpu]["effect"] == "allow"
    assert (w.state(cn_gpu, MEMBER), w.state(cn_cpu, MEMBER), w.state(us_gpu)) == (
        "stopped",
        "running",
        "running",
    )
    again = handle(sweep)  # a redelivered sweep does not act twice
    assert all(r["duplicate"] for r in again["results"])


def test_failed_calls_and_malformed_events_do_not_crash(make_world: Any) -> None:
    make_world()
    failed = handle(load_event("cloudtrail_failed_call.json"))
    assert failed["status"] == "ignored" and "failed" in failed["reason"]
    bad = run_instances_event(
        {
            "Instances": [
                {"InstanceId": "i-0123456789abcdef0", "ImageId": "ami-12345678", "InstanceType": "p5"}
            ],
            "ReservationId": "r-1",
        },
        MEMBER,
    )
    bad["detail"]["requestParameters"]["instancesSet"] = "nonsense"
    bad["detail"]["recipientAccountId"] = "not-an-account"
    result = handle(bad)
    assert result["status"] == "bad_input" and result["code"]


def test_a_launch_record_the_intake_rejects_is_denied_stopped_and_logged(make_world: Any) -> None:
    """Fail closed after the fact: a successful RunInstances whose record does not parse (here a count of
    the wrong type) launched something the guard cannot read, so even a clean US account's p5 is denied
    REQUEST_UNRESOLVED, stopped, tagged, logged and alerted, instead of being a bad_input left running."""
    w: World = make_world()
    us = w.launch(account=HOME)
    iid = us["Instances"][0]["InstanceId"]
    bad = run_instances_event(us, HOME, instanceType="p5.48xlarge")
    bad["detail"]["requestParameters"]["instancesSet"] = "nonsense"
    result = handle(bad)
    assert result["status"] == "decided" and result["malformed"]["code"]
    (r,) = result["results"]
    assert r["effect"] == "deny" and "REQUEST_UNRESOLVED" in r["reasons"], r
    assert r["remediation"]["status"] == "stopped" and r["remediation"]["acted"] == [iid]
    assert w.state(iid) == "stopped"
    assert w.tags(iid)["gpu-enforcer:decision-id"] == r["decision_id"]
    assert w.audit_count() == 1 and len(w.notifications()) == 1


def test_a_rejected_record_that_is_not_a_launch_call_stays_bad_input(make_world: Any) -> None:
    make_world()
    event = {
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "DescribeInstances",
            "recipientAccountId": HOME,
            "awsRegion": "us-east-1",
            "requestParameters": "nonsense",
        },
    }
    assert handle(event)["status"] in ("bad_input", "ignored")


def test_audit_failure_fails_before_acting(make_world: Any) -> None:
    w: World = make_world()
    resp = w.launch(account=MEMBER)
    iid = resp["Instances"][0]["InstanceId"]
    w.client("dynamodb").delete_table(TableName=AUDIT_TABLE)

    with pytest.raises(AuditWriteError):
        handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge"))

    assert w.state(iid, MEMBER) == "running"  # nothing acted on an unlogged decision; EventBridge retries
