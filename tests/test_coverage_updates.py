"""Updates and restarts are launches: each CloudTrail record (as AWS documents it) is resolved against
moto and decided by the real pipeline (embedded OPA) like a launch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enforcer.accounts import AccountOrigin, StaticAccountDirectory
from enforcer.intake import normalise
from enforcer.model import Ignored, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.resolve import AwsResolver
from tests.lambda_env import MOTO_AMI

CN = "123456789012"  # moto's default account is the CN-origin account here
NOW = 1_796_083_200.0


def record(source: str, name: str, params: dict[str, Any], response: Any = None) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": CN, "arn": f"arn:aws:iam::{CN}:user/alice"},
        "eventTime": "2026-12-01T00:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "requestParameters": params,
        "responseElements": response,
        "eventID": f"e-{name}",
        "recipientAccountId": CN,
    }


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {
            "ec2": boto3.client("ec2", region_name="us-east-1"),
            "asg": boto3.client("autoscaling", region_name="us-east-1"),
            "sagemaker": boto3.client("sagemaker", region_name="us-east-1"),
        }


@pytest.fixture
def decide(aws: dict[str, Any], engine: Any, catalog: Any) -> Any:
    origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
    resolver = AwsResolver(aws["ec2"], aws["asg"], sagemaker=aws["sagemaker"], attempts=1)
    enforcer = Enforcer(
        catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver
    )

    def run(rec: dict[str, Any]) -> tuple[LaunchRequest, Any]:
        req = normalise(rec)
        assert isinstance(req, LaunchRequest), req
        return req, enforcer.decide(req, now=NOW)

    return run


def _denied_for(decision: Any, itype: str) -> None:
    assert decision.effect == "deny", decision.reasons
    assert "ORIGIN_RESTRICTED" in {r.code for r in decision.reasons}
    assert itype in {i.instance_type for i in decision.request.items}


def test_start_instances_of_a_stopped_gpu_instance(aws: dict[str, Any], decide: Any) -> None:
    ec2 = aws["ec2"]
    iid = ec2.run_instances(ImageId=MOTO_AMI, InstanceType="p4d.24xlarge", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[iid])
    # the CloudTrail user guide's StartInstances record shape
    params = {"instancesSet": {"items": [{"instanceId": iid}]}}
    response = {
        "instancesSet": {
            "items": [
                {
                    "instanceId": iid,
                    "currentState": {"code": 0, "name": "pending"},
                    "previousState": {"code": 80, "name": "stopped"},
                }
            ]
        }
    }
    req, decision = decide(record("ec2.amazonaws.com", "StartInstances", params, response))
    assert req.instance_ids == [iid]
    _denied_for(decision, "p4d.24xlarge")


def test_start_instances_of_a_cpu_instance_is_not_controlled(aws: dict[str, Any], decide: Any) -> None:
    iid = aws["ec2"].run_instances(ImageId=MOTO_AMI, InstanceType="m5.large", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    _, decision = decide(
        record("ec2.amazonaws.com", "StartInstances", {"instancesSet": {"items": [{"instanceId": iid}]}})
    )
    assert decision.effect == "allow", decision.reasons


def test_eks_node_group_version_update_with_a_gpu_launch_template(aws: dict[str, Any], decide: Any) -> None:
    lt = aws["ec2"].create_launch_template(
        LaunchTemplateName="gpu-nodes",
        LaunchTemplateData={"InstanceType": "p5.48xlarge", "ImageId": MOTO_AMI},
    )["LaunchTemplate"]
    params = {
        "clusterName": "prod",
        "nodegroupName": "workers",
        "launchTemplate": {"id": lt["LaunchTemplateId"], "version": "1"},
    }
    _, decision = decide(record("eks.amazonaws.com", "UpdateNodegroupVersion", params))
    _denied_for(decision, "p5.48xlarge")
    plain = normalise(
        record("eks.amazonaws.com", "UpdateNodegroupVersion", {"clusterName": "prod", "nodegroupName": "w"})
    )
    assert isinstance(plain, Ignored)


def test_instance_refresh_with_a_desired_gpu_configuration(aws: dict[str, Any], decide: Any) -> None:
    lt = aws["ec2"].create_launch_template(
        LaunchTemplateName="gpu-asg", LaunchTemplateData={"InstanceType": "p4d.24xlarge", "ImageId": MOTO_AMI}
    )["LaunchTemplate"]
    params = {
        "autoScalingGroupName": "web",
        "desiredConfiguration": {"launchTemplate": {"launchTemplateName": "gpu-asg", "version": "$Latest"}},
        "preferences": {"minHealthyPercentage": 90},
    }
    _, decision = decide(record("autoscaling.amazonaws.com", "StartInstanceRefresh", params))
    _denied_for(decision, "p4d.24xlarge")
    mixed = {
        "autoScalingGroupName": "web",
        "desiredConfiguration": {
            "mixedInstancesPolicy": {
                "launchTemplate": {
                    "launchTemplateSpecification": {"launchTemplateId": lt["LaunchTemplateId"]},
                    "overrides": [{"instanceType": "m5.large"}, {"instanceType": "p5.48xlarge"}],
                }
            }
        },
    }
    _, decision = decide(record("autoscaling.amazonaws.com", "StartInstanceRefresh", mixed))
    _denied_for(decision, "p5.48xlarge")


def test_instance_refresh_without_desired_configuration_resolves_the_group(
    aws: dict[str, Any], decide: Any
) -> None:
    aws["ec2"].create_launch_template(
        LaunchTemplateName="asg-lt", LaunchTemplateData={"InstanceType": "p4d.24xlarge", "ImageId": MOTO_AMI}
    )
    aws["asg"].create_auto_scaling_group(
        AutoScalingGroupName="gpu-group",
        LaunchTemplate={"LaunchTemplateName": "asg-lt", "Version": "$Latest"},
        MinSize=0,
        MaxSize=2,
        AvailabilityZones=["us-east-1a"],
    )
    _, decision = decide(
        record("autoscaling.amazonaws.com", "StartInstanceRefresh", {"autoScalingGroupName": "gpu-group"})
    )
    _denied_for(decision, "p4d.24xlarge")


def test_update_endpoint_resolves_the_endpoint_configuration(aws: dict[str, Any], decide: Any) -> None:
    """moto's SageMaker accepts no controlled type: its answer is resolved (and allowed) as it stands."""
    sm = aws["sagemaker"]
    sm.create_model(
        ModelName="m",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
        ExecutionRoleArn=f"arn:aws:iam::{CN}:role/sm",
    )
    sm.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[
            {
                "VariantName": "a",
                "ModelName": "m",
                "InitialInstanceCount": 2,
                "InstanceType": "ml.p3.16xlarge",
            }
        ],
    )
    params = {"endpointName": "chat", "endpointConfigName": "cfg"}
    req, decision = decide(record("sagemaker.amazonaws.com", "UpdateEndpoint", params))
    assert [(i.instance_type, i.count) for i in req.items] == [("p3.16xlarge", 2)]
    assert decision.effect == "allow", decision.reasons
    _, missing = decide(
        record(
            "sagemaker.amazonaws.com", "CreateEndpoint", {"endpointName": "x", "endpointConfigName": "nope"}
        )
    )
    assert missing.effect == "deny"  # unresolvable: fails closed
    assert "REQUEST_UNRESOLVED" in {r.code for r in missing.reasons}


