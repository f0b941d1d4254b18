"""Malformed input gives one clear InputError line, never another exception."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enforcer.intake import normalise, parse_event_bytes
from enforcer.model import InputError

EVENTS = Path(__file__).parent / "events"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return doc


def one_line_error(fn: Callable[[], object], match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 300, msg
    assert info.value.code == "BAD_INPUT"
    return msg


# --- raw bytes -------------------------------------------------------------------------------


def test_truncated_json() -> None:
    raw = (EVENTS / "cloudtrail_runinstances.json").read_bytes()[:500]
    one_line_error(lambda: parse_event_bytes(raw), r"invalid JSON at line \d+ column \d+")
    one_line_error(lambda: normalise(raw), "invalid JSON")


@pytest.mark.parametrize("raw", [b"[1, 2]", b"42", b'"text"', b"null", b"true"])
def test_non_object_top_level(raw: bytes) -> None:
    one_line_error(lambda: parse_event_bytes(raw), "event must be a JSON object")


def test_ten_megabyte_payload() -> None:
    big = b'{"detail-type": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    one_line_error(lambda: parse_event_bytes(big), "larger than 1048576 bytes")
    one_line_error(lambda: parse_event_bytes(big.decode()), "larger than 1048576 bytes")
    one_line_error(lambda: normalise(big), "larger than")


def test_multibyte_text_counts_bytes() -> None:
    text = '{"a": "' + "é" * 600_000 + '"}'  # 600k characters, 1.2 MB of UTF-8
    one_line_error(lambda: parse_event_bytes(text), "larger than")


def test_gzip_bomb_is_bounded() -> None:
    bomb = gzip.compress(b'{"a": "' + b"0" * (20 * 1024 * 1024) + b'"}')
    one_line_error(lambda: parse_event_bytes(bomb), "once decompressed")
    ok = gzip.compress((EVENTS / "cloudtrail_log_file.json").read_bytes())
    assert len(parse_event_bytes(ok)["Records"]) == 5
    one_line_error(lambda: parse_event_bytes(b"\x1f\x8bnot gzip at all"), "invalid gzip")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"", "empty event"),
        (b"   \n", "empty event"),
        (b'{"a": NaN}', "NaN is not allowed"),
        (b'{"a": Infinity}', "Infinity is not allowed"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"[" * 200_000 + b"]" * 200_000, "nesting too deep|larger than"),
        (b'{"a": ' + b"9" * 5000 + b"}", "number out of range"),
    ],
)
def test_bad_bytes(raw: bytes, match: str) -> None:
    one_line_error(lambda: parse_event_bytes(raw, max_bytes=1_000_000), match)


def test_deep_nesting_within_size() -> None:
    raw = b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    one_line_error(lambda: parse_event_bytes(raw), "nesting too deep")


def test_bom_and_bytearray_accepted() -> None:
    assert parse_event_bytes(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert parse_event_bytes(bytearray(b'{"a": 1}')) == {"a": 1}


def test_not_bytes() -> None:
    one_line_error(lambda: parse_event_bytes(123), "expected bytes or text")  # type: ignore[arg-type]


# --- CloudTrail --------------------------------------------------------------------------------


def runinstances() -> dict[str, Any]:
    return load("cloudtrail_runinstances.json")


def set_detail(ev: dict[str, Any], **kw: Any) -> dict[str, Any]:
    ev["detail"].update(kw)
    return ev


@pytest.mark.parametrize(
    ("value", "kind"), [(5, "number"), (["p5.48xlarge"], "list"), ({"v": 1}, "object"), (True, "boolean")]
)
def test_instance_type_wrong_type(value: Any, kind: str) -> None:
    ev = runinstances()
    ev["detail"]["responseElements"] = None
    ev["detail"]["requestParameters"]["instanceType"] = value
    msg = one_line_error(lambda: normalise(ev), "requestParameters.instanceType")
    assert msg.endswith(f"got {kind}")


def test_response_instance_type_wrong_type() -> None:
    ev = runinstances()
    ev["detail"]["responseElements"]["instancesSet"]["items"][0]["instanceType"] = 48
    one_line_error(lambda: normalise(ev), r"responseElements.instancesSet\[0\].instanceType")


@pytest.mark.parametrize("bad", ["P5 48xlarge", "", "p5.48xlarge;rm", "x" * 80, "-p5"])
def test_instance_type_bad_string(bad: str) -> None:
    ev = runinstances()
    ev["detail"]["responseElements"] = None
    ev["detail"]["requestParameters"]["instanceType"] = bad
    one_line_error(lambda: normalise(ev), "not a valid instance type")


def test_instance_type_is_lower_cased() -> None:
    ev = runinstances()
    ev["detail"]["responseElements"] = None
    ev["detail"]["requestParameters"]["instanceType"] = "P5.48XLARGE"
    req = normalise(ev)
    assert req.items[0].instance_type == "p5.48xlarge"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("eventSource"), "eventSource: expected a string, got null"),
        (lambda d: d.update(eventName=7), "eventName: expected a string, got number"),
        (lambda d: d.update(recipientAccountId="12345"), "recipientAccountId: expected a 12-digit"),
        (lambda d: d.update(awsRegion=["us-east-1"]), "awsRegion: expected an AWS region name"),
        (lambda d: d.update(requestParameters=None), "requestParameters: missing"),
        (lambda d: d.update(requestParameters="x"), "requestParameters: expected an object"),
        (lambda d: d.update(userIdentity="alice"), "userIdentity: expected an object"),
        (lambda d: d["userIdentity"].update(arn=["a"]), "userIdentity.arn: expected a string"),
        (lambda d: d.update(eventTime=1), "eventTime: expected a string"),
        (
            lambda d: d["requestParameters"]["instancesSet"]["items"][0].update(maxCount=-1),
            r"instancesSet.items\[0\]|count out of range",
        ),
        (
            lambda d: d["requestParameters"]["instancesSet"]["items"][0].update(maxCount="lots"),
            "expected an integer, got string",
        ),
        (lambda d: d["requestParameters"].update(instancesSet=[5]), r"instancesSet\[0\]: expected an object"),
        (
            lambda d: d["responseElements"]["instancesSet"]["items"][0].update(instanceId="sg-123"),
            "not an EC2 instance id",
        ),
        (lambda d: d["requestParameters"].update(launchTemplate={"version": "1"}), "needs an id or a name"),
        (lambda d: d["requestParameters"].update(launchTemplate=[1]), "launchTemplate: expected an object"),
    ],
)
def test_cloudtrail_malformed(mutate: Callable[[dict[str, Any]], Any], match: str) -> None:
    ev = runinstances()
    mutate(ev["detail"])
    one_line_error(lambda: normalise(ev), match)


def test_detail_not_an_object() -> None:
    ev = runinstances()
    ev["detail"] = "nope"
    one_line_error(lambda: normalise(ev), "detail: expected an object, got string")


@pytest.mark.parametrize(
    ("name", "mutate", "match"),
    [
        (
            "cloudtrail_createfleet.json",
            lambda r: r["CreateFleetRequest"]["LaunchTemplateConfigs"].update(
                Overrides=[{"InstanceType": 1}]
            ),
            r"Overrides\[0\].InstanceType: expected an instance type string, got number",
        ),
        (
            "cloudtrail_createfleet.json",
            lambda r: r["CreateFleetRequest"].update(LaunchTemplateConfigs={"Overrides": {"SubnetId": "s"}}),
            "neither a launch template nor an instance type",
        ),
        (
            "cloudtrail_sagemaker_training.json",
            lambda r: r["resourceConfig"].update(instanceType=7),
            r"resourceConfig.instanceType: expected an instance type string, got number",
        ),
        (
            "cloudtrail_eks_createnodegroup.json",
            lambda r: r.update(instanceTypes=[["p5.48xlarge"]]),
            r"instanceTypes\[0\]: expected an instance type string, got list",
        ),
        (
            "cloudtrail_asg_create.json",
            lambda r: r.update(desiredCapacity=10**9),
            "count out of range",
        ),
        (
            "cloudtrail_purchasecapacityblock.json",
            lambda r: r["PurchaseCapacityBlockRequest"].pop("CapacityBlockOfferingId"),
            "CapacityBlockOfferingId: expected a string, got null",
        ),
        (
            "cloudtrail_modifyinstanceattribute.json",
            lambda r: r.pop("instanceId"),
            "instanceId: expected a string",
        ),
        (
            "cloudtrail_emr_runjobflow.json",
            lambda r: r["instances"]["instanceGroups"][1].update(instanceCount=2.5),
            "expected an integer, got number",
        ),
    ],
)
def test_service_shapes_malformed(name: str, mutate: Callable[[dict[str, Any]], Any], match: str) -> None:
    ev = load(name)
    mutate(ev["detail"]["requestParameters"])
    one_line_error(lambda: normalise(ev), match)


# --- state change, hook, broker ----------------------------------------------------------------


def test_state_change_malformed() -> None:
    ev = load("state_change_pending.json")
    del ev["detail"]["instance-id"]
    one_line_error(lambda: normalise(ev), "detail.instance-id: expected a string, got null")
    ev = load("state_change_pending.json")
    ev["account"] = 111122223333
    one_line_error(lambda: normalise(ev), "account: expected a 12-digit AWS account id, got number")
    ev = load("state_change_pending.json")
    ev["source"] = "my.app"
    one_line_error(lambda: normalise(ev), "must come from aws.ec2")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: e.update(awsAccountId=None), "awsAccountId: expected a 12-digit"),
        (lambda e: e.update(clientRequestToken=5), "clientRequestToken: expected a string"),
        (lambda e: e.update(stackId="not-an-arn"), "stackId: not a CloudFormation stack ARN"),
        (lambda e: e.update(requestData=[]), "requestData: expected an object, got list"),
        (lambda e: e["requestData"].pop("targetName"), "requestData.targetName: expected a string"),
        (lambda e: e["requestData"].update(targetModel=None), "requestData.targetModel: expected an object"),
        (
            lambda e: e["requestData"]["targetModel"].update(resourceProperties="x"),
            "resourceProperties: expected an object, got string",
        ),
        (
            lambda e: e["requestData"]["targetModel"]["resourceProperties"].update(
                InstanceType=["p5.48xlarge"]
            ),
            "resourceProperties.InstanceType: expected an instance type string, got list",
        ),
    ],
)
def test_cfn_hook_malformed(mutate: Callable[[dict[str, Any]], Any], match: str) -> None:
    ev = load("cfn_hook_ec2_instance.json")
    mutate(ev)
    one_line_error(lambda: normalise(ev), match)


def test_cfn_hook_numbers_as_strings() -> None:
    ev = load("cfn_hook_asg.json")
    ev["requestData"]["targetModel"]["resourceProperties"]["MaxSize"] = "four"
    one_line_error(lambda: normalise(ev), "MaxSize: expected an integer, got string")


def broker_with(body: Any) -> dict[str, Any]:
    ev = load("broker_launch.json")
    ev["body"] = body if isinstance(body, str) else json.dumps(body)
    return ev


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            {"instanceType": "p5.48xlarge", "count": 0, "region": "us-east-1"},
            "count: Input should be greater",
        ),
        (
            {"instanceType": "p5.48xlarge", "count": 1001, "region": "us-east-1"},
            "count: Input should be less",
        ),
        (
            {"instanceType": "p5.48xlarge", "count": "2", "region": "us-east-1"},
            "count: Input should be a valid int",
        ),
        ({"instanceType": "P5!", "region": "us-east-1"}, "instanceType: String should match pattern"),
        ({"instanceType": 5, "region": "us-east-1"}, "instanceType: Input should be a valid string"),
        ({"instanceType": "p5.48xlarge"}, "region: Field required"),
        ({"region": "us-east-1"}, "give instanceType, launchTemplate or fleet"),
        (
            {"instanceType": "p5.48xlarge", "region": "us-east-1", "extra": 1},
            "extra: Extra inputs are not permitted",
        ),
        ({"instanceType": "p5.48xlarge", "region": "us-east-1", "attestationId": "a" * 300}, "attestationId"),
        (
            {"launchTemplate": {"id": "lt-0abc1234def567893", "name": "x1x"}, "region": "us-east-1"},
            "exactly one",
        ),
        ({"fleet": {"instanceTypes": []}, "region": "us-east-1"}, "fleet.instanceTypes"),
        ("[1]", "launch body: expected a JSON object|event must be a JSON object"),
        ('{"instanceType": ', "invalid JSON"),
    ],
)
def test_broker_body_malformed(body: Any, match: str) -> None:
    one_line_error(lambda: normalise(broker_with(body)), match)


def test_broker_envelope_malformed() -> None:
    ev = load("broker_launch.json")
    ev["httpMethod"] = "GET"
    one_line_error(lambda: normalise(ev), "only POST")
    ev = load("broker_launch.json")
    ev["resource"] = "/admin"
    one_line_error(lambda: normalise(ev), "only /launch")
    ev = load("broker_launch.json")
    ev["isBase64Encoded"] = True
    ev["body"] = "%%%not base64%%%"
    one_line_error(lambda: normalise(ev), "not valid base64")
    ev = load("broker_launch.json")
    ev["body"] = base64.b64encode(b"x" * 20_000).decode()
    ev["isBase64Encoded"] = True
    one_line_error(lambda: normalise(ev), "larger than 16384 bytes")
    ev = load("broker_launch.json")
    del ev["requestContext"]["identity"]["userArn"]
    one_line_error(lambda: normalise(ev), "requestContext.identity.userArn")
    ev = load("broker_launch.json")
    ev["body"] = None
    one_line_error(lambda: normalise(ev), "body: expected a string, got null")


def test_broker_direct_malformed() -> None:
    ev = load("broker_direct.json")
    ev["launch"] = "p5.48xlarge"
    one_line_error(lambda: normalise(ev), "launch body: expected a JSON object, got string")
    ev = load("broker_direct.json")
    ev["account_id"] = "alice"
    one_line_error(lambda: normalise(ev), "account_id: expected a 12-digit")


@pytest.mark.parametrize("event", [{}, {"foo": "bar"}, {"Records": "x"}, [], 5, None, "", "[]"])
def test_unrecognised_shapes(event: Any) -> None:
    with pytest.raises(InputError) as info:
        normalise(event)
    assert "\n" not in str(info.value)
