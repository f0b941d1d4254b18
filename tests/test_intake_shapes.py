"""Less common spellings and branches of the shape extractors, on small inline records."""

from __future__ import annotations

from typing import Any

import pytest

from enforcer.intake import normalise
from enforcer.model import Ignored, InputError, LaunchRequest


def call(service: str, name: str, params: Any, response: Any = None) -> LaunchRequest | Ignored:
    return normalise(
        {
            "eventSource": f"{service}.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333",
            "eventID": "e-1",
            "userIdentity": {"type": "AWSService", "invokedBy": "batch.amazonaws.com"},
            "requestParameters": params,
            "responseElements": response,
        }
    )


def items(result: LaunchRequest | Ignored) -> list[tuple[Any, int]]:
    assert isinstance(result, LaunchRequest), result
    return [(i.instance_type or i.ref, i.count) for i in result.items]


LT = {"kind": "launch_template", "name": "gpu", "version": "$Default"}


def test_runinstances_defaults_to_ec2_default_type() -> None:
    r = call("ec2", "RunInstances", {"instancesSet": {"items": [{"minCount": 3, "maxCount": 1}]}})
    assert items(r) == [("m1.small", 3)]
    assert isinstance(r, LaunchRequest) and r.principal == "batch.amazonaws.com"


def test_modifyfleet_without_configs_refers_to_the_fleet() -> None:
    r = call(
        "ec2",
        "ModifyFleet",
        {
            "ModifyFleetRequest": {
                "FleetId": "fleet-1",
                "TargetCapacitySpecification": {"TotalTargetCapacity": 9},
            }
        },
    )
    assert items(r) == [({"kind": "fleet", "id": "fleet-1"}, 9)]


def test_spot_fleet_variants() -> None:
    cfg = {
        "targetCapacity": 2,
        "launchSpecifications": {"item": {"instanceRequirements": {"acceleratorCount": {"min": 1}}}},
        "launchTemplateConfigs": [{"launchTemplateSpecification": {"launchTemplateName": "gpu"}}],
    }
    r = call("ec2", "RequestSpotFleet", {"spotFleetRequestConfig": cfg})
    got = items(r)
    assert got[0][0]["kind"] == "instance_requirements" and got[0][0]["accelerators_requested"] is True
    assert got[1] == (LT, 2)
    with pytest.raises(InputError, match="without an instance type"):
        call(
            "ec2",
            "RequestSpotFleet",
            {"spotFleetRequestConfig": {"launchSpecifications": [{"imageId": "ami-1"}]}},
        )
    with pytest.raises(InputError, match="spotFleetRequestConfig: expected an object"):
        call("ec2", "RequestSpotFleet", {"spotFleetRequestConfig": [1]})


def test_spot_instances_default_and_resize_attribute_form() -> None:
    assert items(call("ec2", "RequestSpotInstances", {"instanceCount": 2})) == [("m1.small", 2)]
    r = call(
        "ec2",
        "ModifyInstanceAttribute",
        {"instanceId": "i-0123456789abcdef0", "attribute": "instanceType", "value": "p5.48xlarge"},
    )
    assert items(r) == [("p5.48xlarge", 1)]
    assert isinstance(r, LaunchRequest) and r.items[0].path == "requestParameters.value"


def test_allocate_hosts_family() -> None:
    r = call("ec2", "AllocateHosts", {"instanceFamily": "p5", "quantity": 1})
    assert items(r) == [({"kind": "instance_family", "family": "p5"}, 1)]


def test_launch_template_requirements_and_source_version() -> None:
    data = {"InstanceRequirements": {"AcceleratorTypes": ["gpu"], "AcceleratorNames": ["h100"]}}
    r = call(
        "ec2",
        "CreateLaunchTemplate",
        {"CreateLaunchTemplateRequest": {"LaunchTemplateName": "gpu", "LaunchTemplateData": data}},
    )
    ref = items(r)[0][0]
    assert ref["accelerator_names"] == ["h100"] and ref["accelerators"] is True
    r = call(
        "ec2",
        "CreateLaunchTemplateVersion",
        {"LaunchTemplateId": "lt-0abc1234def567893", "SourceVersion": 3, "LaunchTemplateData": {}},
    )
    assert items(r) == [({"kind": "launch_template", "id": "lt-0abc1234def567893", "version": "3"}, 1)]
    r = call(
        "ec2",
        "CreateLaunchTemplate",
        {"LaunchTemplateName": "cpu", "LaunchTemplateData": {"ImageId": "ami-1"}},
    )
    assert (
        isinstance(r, Ignored)
        and r.reason == "launch template carries no instance type"
        and r.event_id == "e-1"
    )


