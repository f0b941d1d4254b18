"""End to end over HTTP: the handlers run against moto's ThreadedMotoServer (127.0.0.1, a free port).

Every AWS call (EC2, Auto Scaling, DynamoDB, S3, KMS, SNS, SQS, STS AssumeRole into the member
account) goes through boto3 with ``endpoint_url``, as it would against AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from enforcer.demo.world import moto_server
from enforcer.wiring.aws import set_runtime
from lambdas import broker, cfn_hook, guard
from tests.lambda_env import (
    HOME,
    MEMBER,
    REGION,
    LambdaContext,
    World,
    broker_event,
    hook_event,
    run_instances_event,
)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def world(server: str, engine: Any) -> Iterator[World]:
    requests.post(f"{server}/moto-api/reset", timeout=10)
    w = World(engine, endpoint_url=server)
    w.add_account(HOME, "US")
    w.add_account(MEMBER, "CN")
    yield w
    set_runtime(None)


def test_guard_hook_and_broker_over_http(world: World) -> None:
    ctx = LambdaContext()
    cn, us = world.launch(account=MEMBER), world.launch(account=HOME)
    cn_id, us_id = cn["Instances"][0]["InstanceId"], us["Instances"][0]["InstanceId"]
    event = run_instances_event(cn, MEMBER, instanceType="p5.48xlarge")

    denied = guard.handler(event, ctx)["results"][0]
    allowed = guard.handler(run_instances_event(us, HOME, instanceType="p5.48xlarge"), ctx)["results"][0]
    again = guard.handler(event, ctx)["results"][0]

    assert denied["remediation"]["status"] == "stopped" and world.state(cn_id, MEMBER) == "stopped"
    assert world.tags(cn_id, MEMBER)["gpu-enforcer:decision-id"] == denied["decision_id"]
    assert allowed["effect"] == "allow" and world.state(us_id) == "running"
    assert again["duplicate"] is True and again["remediation"]["status"] == "duplicate"
    assert len(world.notifications()) == 1

    assert cfn_hook.handler(hook_event(MEMBER), ctx)["errorCode"] == "NonCompliant"
    assert cfn_hook.handler(hook_event(HOME), ctx)["hookStatus"] == "SUCCESS"

    body = {"instanceType": "p5.48xlarge", "count": 1, "region": REGION, "imageId": world.ami()}
    ok = broker.handler(broker_event(HOME, body), ctx)
    refused = broker.handler(broker_event(MEMBER, {**body, "imageId": world.ami(MEMBER)}), ctx)
    assert ok["statusCode"] == 200 and refused["statusCode"] == 403
    (iid,) = json.loads(ok["body"])["instance_ids"]
    assert world.tags(iid)["gpu-enforcer:decision-id"] == json.loads(ok["body"])["decision_id"]
    # two guard decisions (the redelivery wrote nothing), two hook decisions, two broker decisions
    assert world.audit_count() == 6
