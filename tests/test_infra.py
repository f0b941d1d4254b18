"""infra/: cfn-lint clean, coverage of every launch path, event patterns routed by moto, deployment into moto.

moto has no SAM transform, so the deployment test runs the real one (``samtranslator``, see
tests/sam_render.py) and deploys its output; tests/test_infra_artifact.py deploys from the built
artifact and runs the handlers. Resource types moto's CloudFormation cannot model are named in
``NOT_MODELLED`` and are covered by cfn-lint (informational rules included) and checkov only.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from moto import mock_aws

from enforcer.coverage import load_table
from enforcer.intake import CLOUDTRAIL_SHAPES
from enforcer.intake.cfn_hook import hook_target_names
from tests.sam_render import moto_api, sam_transform, zip_artifact

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
MEMBER = ROOT / "infra" / "member-account.yaml"
EVENTS = ROOT / "tests" / "events"
#: Types moto 5.2.1's CloudFormation skips ("No Moto CloudFormation support"); cfn-lint checks them.
NOT_MODELLED = {
    "AWS::CloudFormation::LambdaHook",
    "AWS::CloudWatch::Alarm",
    "AWS::ApiGateway::Stage",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::SecretsManager::Secret",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return data


def resources(t: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_is_clean() -> None:
    lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(lint), "--include-checks", "I", "--", str(TEMPLATE), str(MEMBER)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_functions_point_at_real_handlers() -> None:
    fns = resources(load(TEMPLATE), "AWS::Serverless::Function")
    handlers = sorted(f["Properties"]["Handler"] for f in fns.values())
    assert handlers == [
        "lambdas.attestation_intake.handler",
        "lambdas.broker.handler",
        "lambdas.cfn_hook.handler",
        "lambdas.guard.handler",
    ]
    for h in handlers:
        module, attr = h.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attr))


def _cloudtrail_rules(t: dict[str, Any]) -> list[dict[str, Any]]:
    patterns = [r["Properties"].get("EventPattern") for r in resources(t, "AWS::Events::Rule").values()]
    flat: list[dict[str, Any]] = []
    for p in patterns:
        if p:
            flat += p.get("$or", [p])
    return [p for p in flat if p.get("detail-type") == ["AWS API Call via CloudTrail"]]


def test_rules_cover_every_launch_path_and_exclude_failed_calls() -> None:
    rules = _cloudtrail_rules(load(TEMPLATE))
    covered = set()
    for p in rules:
        assert p["detail"]["errorCode"] == [{"exists": False}]
        covered |= {(s, n) for s in p["detail"]["eventSource"] for n in p["detail"]["eventName"]}
    decided = {(e.event_source, e.operation) for e in load_table() if e.status == "decided"}
    assert covered == set(CLOUDTRAIL_SHAPES) | decided  # generated from the coverage table
    (forward,) = _cloudtrail_rules(load(MEMBER))  # the member account forwards every covered source
    assert forward["detail"]["errorCode"] == [{"exists": False}]
    assert set(forward["detail"]["eventSource"]) == {s for s, _ in covered}
    prefixes = [p["prefix"] for p in forward["detail"]["eventName"]]
    assert all(any(n.startswith(p) for p in prefixes) for _, n in covered)
    assert not any(p in ("Describe", "Get", "List") for p in prefixes)
    for path in (TEMPLATE, MEMBER):
        for r in resources(load(path), "AWS::Events::Rule").values():
            if r["Properties"].get("EventPattern"):
                assert len(json.dumps(r["Properties"]["EventPattern"], separators=(",", ":"))) <= 2048


def test_hook_targets_every_resource_type_intake_reads() -> None:
    for path in (TEMPLATE, MEMBER):
        (hook,) = resources(load(path), "AWS::CloudFormation::LambdaHook").values()
        props = hook["Properties"]
        assert props["TargetFilters"]["TargetNames"] == list(hook_target_names())
        assert len(props["TargetFilters"]["TargetNames"]) <= 50  # the LambdaHook schema's maximum
        assert props["TargetOperations"] == ["RESOURCE", "CLOUD_CONTROL"] and props["FailureMode"] == "FAIL"


def test_audit_resources_are_immutable_and_signing() -> None:
    t = load(TEMPLATE)
    (bucket,) = resources(t, "AWS::S3::Bucket").values()
    lock = bucket["Properties"]["ObjectLockConfiguration"]
    assert (
        bucket["Properties"]["ObjectLockEnabled"] is True
        and lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    )
    (key,) = resources(t, "AWS::KMS::Key").values()
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")


def _fixture_events() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted(EVENTS.glob("*.json")):
        ev = json.loads(f.read_text())
        if (
            isinstance(ev, dict)
            and "detail-type" in ev
            and ev.get("source", "").startswith("aws.")
            and ev["source"] != "aws.events"
        ):
            out.append((f.name, ev))
    return out


@pytest.mark.parametrize("path", [TEMPLATE, MEMBER])
def test_moto_routes_fixture_events_through_the_patterns(path: Path) -> None:
    """Each rule's pattern, put on moto's EventBridge with an SQS target, receives exactly the launch events."""
    patterns = [
        r["Properties"]["EventPattern"]
        for r in resources(load(path), "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern")
    ]
    events = _fixture_events()
    assert len(events) > 30
    with mock_aws():
        eb, sqs = (
            boto3.client("events", region_name="us-east-1"),
            boto3.client("sqs", region_name="us-east-1"),
        )
        url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for i, p in enumerate(patterns):
            eb.put_rule(Name=f"r{i}", EventPattern=json.dumps(p))
            eb.put_targets(Rule=f"r{i}", Targets=[{"Id": "q", "Arn": arn}])
        delivered: dict[str, int] = {}
        for name, ev in events:
            eb.put_events(
                Entries=[
                    {
                        "Source": ev["source"],
                        "DetailType": ev["detail-type"],
                        "Detail": json.dumps(ev["detail"]),
                    }
                ]
            )
            n = 0
            while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                n += len(msgs)
                for m in msgs:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            delivered[name] = n
    ignored = {"cloudtrail_failed_call.json", "cloudtrail_readonly_call.json", "state_change_running.json"}
    assert all(delivered[name] == 0 for name in ignored if name in delivered), delivered
    assert {name: n for name, n in delivered.items() if name not in ignored and n != 1} == {}


def _deploy(cf: Any, name: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, str]:
    cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    summaries = cf.list_stack_resources(StackName=name)["StackResourceSummaries"]
    declared = {
        k for k, v in body["Resources"].items() if v["Type"] not in NOT_MODELLED and "Condition" not in v
    }
    created = {s["LogicalResourceId"]: s for s in summaries if s["ResourceStatus"] == "CREATE_COMPLETE"}
    assert declared <= set(created), declared - set(created)
    return {k: s.get("PhysicalResourceId", "") for k, s in created.items()}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_template_deploys_into_moto_cloudformation() -> None:
    """Through the real SAM transform (tests/sam_render.py); tests/test_infra_artifact.py runs the code."""
    params = {"OrganizationId": "o-abcdefghij", "Mode": "dryrun"}
    body = moto_api(sam_transform(TEMPLATE, params, "s3://code/lambda.zip"))
    with mock_aws():  # not lambda use_docker=False: moto then keeps CFN-made functions in another backend
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="code")
        s3.put_object(Bucket="code", Key="lambda.zip", Body=zip_artifact(ROOT / "lambdas"))
        cf = boto3.client("cloudformation", region_name="us-east-1")
        ids = _deploy(cf, "gpu-enforcer", body, params)
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        assert {
            "gpu-enforcer-accounts",
            "gpu-enforcer-resellers",
            "gpu-enforcer-attestations",
            "gpu-enforcer-audit",
            "gpu-enforcer-counters",
        } <= set(ddb.list_tables()["TableNames"])
        lam = boto3.client("lambda", region_name="us-east-1")
        guard = lam.get_function(FunctionName="gpu-enforcer-guard")["Configuration"]
        env = guard["Environment"]["Variables"]
        assert guard["Handler"] == "lambdas.guard.handler" and env["ENFORCER_MODE"] == "dryrun"
        assert (
            env["ENFORCER_AUDIT_TABLE"] == "gpu-enforcer-audit"
            and env["ENFORCER_REGISTRY_PREFIX"] == "gpu-enforcer-"
        )
        eb = boto3.client("events", region_name="us-east-1")
        targets = eb.list_targets_by_rule(Rule=ids["Ec2LaunchCallsRule"])["Targets"]
        assert targets[0]["Arn"] == guard["FunctionArn"] and "DeadLetterConfig" in targets[0]
        iam = boto3.client("iam", region_name="us-east-1")
        # the launch and guard roles come from member-account.yaml only (deployed here too): no name clash
        roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
        assert not roles & {"GpuLaunchBroker", "GpuEnforcerGuard"}, roles
        # the env of every function passes the handlers' own validation
        from enforcer.config import Config

        for fn in (
            "gpu-enforcer-guard",
            "gpu-enforcer-cfn-hook",
            "gpu-enforcer-broker",
            "gpu-enforcer-attestation-intake",
        ):
            variables = lam.get_function(FunctionName=fn)["Configuration"]["Environment"]["Variables"]
            # moto does not model AWS::SecretsManager::Secret, so it drops the variable that !Refs it
            assert (
                "ENFORCER_AUDIT_SALT_SECRET"
                in load(TEMPLATE)["Globals"]["Function"]["Environment"]["Variables"]
            )
            variables.setdefault("ENFORCER_AUDIT_SALT_SECRET", "audit-salt")
            cfg = Config.from_env({**variables, "AWS_REGION": "us-east-1"})
            assert cfg.accounts_table == "gpu-enforcer-accounts"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_member_template_deploys_into_moto_cloudformation() -> None:
    body = load(MEMBER)
    with mock_aws():
        cf = boto3.client("cloudformation", region_name="us-east-1")
        params = {
            "SecurityAccountId": "999999999999",
            "HookFunctionArn": "arn:aws:lambda:us-east-1:999999999999:function:gpu-enforcer-cfn-hook",
        }
        ids = _deploy(cf, "gpu-enforcer-member", body, params)
        iam = boto3.client("iam", region_name="us-east-1")
        trust = iam.get_role(RoleName="GpuEnforcerGuard")["Role"]["AssumeRolePolicyDocument"]
        assert "999999999999" in json.dumps(trust)
        eb = boto3.client("events", region_name="us-east-1")
        (target,) = eb.list_targets_by_rule(Rule=ids["ForwardLaunchEvents"])["Targets"]
        assert target["Arn"].endswith(":999999999999:event-bus/default")