def test_update_endpoint_onto_a_gpu_configuration(engine: Any, catalog: Any) -> None:
    """A recorded DescribeEndpointConfig answer (botocore Stubber, validated against the model) with H100s."""
    from botocore.stub import Stubber

    sm = boto3.client("sagemaker", region_name="us-east-1")
    answer = {
        "EndpointConfigName": "gpu-cfg",
        "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:{CN}:endpoint-config/gpu-cfg",
        "CreationTime": "2026-11-30T00:00:00Z",
        "ProductionVariants": [
            {
                "VariantName": "a",
                "ModelName": "m",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.p5.48xlarge",
                "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 8},
            },
            {
                "VariantName": "s",
                "ModelName": "m",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            },
        ],
    }
    origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
    with Stubber(sm) as stub:
        stub.add_response("describe_endpoint_config", answer, {"EndpointConfigName": "gpu-cfg"})
        resolver = AwsResolver(boto3.client("ec2", region_name="us-east-1"), sagemaker=sm, attempts=1)
        enforcer = Enforcer(
            catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver
        )
        req = normalise(
            record(
                "sagemaker.amazonaws.com",
                "UpdateEndpoint",
                {"endpointName": "e", "endpointConfigName": "gpu-cfg"},
            )
        )
        assert isinstance(req, LaunchRequest)
        decision = enforcer.decide(req, now=NOW)
    assert [(i.instance_type, i.count) for i in req.items] == [("p5.48xlarge", 8)]
    _denied_for(decision, "p5.48xlarge")


