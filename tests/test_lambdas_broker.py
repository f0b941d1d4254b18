"""The launch broker handler: it launches for the allowed caller and refuses the other."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas import broker
from tests.lambda_env import EVENTS, HOME, MEMBER, REGION, LambdaContext, World, broker_event, world_factory

CTX = LambdaContext(function_name="gpu-broker")


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = broker.handler(event, CTX)
    return resp["statusCode"], json.loads(resp["body"])


def test_allowed_caller_gets_a_tagged_instance(make_world: Any) -> None:
    w: World = make_world()
    body = {"instanceType": "p5.48xlarge", "count": 2, "region": REGION, "imageId": w.ami()}

    status, out = call(broker_event(HOME, body))

    assert status == 200 and out["effect"] == "allow"
    assert len(out["instance_ids"]) == 2
    for iid in out["instance_ids"]:
        inst = w.instance(iid)
        assert inst["InstanceType"] == "p5.48xlarge" and inst["State"]["Name"] in ("pending", "running")
        tags = w.tags(iid)
        assert tags["gpu-enforcer:decision-id"] == out["decision_id"]
        assert tags["gpu-enforcer:requested-by"].endswith("/alice")


def test_refused_caller_gets_403_and_nothing_launches(make_world: Any) -> None:
    w: World = make_world()
    body = {"instanceType": "p5.48xlarge", "count": 1, "region": REGION, "imageId": w.ami(MEMBER)}

    status, out = call(broker_event(MEMBER, body))

    assert status == 403 and out["effect"] == "deny"
    assert "ORIGIN_RESTRICTED" in {r["code"] for r in out["reasons"]}
    assert w.client("ec2", MEMBER).describe_instances()["Reservations"] == []
    assert w.audit_count() == 1


def test_launch_template_type_is_pinned_to_the_decision(make_world: Any) -> None:
    w: World = make_world()
    ec2 = w.client("ec2")
    lt = ec2.create_launch_template(
        LaunchTemplateName="broker-lt", LaunchTemplateData={"InstanceType": "g6e.xlarge", "ImageId": w.ami()}
    )["LaunchTemplate"]
    body = {
        "launchTemplate": {"id": lt["LaunchTemplateId"], "version": "$Latest"},
        "count": 1,
        "region": REGION,
    }

    status, out = call(broker_event(HOME, body))

    assert status == 200, out
    assert [w.instance(i)["InstanceType"] for i in out["instance_ids"]] == ["g6e.xlarge"]


def test_instant_fleet_launch(make_world: Any) -> None:
    w: World = make_world()
    lt = w.client("ec2").create_launch_template(
        LaunchTemplateName="fleet-lt", LaunchTemplateData={"InstanceType": "p5.48xlarge", "ImageId": w.ami()}
    )["LaunchTemplate"]
    body = {
        "fleet": {"instanceTypes": ["p5en.48xlarge"], "type": "instant"},
        "launchTemplate": {"id": lt["LaunchTemplateId"]},
        "count": 1,
        "region": REGION,
    }
    status, out = call(broker_event(HOME, body))
    assert status == 200, out
    assert [w.instance(i)["InstanceType"] for i in out["instance_ids"]] == ["p5en.48xlarge"]


def test_bad_bodies_and_replays(make_world: Any) -> None:
    w: World = make_world()
    status, out = call(broker_event(HOME, {"instanceType": "p5.48xlarge", "region": REGION, "extra": 1}))
    assert status == 400 and out["code"]
    status, out = call(broker_event(HOME, {"instanceType": "p5.48xlarge", "region": REGION}))
    assert status == 400 and out["code"] == "BAD_LAUNCH" and out["decision_id"]  # decided, but no image
    event = broker_event(HOME, {"instanceType": "t3.micro", "region": REGION, "imageId": w.ami()})
    first_status, first = call(event)
    assert first_status == 200
    status, out = call(event)  # the same API request delivered twice
    assert status == 409 and out["code"] == "DUPLICATE_REQUEST"
    assert out["decision_id"] == first["decision_id"] and out["effect"] == first["effect"] == "allow"


def test_dryrun_launches_but_logs_would_deny(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MODE="dryrun")
    body = {"instanceType": "p5.48xlarge", "count": 1, "region": REGION, "imageId": w.ami(MEMBER)}
    status, out = call(broker_event(MEMBER, body))
    assert status == 200 and out["effect"] == "deny" and len(out["instance_ids"]) == 1


# -- issue 11: the direct-invoke path cannot launch for an account the caller does not own ----------
def test_direct_invoke_is_refused_and_launches_nothing(make_world: Any) -> None:
    w: World = make_world()
    direct = json.loads((EVENTS / "broker_direct.json").read_text())
    direct["account_id"] = HOME  # an allowed account, named by the payload: no proof of who asks
    direct["launch"] = {"instanceType": "p5.48xlarge", "count": 1, "region": REGION, "imageId": w.ami()}
    status, out = call(direct)
    assert status == 403 and out["code"] == "DIRECT_INVOKE_REFUSED"
    assert w.client("ec2").describe_instances()["Reservations"] == []
    assert w.audit_count() == 0


def test_caller_from_another_account_is_refused(make_world: Any) -> None:
    w: World = make_world()
    body = {"instanceType": "p5.48xlarge", "count": 1, "region": REGION, "imageId": w.ami()}
    forged = broker_event(HOME, body)
    forged["requestContext"]["identity"]["userArn"] = f"arn:aws:sts::{MEMBER}:assumed-role/Dev/mallory"
    status, out = call(forged)
    assert status == 403 and out["code"] == "CALLER_ACCOUNT_MISMATCH"
    forged["requestContext"]["identity"]["userArn"] = "AROAEXAMPLE:mallory"  # not an ARN
    status, out = call(forged)
    assert status == 403 and out["code"] == "CALLER_UNKNOWN"
    assert w.client("ec2").describe_instances()["Reservations"] == []
