"""The coverage table against the installed botocore: complete, every row with a status, up to date;
the ``enforcer coverage`` command; the value-driven extraction's counts, weights and exclusions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli
from enforcer.coverage import STATUSES, build_table, load_table
from enforcer.coverage.walker import TypeOperation, walk_models
from enforcer.intake import normalise
from enforcer.model import Ignored, LaunchRequest


@pytest.fixture(scope="module")
def walked() -> list[TypeOperation]:
    return walk_models()  # every installed service model (~10 s)


def test_every_instance_type_operation_of_installed_botocore_is_listed(walked: list[TypeOperation]) -> None:
    listed = {(e.service, e.operation) for e in load_table()}
    missing = sorted(f"{o.service}:{o.operation}" for o in walked if (o.service, o.operation) not in listed)
    assert not missing, (
        f"botocore has instance-type operations the table lacks (run scripts/gen_coverage.py): {missing}"
    )
    assert len(walked) >= 140 and len({o.service for o in walked}) >= 35


def test_every_row_has_a_status_and_a_reason() -> None:
    for e in load_table():
        assert e.status in STATUSES and e.reason, e
        assert e.paths or e.status == "out-of-scope", e


def test_shipped_table_is_what_the_models_give(walked: list[TypeOperation]) -> None:
    rebuilt = [e.to_dict() for e in build_table(operations=walked)]
    assert rebuilt == [e.to_dict() for e in load_table()], "stale coverage.json: run scripts/gen_coverage.py"


def test_walker_finds_nested_types_and_leaves_non_types_out(walked: list[TypeOperation]) -> None:
    by = {(o.service, o.operation): o for o in walked}
    training = by[("sagemaker", "CreateTrainingJob")].launch_paths
    assert "ResourceConfig.InstancePreferences[].InstanceType" in training
    fleet = by[("ec2", "CreateFleet")]
    assert "SpotOptions.SingleInstanceType" not in {p.path for p in fleet.paths}  # a boolean
    run = by[("ec2", "RunInstances")]
    assert {p.path: p.role for p in run.paths}[
        "InstanceMarketOptions.SpotOptions.SpotInstanceType"
    ] == "metadata"
    assert (
        "LaunchTemplateConfigs[].Overrides[].InstanceRequirements.ExcludedInstanceTypes"
        not in fleet.launch_paths
    )


def test_statuses_of_known_operations() -> None:
    rows = {(e.service, e.operation): e for e in load_table()}
    for key in [
        ("sagemaker", "UpdateNotebookInstance"),
        ("sagemaker", "CreateOptimizationJob"),
        ("sagemaker", "CreateMonitoringSchedule"),
        ("autoscaling", "StartInstanceRefresh"),
        ("deadline", "CreateFleet"),
        ("lambda", "CreateCapacityProvider"),
        ("ec2", "StartInstances"),
        ("eks", "UpdateNodegroupVersion"),
        ("sagemaker", "UpdateEndpoint"),
        ("batch", "UpdateComputeEnvironment"),
        ("sagemaker", "UpdateCluster"),
    ]:
        assert rows[key].status == "decided", key
    assert rows[("sagemaker", "CreateDomain")].status == "resolved-at-use"
    assert rows[("ec2", "DescribeInstanceTypes")].status == "out-of-scope"
    assert "enumerated" in rows[("opensearch", "CreateDomain")].reason


def test_cli_coverage_json() -> None:
    res = CliRunner().invoke(cli, ["coverage", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == len(load_table())
    assert all(set(r) == {"service", "operation", "status", "reason", "paths"} for r in rows)
    res = CliRunner().invoke(cli, ["coverage", "--status", "resolved-at-use"])
    assert res.exit_code == 0 and "CreateDomain" in res.output


def record(source: str, name: str, params: Any) -> LaunchRequest | Ignored:
    return normalise(
        {
            "eventSource": source,
            "eventName": name,
            "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333",
            "requestParameters": params,
        }
    )


def items(r: LaunchRequest | Ignored) -> dict[str, int]:
    assert isinstance(r, LaunchRequest), r
    return {str(i.instance_type): i.count for i in r.items if i.instance_type is not None}


def test_weighted_capacity_counts_instances_not_units() -> None:
    """CreateFleet (hand-written shape) with TotalTargetCapacity 10 and a 0.001 weight: 10,000 instances."""
    params = {
        "CreateFleetRequest": {
            "LaunchTemplateConfigs": {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "gpu", "Version": "1"},
                "Overrides": [
                    {"InstanceType": "p5.48xlarge", "WeightedCapacity": 0.001, "tag": 1},
                    {"InstanceType": "m5.large", "WeightedCapacity": 2, "tag": 2},
                ],
                "tag": 1,
            },
            "TargetCapacitySpecification": {"TotalTargetCapacity": 10},
        }
    }
    r = record("ec2.amazonaws.com", "CreateFleet", params)
    assert items(r)["p5.48xlarge"] == 10_000
    assert isinstance(r, LaunchRequest) and r.extra["weighted_capacity"]


def test_weighted_capacity_on_a_table_driven_call_is_clamped_and_flagged() -> None:
    """ModifySpotFleetRequest has no hand-written shape: the table reads it; an absurd weight is clamped."""
    params = {
        "spotFleetRequestId": "sfr-1",
        "targetCapacity": 1000,
        "launchTemplateConfigSet": {
            "items": [
                {
                    "launchTemplateSpecification": {"launchTemplateName": "gpu"},
                    "overrideSet": {
                        "items": [{"instanceType": "p5.48xlarge", "weightedCapacity": "0.0000001"}]
                    },
                }
            ]
        },
    }
    r = record("ec2.amazonaws.com", "ModifySpotFleetRequest", params)
    assert items(r) == {"p5.48xlarge": 1_000_000}
    assert isinstance(r, LaunchRequest) and r.extra["count_clamped"]


def test_excluded_types_and_spot_options_are_not_launches() -> None:
    params = {
        "clusterName": "c",
        "capacityProviderName": "x",
        "managedInstancesProvider": {
            "instanceLaunchTemplate": {
                "instanceRequirements": {
                    "allowedInstanceTypes": ["m5.large"],
                    "excludedInstanceTypes": ["p5.48xlarge"],
                }
            }
        },
    }
    r = record("ecs.amazonaws.com", "CreateCapacityProvider", {"name": "x", **params})
    assert items(r) == {"m5.large": 1}
    run = {
        "instanceType": "m5.large",
        "instanceMarketOptions": {"spotOptions": {"spotInstanceType": "one-time"}},
    }
    assert items(record("ec2.amazonaws.com", "RunInstances", run)) == {"m5.large": 1}


def test_hand_written_shape_misses_are_completed_from_the_model() -> None:
    """A training job whose GPU sits only in ``instancePreferences`` (the hand-written shape reads resourceConfig)."""
    params = {
        "trainingJobName": "t",
        "resourceConfig": {
            "instanceType": "ml.m5.large",
            "instanceCount": 4,
            "instancePreferences": [{"instanceType": "ml.p5.48xlarge"}, {"instanceType": "ml.m5.large"}],
        },
    }
    r = record("sagemaker.amazonaws.com", "CreateTrainingJob", params)
    assert items(r) == {"m5.large": 4, "p5.48xlarge": 4}
    assert isinstance(r, LaunchRequest) and r.extra["model_paths"]


def test_out_of_scope_service_is_not_decided() -> None:
    r = record(
        "kafka.amazonaws.com", "CreateCluster", {"brokerNodeGroupInfo": {"instanceType": "kafka.m5.large"}}
    )
    assert isinstance(r, Ignored) and "not a launch call" in r.reason


def test_readme_coverage_table_is_generated_from_the_table() -> None:
    from pathlib import Path

    from enforcer.coverage.targets import markdown_table, readme_with_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    assert readme_with_table(readme) == readme, "stale README coverage table: run scripts/gen_coverage.py"
    assert markdown_table() in readme
    for e in load_table():
        assert e.operation in readme


def test_launch_bearing_cloudformation_types_come_from_the_cfn_lint_schemas() -> None:
    from enforcer.coverage.cfn_types import is_launch_resource_type, launch_resource_types

    types = launch_resource_types()
    for t in (
        "AWS::EC2::Instance",
        "AWS::EC2::LaunchTemplate",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::NotebookInstance",
        "AWS::Deadline::Fleet",
        "AWS::EKS::Nodegroup",
        "AWS::Batch::ComputeEnvironment",
    ):
        assert is_launch_resource_type(t), t
    for t in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::IAM::Role", "AWS::SQS::Queue"):
        assert not is_launch_resource_type(t), t
    assert "LaunchTemplateData.InstanceType" in types["AWS::EC2::LaunchTemplate"]
    assert not any("SpotInstanceType" in p for p in types["AWS::EC2::LaunchTemplate"])  # one-time|persistent
    assert len(types) >= 40


def test_scp_denies_every_decided_call_with_an_instance_type_key() -> None:
    from enforcer.coverage.table import iam_conditions
    from enforcer.scp import generate_scps

    statements = [s for d in generate_scps() for s in d["Statement"]]
    denied = set()
    for s in statements:
        acts = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        for block in s["Condition"].values():
            denied |= {(a, k) for a in acts for k in block}
    pairs = set(iam_conditions())
    assert ("ec2:StartInstances", "ec2:InstanceType") in pairs
    assert ("sagemaker:UpdateNotebookInstance", "sagemaker:InstanceTypes") in pairs
    missing = {p for p in pairs if p not in denied and p[0] != "ec2:ModifyInstanceAttribute"}
    assert not missing


def test_hook_types_leave_out_services_without_accelerated_types() -> None:
    from enforcer.coverage.cfn_types import (
        hook_resource_types,
        is_launch_resource_type,
        launch_resource_types,
    )

    assert "AWS::MSK::Cluster" in launch_resource_types()  # has an InstanceType property ...
    assert not is_launch_resource_type("AWS::MSK::Cluster")  # ... but MSK has no accelerated types
    assert not is_launch_resource_type("AWS::OpenSearchService::Domain")
    assert is_launch_resource_type("AWS::AppStream::Fleet")
    assert len(hook_resource_types()) < len(launch_resource_types())


def test_tags_and_labels_that_look_like_type_members_are_user_text() -> None:
    """A CPU node group tagged ``instanceType: p5.48xlarge`` launches no p5 (EKS tags and labels are maps)."""
    params = {
        "clusterName": "c",
        "nodegroupName": "cpu",
        "instanceTypes": ["m5.large"],
        "tags": {"instanceType": "p5.48xlarge"},
        "labels": {"InstanceType": "p5.48xlarge"},
    }
    assert items(record("eks.amazonaws.com", "CreateNodegroup", params)) == {"m5.large": 1}


def test_no_model_path_runs_through_a_user_data_member() -> None:
    """The keys the extractor treats as user text never lie on a path where the model puts a type."""
    from enforcer.coverage.extract import USER_DATA_KEYS

    for e in load_table():
        for path in e.paths:
            segs = {s.replace("[]", "").replace("{}", "").lower() for s in path.split(".")}
            assert not segs & USER_DATA_KEYS, (e.service, e.operation, path)


def test_fast_path_only_skips_the_walk_when_nothing_can_be_added() -> None:
    from enforcer.intake.cloudtrail_generic import _nothing_new

    have = {"m5.large"}
    assert _nothing_new({"instanceType": "m5.large", "subnetId": "subnet-1", "n": 2}, have)
    assert not _nothing_new({"a": [{"b": {"InstanceType": "ML.P5.48XLARGE"}}]}, have)  # any depth, any case
    assert not _nothing_new({"overrides": [{"instanceType": "m5.large", "weightedCapacity": 2}]}, have)
    assert not _nothing_new({"instanceRequirements": {"acceleratorCount": {"min": 1}}}, have)
    deep: dict[str, object] = {"x": "p5.48xlarge"}
    for _ in range(60):
        deep = {"d": deep}
    assert not _nothing_new(deep, have)  # too deep to prove: walk (which bounds it)


def test_a_type_member_the_table_does_not_name_yet_is_read_when_it_holds_a_type() -> None:
    """A member AWS adds before the table is regenerated (``…InstanceType``) still counts; options do not."""
    params = {
        "notebookInstanceName": "nb",
        "instanceType": "ml.m5.large",
        "previewAcceleratorInstanceType": "ml.p5.48xlarge",
        "spotInstanceType": "one-time",
        "excludedInstanceType": "ml.p4d.24xlarge",
    }
    assert items(record("sagemaker.amazonaws.com", "UpdateNotebookInstance", params)) == {
        "m5.large": 1,
        "p5.48xlarge": 1,
    }