def test_notebook_resize_is_a_launch_and_other_updates_are_not(decide: Any) -> None:
    params = {"notebookInstanceName": "nb", "instanceType": "ml.p5.48xlarge"}
    _, decision = decide(record("sagemaker.amazonaws.com", "UpdateNotebookInstance", params))
    _denied_for(decision, "p5.48xlarge")
    other = normalise(
        record(
            "sagemaker.amazonaws.com",
            "UpdateNotebookInstance",
            {"notebookInstanceName": "nb", "volumeSizeInGB": 50},
        )
    )
    assert isinstance(other, Ignored)


@pytest.mark.parametrize(
    ("source", "name", "params", "itype"),
    [
        (
            "ec2.amazonaws.com",
            "ModifyInstanceAttribute",
            {"instanceId": "i-0123456789abcdef0", "instanceType": {"value": "p5.48xlarge"}},
            "p5.48xlarge",
        ),
        (
            "batch.amazonaws.com",
            "UpdateComputeEnvironment",
            {
                "computeEnvironment": "ce",
                "computeResources": {"maxvCpus": 192, "instanceTypes": ["p4d.24xlarge"]},
            },
            "p4d.24xlarge",
        ),
        (
            "sagemaker.amazonaws.com",
            "UpdateCluster",
            {
                "clusterName": "hp",
                "instanceGroups": [
                    {"instanceGroupName": "g", "instanceType": "ml.p5.48xlarge", "instanceCount": 4}
                ],
            },
            "p5.48xlarge",
        ),
    ],
)
def test_other_updates_are_decided_like_launches(
    decide: Any, source: str, name: str, params: dict[str, Any], itype: str
) -> None:
    _, decision = decide(record(source, name, params))
    _denied_for(decision, itype)


def _studio_enforcer(engine: Any, catalog: Any, sm: Any) -> Enforcer:
    origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
    resolver = AwsResolver(boto3.client("ec2", region_name="us-east-1"), sagemaker=sm, attempts=1)
    return Enforcer(
        catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver
    )


def test_studio_app_without_a_type_runs_on_the_profile_default(engine: Any, catalog: Any) -> None:
    """CreateApp naming no type runs on the user's default spec (recorded Describe* answers, Stubber)."""
    from botocore.stub import Stubber

    sm = boto3.client("sagemaker", region_name="us-east-1")
    params = {
        "domainId": "d-abc123",
        "userProfileName": "alice",
        "appType": "JupyterLab",
        "appName": "default",
    }
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_user_profile",
            {
                "UserSettings": {
                    "JupyterLabAppSettings": {"DefaultResourceSpec": {"InstanceType": "ml.p5.48xlarge"}}
                }
            },
            {"DomainId": "d-abc123", "UserProfileName": "alice"},
        )
        stub.add_response("describe_domain", {"DefaultUserSettings": {}}, {"DomainId": "d-abc123"})
        req = normalise(record("sagemaker.amazonaws.com", "CreateApp", params))
        assert isinstance(req, LaunchRequest)
        decision = _studio_enforcer(engine, catalog, sm).decide(req, now=NOW)
    _denied_for(decision, "p5.48xlarge")


