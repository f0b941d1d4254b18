"""Lambda Hook requests as the CloudFormation Hooks user guide documents them.

The ``cfn_hook_doc_*`` fixtures are copied from the guide's examples (resource, stack, change set and
their payloads; the resource example has no ``clientRequestToken``). STACK and CHANGE_SET payloads
are put in moto S3 and handed to the hook as presigned URLs, which the hook fetches over HTTP.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enforcer.hook_payload import PresignedFetcher
from enforcer.model import InputError
from lambdas import cfn_hook
from tests.lambda_env import HOME, MEMBER, LambdaContext, World, load_event, world_factory

CTX = LambdaContext(function_name="gpu-cfn-hook")
BUCKET = "cfn-hook-payloads-111111111111"

GPU_TEMPLATE = {
    "Resources": {
        "Trainer": {
            "Type": "AWS::EC2::Instance",
            "Properties": {"InstanceType": "p5.48xlarge", "ImageId": "ami-0abcdef1234567890"},
        },
        "Notebook": {
            "Type": "AWS::SageMaker::NotebookInstance",
            "Properties": {"InstanceType": "ml.p4d.24xlarge", "RoleArn": "arn:aws:iam::111111111111:role/sm"},
        },
        "Logs": {"Type": "AWS::S3::Bucket", "Properties": {}},
    }
}
YAML_TEMPLATE = """\
Parameters:
  Size:
    Type: String
    Default: t3.micro
Resources:
  Web:
    Type: AWS::EC2::Instance
    Properties:
      InstanceType: !Ref Size
      ImageId: !Sub "{{resolve:ssm:/ami/${AWS::Region}}}"
  Trainer:
    Type: AWS::EC2::Instance
    Properties:
      InstanceType: p5.48xlarge
      ImageId: !GetAtt Image.Id
