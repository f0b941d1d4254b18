"""Red team: CloudFormation resource types that put a controlled chip to work must not get SUCCESS.

Each payload is the documented Lambda Hook RESOURCE request (the CapacityReservation fixture, itself
from the Hooks guide) with another launch-bearing resource type and properties spelled as the
CloudFormation resource reference documents them. The hook used to answer SUCCESS ("resource type
carries no instance type") for all of them, although the same API calls are decided in CloudTrail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas import cfn_hook
from tests.lambda_env import HOME, MEMBER, LambdaContext, World, load_event, world_factory

CTX = LambdaContext(function_name="gpu-cfn-hook")

CASES: dict[str, dict[str, Any]] = {
    "AWS::EC2::CapacityReservationFleet": {
        "InstanceTypeSpecifications": [
            {
                "InstanceType": "p5.48xlarge",
                "InstancePlatform": "Linux/UNIX",
                "AvailabilityZone": "us-east-1a",
            }
        ],
        "TotalTargetCapacity": 64,
    },
    "AWS::EMR::InstanceFleetConfig": {
        "ClusterId": "j-1ABCD",
        "InstanceFleetType": "TASK",
        "TargetOnDemandCapacity": 10,
        "InstanceTypeConfigs": [{"InstanceType": "p4d.24xlarge"}],
    },
    "AWS::EMR::InstanceGroupConfig": {
        "JobFlowId": "j-1ABCD",
        "InstanceRole": "TASK",
        "InstanceCount": 10,
        "InstanceType": "p4d.24xlarge",
    },
    "AWS::Cloud9::EnvironmentEC2": {"InstanceType": "g6e.xlarge", "ImageId": "amazonlinux-2023-x86_64"},
    "AWS::SageMaker::App": {
        "AppName": "default",
        "AppType": "JupyterLab",
        "DomainId": "d-abc",
        "UserProfileName": "u",
        "ResourceSpec": {"InstanceType": "ml.p5.48xlarge"},
    },
    "AWS::PCS::ComputeNodeGroup": {
        "ClusterId": "pcs_abc",
        "InstanceConfigs": [{"InstanceType": "p5.48xlarge"}],
        "ScalingConfiguration": {"MinInstanceCount": 0, "MaxInstanceCount": 8},
    },
    "AWS::AppStream::Fleet": {
        "Name": "f",
        "InstanceType": "stream.graphics.g6.2xlarge",
        "ComputeCapacity": {"DesiredInstances": 4},
    },
    "AWS::CodeBuild::Fleet": {
        "BaseCapacity": 2,
        "ComputeType": "CUSTOM_INSTANCE_TYPE",
        "ComputeConfiguration": {"InstanceType": "g6e.xlarge"},
    },
    "AWS::ECS::CapacityProvider": {
        "ManagedInstancesProvider": {
            "InstanceLaunchTemplate": {"InstanceRequirements": {"AllowedInstanceTypes": ["p5.48xlarge"]}}
        }
    },
    "AWS::Lambda::CapacityProvider": {"InstanceRequirements": {"AllowedInstanceTypes": ["g6e.xlarge"]}},
    # A type the templates' hook did not target (they listed 14 types).
    "AWS::SageMaker::ProcessingJob": {
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 4, "InstanceType": "ml.p5.48xlarge", "VolumeSizeInGB": 100}
        },
        "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/p:latest"},
        "RoleArn": "arn:aws:iam::123456789012:role/p",
    },
}


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def _event(account: str, rtype: str, props: dict[str, Any]) -> dict[str, Any]:
    ev = load_event("cfn_hook_capacity_reservation.json")
    ev["awsAccountId"] = account
    ev["clientRequestToken"] = f"{account}-{rtype}"  # one token per request (a repeated one is a redelivery)
    ev["stackId"] = ev["stackId"].replace("111122223333", account)
    rd = ev["requestData"]
    rd["targetName"] = rd["targetType"] = rtype
    rd["targetModel"]["resourceProperties"] = props
    return ev


@pytest.mark.parametrize("rtype", sorted(CASES))
def test_gpu_resource_type_is_decided_by_the_hook(make_world: Any, rtype: str) -> None:
    make_world()
    denied = cfn_hook.handler(_event(MEMBER, rtype, CASES[rtype]), CTX)
    assert denied["hookStatus"] == "FAILED", (rtype, denied)
    assert denied["errorCode"] == "NonCompliant"
    assert "ORIGIN_RESTRICTED" in denied["message"]
    allowed = cfn_hook.handler(_event(HOME, rtype, CASES[rtype]), CTX)
    assert allowed["hookStatus"] == "SUCCESS", (rtype, allowed)