def test_studio_app_defaults_fall_back_to_the_domain_then_sagemaker(engine: Any, catalog: Any) -> None:
    from botocore.stub import Stubber

    sm = boto3.client("sagemaker", region_name="us-east-1")
    params = {"domainId": "d-abc123", "spaceName": "team", "appType": "CodeEditor", "appName": "default"}
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_space", {"SpaceSettings": {}}, {"DomainId": "d-abc123", "SpaceName": "team"}
        )
        stub.add_response("describe_domain", {}, {"DomainId": "d-abc123"})
        req = normalise(record("sagemaker.amazonaws.com", "CreateApp", params))
        assert isinstance(req, LaunchRequest)
        decision = _studio_enforcer(engine, catalog, sm).decide(req, now=NOW)
    assert [i.instance_type for i in req.items] == ["t3.medium"]
    assert decision.effect == "allow", decision.reasons
    unresolved = normalise(record("sagemaker.amazonaws.com", "CreateApp", {**params, "domainId": "d-gone"}))
    assert isinstance(unresolved, LaunchRequest)
    decision = Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory([AccountOrigin(CN, "CN", "CN", "CN", "verified", None)]),
        engine=engine,
    ).decide(unresolved, now=NOW)
    assert decision.effect == "deny"  # no resolver: the default may be a GPU, fail closed


def test_notebook_restart_and_endpoint_scale_up(engine: Any, catalog: Any) -> None:
    """StartNotebookInstance and UpdateEndpointWeightsAndCapacities resolved from recorded answers."""
    from botocore.stub import Stubber

    sm = boto3.client("sagemaker", region_name="us-east-1")
    enforcer = _studio_enforcer(engine, catalog, sm)
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_notebook_instance",
            {"NotebookInstanceName": "nb", "InstanceType": "ml.p4d.24xlarge"},
            {"NotebookInstanceName": "nb"},
        )
        req = normalise(
            record("sagemaker.amazonaws.com", "StartNotebookInstance", {"notebookInstanceName": "nb"})
        )
        assert isinstance(req, LaunchRequest)
        _denied_for(enforcer.decide(req, now=NOW), "p4d.24xlarge")

        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": "chat",
                "EndpointArn": f"arn:aws:sagemaker:us-east-1:{CN}:endpoint/chat",
                "EndpointConfigName": "cfg",
                "EndpointStatus": "InService",
                "CreationTime": "2026-11-30T00:00:00Z",
                "LastModifiedTime": "2026-11-30T00:00:00Z",
            },
            {"EndpointName": "chat"},
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "cfg",
                "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:{CN}:endpoint-config/cfg",
                "CreationTime": "2026-11-30T00:00:00Z",
                "ProductionVariants": [
                    {
                        "VariantName": "a",
                        "ModelName": "m",
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.p5.48xlarge",
                    }
                ],
            },
            {"EndpointConfigName": "cfg"},
        )
        params = {
            "endpointName": "chat",
            "desiredWeightsAndCapacities": [{"variantName": "a", "desiredInstanceCount": 16}],
        }
        req = normalise(record("sagemaker.amazonaws.com", "UpdateEndpointWeightsAndCapacities", params))
        assert isinstance(req, LaunchRequest)
        decision = enforcer.decide(req, now=NOW)
    assert [(i.instance_type, i.count) for i in req.items] == [("p5.48xlarge", 16)]
    _denied_for(decision, "p5.48xlarge")
    weights = {
        "endpointName": "chat",
        "desiredWeightsAndCapacities": [{"variantName": "a", "desiredWeight": 0.5}],
    }
    assert isinstance(
        normalise(record("sagemaker.amazonaws.com", "UpdateEndpointWeightsAndCapacities", weights)), Ignored
    )