def test_asg_variants() -> None:
    mip = {
        "launchTemplate": {
            "launchTemplateSpecification": {"launchTemplateName": "gpu"},
            "overrides": [
                {"instanceRequirements": {"vCpuCount": {"min": 8}}},
                {"launchTemplateSpecification": {"launchTemplateId": "lt-0abc1234def567890", "version": "4"}},
                {"weightedCapacity": "2"},
            ],
        }
    }
    r = call(
        "autoscaling",
        "CreateAutoScalingGroup",
        {"autoScalingGroupName": "a", "maxSize": 3, "mixedInstancesPolicy": mip},
    )
    got = items(r)
    assert got[0][0]["kind"] == "instance_requirements" and got[0][0]["launch_template"] == LT
    assert got[1] == ({"kind": "launch_template", "id": "lt-0abc1234def567890", "version": "4"}, 3)
    assert got[2] == (LT, 3)
    r = call(
        "autoscaling",
        "CreateAutoScalingGroup",
        {"autoScalingGroupName": "b", "launchConfigurationName": "lc"},
    )
    assert items(r) == [({"kind": "launch_configuration", "name": "lc"}, 1)]
    r = call(
        "autoscaling",
        "CreateAutoScalingGroup",
        {"autoScalingGroupName": "c", "instanceId": "i-0123456789abcdef0"},
    )
    assert items(r) == [({"kind": "instance_id", "id": "i-0123456789abcdef0"}, 1)]
    r = call("autoscaling", "UpdateAutoScalingGroup", {"autoScalingGroupName": "d", "maxSize": 50})
    assert items(r) == [({"kind": "auto_scaling_group", "name": "d"}, 50)]
    with pytest.raises(InputError, match="neither a launch template nor an instance type"):
        call(
            "autoscaling",
            "CreateAutoScalingGroup",
            {"mixedInstancesPolicy": {"launchTemplate": {"overrides": [{}]}}},
        )
    r = call(
        "autoscaling",
        "CreateLaunchConfiguration",
        {"launchConfigurationName": "x", "instanceId": "i-0123456789abcdef0"},
    )
    assert items(r) == [({"kind": "instance_id", "id": "i-0123456789abcdef0"}, 1)]


def test_eks_template_and_default() -> None:
    r = call(
        "eks", "CreateNodegroup", {"launchTemplate": {"name": "gpu"}, "scalingConfig": {"desiredSize": 3}}
    )
    assert items(r) == [(LT, 3)]
    assert items(call("eks", "CreateNodegroup", {"clusterName": "c"})) == [("t3.medium", 1)]


def test_batch_variants() -> None:
    r = call(
        "batch",
        "CreateComputeEnvironment",
        {"computeEnvironmentName": "f", "computeResources": {"type": "FARGATE_SPOT", "maxvCpus": 4}},
    )
    assert isinstance(r, Ignored) and r.reason == "Fargate compute environment"
    r = call("batch", "CreateComputeEnvironment", {"computeEnvironmentName": "u", "type": "UNMANAGED"})
    assert isinstance(r, Ignored)
    r = call(
        "batch",
        "CreateComputeEnvironment",
        {
            "computeEnvironmentName": "e",
            "computeResources": {"type": "EC2", "launchTemplate": {"launchTemplateName": "gpu"}},
        },
    )
    assert items(r) == [({"kind": "instance_family", "family": "optimal"}, 1)]
    assert isinstance(r, LaunchRequest) and r.extra["launch_template"] == LT
    r = call(
        "batch",
        "UpdateComputeEnvironment",
        {
            "computeEnvironment": "arn:aws:batch:us-east-1:111122223333:compute-environment/g",
            "computeResources": {"maxvCpus": 8},
        },
    )
    assert items(r)[0][0]["kind"] == "compute_environment"
    r = call("batch", "CreateComputeEnvironment", {"computeResources": {"instanceTypes": ["default_x86_64"]}})
    assert items(r) == [({"kind": "instance_family", "family": "default_x86_64"}, 1)]