"""


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def hook(event: dict[str, Any]) -> dict[str, Any]:
    return cfn_hook.handler(event, CTX)


def presign(w: World, payload: Any, key: str = "payload.json") -> str:
    s3 = w.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    url: str = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=900)
    return url


def template_event(name: str, url: str, account: str | None = None) -> dict[str, Any]:
    event = load_event(name)
    event["requestData"]["payload"] = url
    if account is not None:
        event["clientRequestToken"] = f"{event['clientRequestToken'][:24]}{account}"
        event["awsAccountId"] = account
        event["stackId"] = event["stackId"].replace("123456789012", account)
    return event


# -- RESOURCE and CLOUD_CONTROL, as documented (no clientRequestToken) ------------------------------
@pytest.mark.parametrize(
    "fixture", ["cfn_hook_doc_resource_dynamodb.json", "cfn_hook_doc_cloud_control_notoken.json"]
)
def test_documented_resource_requests_without_token_succeed(make_world: Any, fixture: str) -> None:
    w: World = make_world()
    result = hook(load_event(fixture))
    assert result["hookStatus"] == "SUCCESS", result
    assert "errorCode" not in result and "clientRequestToken" not in result
    assert w.audit_count() == 0  # a non-launch type is not decided


def test_gpu_resource_without_token_is_still_denied(make_world: Any) -> None:
    w: World = make_world()
    event = load_event("cfn_hook_doc_resource_dynamodb.json")
    event["awsAccountId"] = MEMBER
    event["stackId"] = event["stackId"].replace("123456789012", MEMBER)
    event["actionInvocationPoint"] = "CREATE_PRE_PROVISION"
    event["requestData"].update(targetName="AWS::EC2::Instance", targetType="AWS::EC2::Instance")
    event["requestData"]["targetModel"] = {
        "resourceProperties": {"InstanceType": "p5.48xlarge", "ImageId": "ami-1"},
        "previousResourceProperties": {},
    }
    result = hook(event)
    assert (result["hookStatus"], result["errorCode"]) == ("FAILED", "NonCompliant")
    assert "ORIGIN_RESTRICTED" in result["message"] and "clientRequestToken" not in result
    assert w.audit_count() == 1


def test_lowercase_token_spelling_is_echoed(make_world: Any) -> None:
    make_world()
    event = load_event("cfn_hook_doc_resource_dynamodb.json")
    event["clientRequesttoken"] = "tok-lower"
    assert hook(event)["clientRequestToken"] == "tok-lower"


# -- STACK -------------------------------------------------------------------------------------------
def test_documented_stack_payload_succeeds(make_world: Any) -> None:
    w: World = make_world()
    event = template_event(
        "cfn_hook_doc_stack.json", presign(w, load_event("payloads/cfn_hook_doc_stack_payload.json"))
    )
    result = hook(event)
    assert result == {
        "hookStatus": "SUCCESS",
        "message": "not evaluated: no launch-bearing resource in template",
        "clientRequestToken": "f8da6d11-b23f-48f4-814c-0fb6a667f50e",
    }
    assert w.audit_count() == 0


def test_stack_with_gpu_resources_is_decided_as_one_request(make_world: Any) -> None:
    w: World = make_world()
    url = presign(w, {"template": json.dumps(GPU_TEMPLATE), "previousTemplate": ""})
    denied = hook(template_event("cfn_hook_doc_stack.json", url, MEMBER))
    allowed = hook(template_event("cfn_hook_doc_stack.json", url, HOME))
    assert (denied["hookStatus"], denied["errorCode"]) == ("FAILED", "NonCompliant"), denied
    assert "ORIGIN_RESTRICTED" in denied["message"]
    assert allowed["hookStatus"] == "SUCCESS" and "errorCode" not in allowed
    assert w.audit_count() == 2


def test_yaml_template_with_short_forms_defers_intrinsic_types(make_world: Any) -> None:
    from enforcer.hook_payload import normalise_hook

    w: World = make_world()
    url = presign(w, {"template": YAML_TEMPLATE}, "yaml.json")
    event = template_event("cfn_hook_doc_stack.json", url, MEMBER)
    req = normalise_hook(event, "2026-12-01T00:00:00Z", PresignedFetcher())
    assert not isinstance(req, type(None))
    assert [i.instance_type for i in req.items] == ["p5.48xlarge"]  # type: ignore[union-attr]
    assert req.extra["deferred"] == ["Web"] and req.extra["resources"] == ["Trainer"]  # type: ignore[union-attr]
    assert hook(event)["hookStatus"] == "FAILED"
    only_param = YAML_TEMPLATE.split("  Trainer:")[0]
    event = template_event("cfn_hook_doc_stack.json", presign(w, {"template": only_param}, "p.json"), MEMBER)
    result = hook(event)
    assert result["hookStatus"] == "SUCCESS" and "left to the RESOURCE invocation" in result["message"]


def test_stack_delete_is_not_fetched(make_world: Any) -> None:
    make_world()
    event = load_event("cfn_hook_doc_stack.json")  # payload "https://s3......" would not resolve
    event["actionInvocationPoint"] = "DELETE_PRE_PROVISION"
    assert hook(event)["hookStatus"] == "SUCCESS"


# -- CHANGE_SET ----------------------------------------------------------------------------------------
def test_documented_change_set_payload_succeeds(make_world: Any) -> None:
    w: World = make_world()
    payload = load_event("payloads/cfn_hook_doc_change_set_payload.json")
    result = hook(template_event("cfn_hook_doc_change_set.json", presign(w, payload)))
    assert result["hookStatus"] == "SUCCESS" and result["clientRequestToken"].startswith("f8da6d11")
    assert w.audit_count() == 0


def test_change_set_after_context_with_string_numbers_is_decided(make_world: Any) -> None:
    w: World = make_world()
    payload = copy.deepcopy(load_event("payloads/cfn_hook_doc_change_set_payload.json"))
    payload["changedResources"].append(
        {
            "logicalResourceId": "Workers",
            "resourceType": "AWS::AutoScaling::AutoScalingGroup",
            "action": "CREATE",
            "lineNumber": 20,
            "beforeContext": None,
            "afterContext": json.dumps(
                {
                    "Properties": {
                        "MinSize": "0",
                        "MaxSize": "8",
                        "LaunchConfigurationName": "legacy",
                        "MixedInstancesPolicy": {
                            "LaunchTemplate": {
                                "LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "1"},
                                "Overrides": [
                                    {"InstanceType": "p5.48xlarge"},
                                    {"InstanceType": "p5e.48xlarge"},
                                ],
                            }
                        },
                    }
                }
            ),
        }
    )
    result = hook(template_event("cfn_hook_doc_change_set.json", presign(w, payload), MEMBER))
    assert (result["hookStatus"], result["errorCode"]) == ("FAILED", "NonCompliant"), result
    assert w.audit_count() == 1


# -- failures: fail closed, never fetch what is not S3 --------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://evil.example.com/payload.json",
        "https://s3.amazonaws.com.evil.example/x",
        "https://user:pw@bucket.s3.amazonaws.com/x",
        "file:///etc/passwd",
    ],
)
def test_payload_urls_that_are_not_s3_are_refused(make_world: Any, url: str) -> None:
    make_world()
    result = hook(template_event("cfn_hook_doc_stack.json", url))
    assert (result["hookStatus"], result["errorCode"]) == ("FAILED", "InternalFailure")
    with pytest.raises(InputError):
        PresignedFetcher().check(url)


def test_missing_payload_object_fails_closed(make_world: Any) -> None:
    w: World = make_world()
    presign(w, {"template": "{}"})
    s3 = w.client("s3")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "gone.json"})
    result = hook(template_event("cfn_hook_doc_stack.json", url))
    assert (result["hookStatus"], result["errorCode"]) == ("FAILED", "InternalFailure")
    assert "PayloadError" in result["message"]


@pytest.mark.parametrize(
    "template",
    [
        "a: &x [1]\nb: *x\n",  # aliases: refused (CloudFormation has none)
        "Resources: [1, 2]",
        "{" * 5000,
        # a repeated key could let the template say p5 to CloudFormation and t3 to the hook
        '{"Resources": {"A": {"Type": "AWS::EC2::Instance", "Properties": {"InstanceType": "p5.48xlarge"}},'
        ' "A": {"Type": "AWS::S3::Bucket"}}}',
        "Resources:\n  A:\n    Type: AWS::EC2::Instance\n    Properties: {InstanceType: p5.48xlarge}\n"
        "  A:\n    Type: AWS::S3::Bucket\n",
        '!!python/object/apply:os.system ["true"]',  # no Python objects from YAML
        json.dumps({"Resources": {f"R{i}": {"Type": "AWS::S3::Bucket"} for i in range(501)}}),
    ],
)
def test_malformed_templates_fail_closed(make_world: Any, template: str) -> None:
    w: World = make_world()
    result = hook(template_event("cfn_hook_doc_stack.json", presign(w, {"template": template})))
    assert (result["hookStatus"], result["errorCode"]) == ("FAILED", "InternalFailure"), result


def test_oversize_payload_is_refused(make_world: Any) -> None:
    w: World = make_world()
    url = presign(w, b"x" * 2048, "big.json")
    from enforcer.hook_payload import PayloadError

    with pytest.raises(PayloadError):
        PresignedFetcher(max_bytes=1024)(url)


def test_non_launch_types_answer_without_building_a_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """No runtime, and a configuration that could not build one: a DynamoDB table still passes."""
    from enforcer.wiring.aws import set_runtime

    set_runtime(None)
    monkeypatch.setenv("ENFORCER_MODE", "not-a-mode")  # building a runtime would raise ConfigError
    result = hook(load_event("cfn_hook_doc_resource_dynamodb.json"))
    assert result["hookStatus"] == "SUCCESS" and "not evaluated" in result["message"]
    gpu = load_event("cfn_hook_ec2_instance.json")
    assert (
        hook(gpu)["errorCode"] == "InternalFailure"
    )  # a launch-bearing type needs the runtime: fails closed


def test_change_set_with_dynamic_reference_is_left_to_the_resource_invocation(make_world: Any) -> None:
    """``{{resolve:ssm:...}}`` is resolved only at provisioning: the change set cannot be failed for it."""
    w: World = make_world()
    payload = {
        "template": "{}",
        "changedResources": [
            {
                "logicalResourceId": "Web",
                "resourceType": "AWS::EC2::Instance",
                "action": "CREATE",
                "lineNumber": 3,
                "beforeContext": None,
                "afterContext": json.dumps(
                    {"Properties": {"InstanceType": "{{resolve:ssm:/app/instance-type}}"}}
                ),
            }
        ],
    }
    result = hook(template_event("cfn_hook_doc_change_set.json", presign(w, payload), MEMBER))
    assert result["hookStatus"] == "SUCCESS" and "RESOURCE invocation" in result["message"], result