def test_emr_variants() -> None:
    fleets = [
        {
            "targetOnDemandCapacity": 2,
            "targetSpotCapacity": 6,
            "instanceTypeConfigs": [{"instanceType": "p5.48xlarge"}],
        }
    ]
    r = call("elasticmapreduce", "RunJobFlow", {"instances": {"instanceFleets": fleets}})
    assert items(r) == [("p5.48xlarge", 8)]
    assert isinstance(r, LaunchRequest) and r.extra["instance_fleets"] is True
    r = call(
        "elasticmapreduce",
        "RunJobFlow",
        {
            "instances": {
                "masterInstanceType": "m5.xlarge",
                "slaveInstanceType": "g5.xlarge",
                "instanceCount": 5,
            }
        },
    )
    assert items(r) == [("m5.xlarge", 1), ("g5.xlarge", 4)]
    r = call(
        "elasticmapreduce",
        "AddInstanceGroups",
        {"jobFlowId": "j-1", "instanceGroups": [{"instanceType": "p4d.24xlarge", "instanceCount": 3}]},
    )
    assert items(r) == [("p4d.24xlarge", 3)]
    r = call("elasticmapreduce", "AddInstanceFleet", {"clusterId": "j-1", "instanceFleet": fleets[0]})
    assert items(r) == [("p5.48xlarge", 8)]
    assert isinstance(call("elasticmapreduce", "RunJobFlow", {"name": "x"}), Ignored)


def test_sagemaker_variants() -> None:
    params = {
        "resourceConfig": {
            "instanceGroups": [
                {"instanceType": "ml.p5.48xlarge", "instanceCount": 2, "instanceGroupName": "a"}
            ]
        },
        "debugRuleConfigurations": [{"ruleConfigurationName": "r", "instanceType": "ml.t3.medium"}],
    }
    assert items(call("sagemaker", "CreateTrainingJob", params)) == [("p5.48xlarge", 2), ("t3.medium", 1)]
    assert isinstance(
        call("sagemaker", "CreateTrainingJob", {"resourceConfig": {"volumeSizeInGB": 5}}), Ignored
    )
    hpo = {
        "trainingJobDefinitions": [{"resourceConfig": {"instanceType": "ml.g6.xlarge", "instanceCount": 2}}]
    }
    assert items(call("sagemaker", "CreateHyperParameterTuningJob", hpo)) == [("g6.xlarge", 2)]
    with pytest.raises(InputError, match=r"trainingJobDefinition: expected an object"):
        call("sagemaker", "CreateHyperParameterTuningJob", {"trainingJobDefinition": "x"})
    cluster = {
        "instanceGroups": [
            {
                "instanceGroupName": "w",
                "instanceCount": 2,
                "instanceRequirements": {"instanceTypes": ["ml.p5.48xlarge", "ml.p5e.48xlarge"]},
            }
        ]
    }
    r = call("sagemaker", "UpdateCluster", cluster)
    assert items(r) == [("p5.48xlarge", 2), ("p5e.48xlarge", 2)]
    assert isinstance(r, LaunchRequest) and r.extra["alternatives"] is True
    assert items(
        call(
            "sagemaker",
            "CreateApp",
            {"appType": "JupyterLab", "resourceSpec": {"instanceType": "ml.g5.xlarge"}},
        )
    ) == [("g5.xlarge", 1)]
    assert isinstance(call("sagemaker", "CreateApp", {"appType": "JupyterServer"}), Ignored)
    r = call(
        "sagemaker",
        "CreateEndpointConfig",
        {
            "productionVariants": [
                {
                    "instanceType": "ml.g5.xlarge",
                    "initialInstanceCount": 1,
                    "managedInstanceScaling": {"maxInstanceCount": 10},
                }
            ]
        },
    )
    assert items(r) == [("g5.xlarge", 10)]
    assert isinstance(
        call("sagemaker", "CreateEndpointConfig", {"productionVariants": [{"serverlessConfig": {}}]}), Ignored
    )
    with pytest.raises(InputError, match="transformResources: missing"):
        call("sagemaker", "CreateTransformJob", {"transformJobName": "t"})


def test_key_case_scan_and_real_key_in_path() -> None:
    r = call("ec2", "RunInstances", {"INSTANCETYPE": "p5.48xlarge"})
    assert isinstance(r, LaunchRequest) and r.items[0].path == "requestParameters.INSTANCETYPE"


def test_cross_account_caller_noted() -> None:
    ev = {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": {"arn": "arn:aws:sts::444455556666:assumed-role/X/y", "accountId": "444455556666"},
        "requestParameters": {"instanceType": "p5.48xlarge"},
    }
    r = normalise(ev)
    assert (
        isinstance(r, LaunchRequest)
        and r.extra["caller_account"] == "444455556666"
        and r.account_id == "111122223333"
    )
    ev["errorCode"] = "Bad\ncode"
    r2 = normalise(ev)
    assert isinstance(r2, Ignored) and r2.reason == "api call failed: Bad?code"
