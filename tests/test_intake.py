"""Every fixture in tests/events/ normalises to the expected request (or is Ignored)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from enforcer.intake import CLOUDTRAIL_SHAPES, iter_cloudtrail_records, normalise, parse_event_bytes
from enforcer.model import Ignored, InputError, LaunchRequest

EVENTS = Path(__file__).parent / "events"
ACCOUNT = "111122223333"
ATT = "7d4e2c1a-9b8f-4e6d-a5c3-2f1e0d9c8b7a"
LT3 = {"kind": "launch_template", "id": "lt-0abc1234def567893", "version": "2"}


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return doc


def summary(req: LaunchRequest) -> list[tuple[str, int]]:
    """Items as (type, count), or ("ref:<kind>", count) for unresolved items."""
    return [(i.instance_type or f"ref:{i.ref['kind']}", i.count) for i in req.items]  # type: ignore[index]


# fixture -> (source, action, items, number of instance ids, attestation ref)
# fmt: off
EXPECTED: dict[str, tuple[str, str, list[tuple[str, int]], int, str | None]] = {
    "cloudtrail_runinstances.json": ("cloudtrail", "ec2:RunInstances", [("p5.48xlarge", 2)], 2, ATT),
    "cloudtrail_runinstances_launch_template.json": (
        "cloudtrail", "ec2:RunInstances", [("ref:launch_template", 4)], 0, None),
    "cloudtrail_runinstances_capacity_block.json": ("cloudtrail", "ec2:RunInstances", [("p5.48xlarge", 1)], 1, None),
    "cloudtrail_runinstances_by_autoscaling.json": ("cloudtrail", "ec2:RunInstances", [("p5.48xlarge", 1)], 1, None),
    "cloudtrail_record_runinstances.json": ("cloudtrail", "ec2:RunInstances", [("g6e.xlarge", 1)], 1, None),
    "cloudtrail_createfleet.json": (
        "cloudtrail", "ec2:CreateFleet", [("p5en.48xlarge", 2), ("p5.48xlarge", 2)], 2, ATT),
    "cloudtrail_createfleet_abis.json": ("cloudtrail", "ec2:CreateFleet", [("ref:instance_requirements", 8)], 0, None),
    "cloudtrail_modifyfleet.json": ("cloudtrail", "ec2:ModifyFleet", [("g6e.12xlarge", 16)], 0, None),
    "cloudtrail_requestspotfleet.json": (
        "cloudtrail", "ec2:RequestSpotFleet", [("g5.12xlarge", 3), ("g6.12xlarge", 3)], 0, None),
    "cloudtrail_requestspotinstances.json": (
        "cloudtrail", "ec2:RequestSpotInstances", [("p4d.24xlarge", 1)], 0, None),
    "cloudtrail_modifyinstanceattribute.json": (
        "cloudtrail", "ec2:ModifyInstanceAttribute", [("p5.48xlarge", 1)], 1, None),
    "cloudtrail_createcapacityreservation.json": (
        "cloudtrail", "ec2:CreateCapacityReservation", [("p5e.48xlarge", 2)], 0, None),
    "cloudtrail_createcapacityreservationfleet.json": (
        "cloudtrail", "ec2:CreateCapacityReservationFleet", [("p5.48xlarge", 4), ("p4de.24xlarge", 4)], 0, None),
    "cloudtrail_purchasecapacityblock.json": (
        "cloudtrail", "ec2:PurchaseCapacityBlock", [("ref:capacity_block_offering", 1)], 0, ATT),
    "cloudtrail_allocatehosts.json": ("cloudtrail", "ec2:AllocateHosts", [("p5.48xlarge", 2)], 0, None),
    "cloudtrail_createlaunchtemplate.json": (
        "cloudtrail", "ec2:CreateLaunchTemplate", [("trn2.48xlarge", 1)], 0, ATT),
    "cloudtrail_createlaunchtemplateversion.json": (
        "cloudtrail", "ec2:CreateLaunchTemplateVersion", [("p6-b200.48xlarge", 1)], 0, None),
    "cloudtrail_asg_create.json": (
        "cloudtrail", "autoscaling:CreateAutoScalingGroup", [("p5.48xlarge", 8), ("p5e.48xlarge", 8)], 0, ATT),
    "cloudtrail_asg_update.json": (
        "cloudtrail", "autoscaling:UpdateAutoScalingGroup", [("ref:launch_template", 4)], 0, None),
    "cloudtrail_create_launch_configuration.json": (
        "cloudtrail", "autoscaling:CreateLaunchConfiguration", [("g5.12xlarge", 1)], 0, None),
    "cloudtrail_eks_createnodegroup.json": ("cloudtrail", "eks:CreateNodegroup", [("p5.48xlarge", 4)], 0, ATT),
    # updates, restarts and calls read from the coverage table (enforcer/coverage; tests/test_coverage_*.py)
    "cloudtrail_startinstances.json": ("cloudtrail", "ec2:StartInstances", [("ref:instance_id", 1)], 1, None),
    "cloudtrail_eks_updatenodegroupversion.json": (
        "cloudtrail", "eks:UpdateNodegroupVersion", [("ref:launch_template", 1)], 0, None),
    "cloudtrail_sagemaker_updateendpoint.json": (
        "cloudtrail", "sagemaker:UpdateEndpoint", [("ref:sagemaker_endpoint_config", 1)], 0, None),
    "cloudtrail_sagemaker_updatenotebook.json": (
        "cloudtrail", "sagemaker:UpdateNotebookInstance", [("p5.48xlarge", 1)], 0, None),
    "cloudtrail_asg_startinstancerefresh.json": (
        "cloudtrail", "autoscaling:StartInstanceRefresh", [("g6e.12xlarge", 1), ("p5.48xlarge", 1)], 0, None),
    "cloudtrail_deadline_createfleet.json": (
        "cloudtrail", "deadline:CreateFleet", [("g6e.xlarge", 20), ("g6e.2xlarge", 20)], 0, None),
    "cloudtrail_sagemaker_training_preferences.json": (
        "cloudtrail", "sagemaker:CreateTrainingJob", [("g6e.48xlarge", 4), ("p5.48xlarge", 4)], 0, None),
    "cloudtrail_sagemaker_training.json": (
        "cloudtrail", "sagemaker:CreateTrainingJob", [("p5.48xlarge", 2)], 0, ATT),
    "cloudtrail_sagemaker_endpoint_config.json": (
        "cloudtrail", "sagemaker:CreateEndpointConfig", [("g6e.12xlarge", 2)], 0, None),
    "cloudtrail_sagemaker_notebook.json": ("cloudtrail", "sagemaker:CreateNotebookInstance", [("g5.xlarge", 1)], 0, None),
    "cloudtrail_sagemaker_cluster.json": (
        "cloudtrail", "sagemaker:CreateCluster", [("m5.xlarge", 1), ("p5.48xlarge", 4)], 0, None),
    "cloudtrail_sagemaker_processing.json": (
        "cloudtrail", "sagemaker:CreateProcessingJob", [("g5.2xlarge", 3)], 0, None),
    "cloudtrail_sagemaker_transform.json": (
        "cloudtrail", "sagemaker:CreateTransformJob", [("p4d.24xlarge", 1)], 0, None),
    "cloudtrail_sagemaker_hpo.json": (
        "cloudtrail", "sagemaker:CreateHyperParameterTuningJob", [("p4d.24xlarge", 4)], 0, None),
    "cloudtrail_sagemaker_createtrainingplan.json": (
        "cloudtrail", "sagemaker:CreateTrainingPlan", [("ref:sagemaker_training_plan", 1)], 0, ATT),
    "cloudtrail_sagemaker_extendtrainingplan.json": (
        "cloudtrail", "sagemaker:ExtendTrainingPlan", [("ref:sagemaker_training_plan_extension", 1)], 0, None),
    "cloudtrail_batch_create_ce.json": (
        "cloudtrail", "batch:CreateComputeEnvironment", [("p4d.24xlarge", 1), ("ref:instance_family", 1)], 0, None),
    "cloudtrail_batch_update_ce.json": (
        "cloudtrail", "batch:UpdateComputeEnvironment", [("ref:instance_family", 1)], 0, None),
    "cloudtrail_emr_runjobflow.json": (
        "cloudtrail", "elasticmapreduce:RunJobFlow", [("m5.xlarge", 1), ("p4d.24xlarge", 2)], 0, None),
    "state_change_pending.json": ("state_change", "ec2:StateChange", [("ref:instance_id", 1)], 1, None),
    "scheduled_sweep.json": ("sweep", "sweep", [], 0, None),
    "cfn_hook_ec2_instance.json": ("cfn_hook", "cloudformation:AWS::EC2::Instance", [("p5.48xlarge", 1)], 0, ATT),
    "cfn_hook_asg.json": (
        "cfn_hook", "cloudformation:AWS::AutoScaling::AutoScalingGroup", [("p5.48xlarge", 4)], 0, ATT),
    "cfn_hook_launch_template.json": (
        "cfn_hook", "cloudformation:AWS::EC2::LaunchTemplate", [("p4de.24xlarge", 1)], 0, None),
    "cfn_hook_ec2fleet.json": (
        "cfn_hook", "cloudformation:AWS::EC2::EC2Fleet",
        [("p5en.48xlarge", 3), ("ref:instance_requirements", 3)], 0, None),
    "cfn_hook_spotfleet.json": ("cfn_hook", "cloudformation:AWS::EC2::SpotFleet", [("g6.48xlarge", 2)], 0, None),
    "cfn_hook_launch_configuration.json": (
        "cfn_hook", "cloudformation:AWS::AutoScaling::LaunchConfiguration", [("g5.48xlarge", 1)], 0, None),
    "cfn_hook_eks_nodegroup.json": ("cfn_hook", "cloudformation:AWS::EKS::Nodegroup", [("g6e.48xlarge", 2)], 0, ATT),
    "cfn_hook_sagemaker_endpoint_config.json": (
        "cfn_hook", "cloudformation:AWS::SageMaker::EndpointConfig", [("p4d.24xlarge", 2)], 0, None),
    "cfn_hook_sagemaker_notebook.json": (
        "cfn_hook", "cloudformation:AWS::SageMaker::NotebookInstance", [("g5.2xlarge", 1)], 0, None),
    "cfn_hook_sagemaker_cluster.json": (
        "cfn_hook", "cloudformation:AWS::SageMaker::Cluster", [("trn2.48xlarge", 16)], 0, None),
    "cfn_hook_batch_ce.json": (
        "cfn_hook", "cloudformation:AWS::Batch::ComputeEnvironment", [("ref:instance_family", 1)], 0, None),
    "cfn_hook_capacity_reservation.json": (
        "cfn_hook", "cloudformation:AWS::EC2::CapacityReservation", [("p5.48xlarge", 4)], 0, None),
    "cfn_hook_emr_cluster.json": (
        "cfn_hook", "cloudformation:AWS::EMR::Cluster",
        [("m5.xlarge", 1), ("g5.12xlarge", 4), ("g6.12xlarge", 4)], 0, None),
    "cfn_hook_cloud_control.json": ("cfn_hook", "cloudformation:AWS::EC2::Instance", [("p5e.48xlarge", 1)], 0, None),
    "broker_launch.json": ("broker", "broker:Launch", [("p5.48xlarge", 2)], 0, ATT),
    "broker_launch_base64_template.json": ("broker", "broker:Launch", [("ref:launch_template", 1)], 0, None),
    "broker_direct.json": ("broker", "broker:Launch", [("p5.48xlarge", 4), ("p5e.48xlarge", 4)], 0, ATT),
    # SageMaker state changes (enforcer/intake/sagemaker_events.py; tests/test_managed.py acts on them)
    "sagemaker_training_state_change.json": (
        "state_change", "sagemaker:TrainingJobStateChange", [("p5.48xlarge", 2)], 0, None),
    "sagemaker_training_state_change_no_resources.json": (
        "state_change", "sagemaker:TrainingJobStateChange", [("ref:managed_resource", 1)], 0, None),
    "sagemaker_endpoint_state_change.json": (
        "state_change", "sagemaker:EndpointStateChange", [("ref:managed_resource", 1)], 0, None),
    "sagemaker_transform_state_change.json": (
        "state_change", "sagemaker:TransformJobStateChange", [("p4d.24xlarge", 3)], 0, None),
    "sagemaker_processing_state_change.json": (
        "state_change", "sagemaker:ProcessingJobStateChange", [("g6e.12xlarge", 4)], 0, None),
    "sagemaker_notebook_state_change.json": (
        "state_change", "sagemaker:NotebookInstanceStateChange", [("g6e.xlarge", 1)], 0, None),
    "sagemaker_hyperpod_state_change.json": (
        "state_change", "sagemaker:HyperPodClusterStateChange", [("ref:managed_resource", 1)], 0, None),
}
# fmt: on

IGNORED: dict[str, str] = {
    "cloudtrail_failed_call.json": "api call failed: Client.UnauthorizedOperation",
    "cloudtrail_readonly_call.json": "read-only call",
    "state_change_running.json": "instance state running",
    "cfn_hook_s3_bucket.json": "resource type carries no instance type",
    "cfn_hook_delete.json": "delete operation",
    # copied from the CloudFormation Hooks user guide (tests/test_hook_payloads.py answers them end to end)
    "cfn_hook_doc_resource_dynamodb.json": "resource type carries no instance type",
    "cfn_hook_doc_cloud_control_notoken.json": "resource type carries no instance type",
    "cfn_hook_doc_stack.json": "template payload not fetched here",
    "cfn_hook_doc_change_set.json": "template payload not fetched here",
    "sagemaker_training_state_change_doc.json": "sagemaker:training-job status Completed",
}


def test_every_fixture_is_covered() -> None:
    names = {p.name for p in EVENTS.glob("*.json")}
    assert names == set(EXPECTED) | set(IGNORED) | {"cloudtrail_log_file.json"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalises(name: str) -> None:
    source, action, items, n_ids, att = EXPECTED[name]
    req = normalise(load(name), now="2025-03-01T10:00:00Z")
    assert isinstance(req, LaunchRequest), req
    assert (req.source, req.action) == (source, action)
    assert summary(req) == items
    assert len(req.instance_ids) == n_ids
    assert req.attestation_ref == att
    assert req.account_id == ACCOUNT
    assert req.event_id
    assert all(i.path for i in req.items)
    json.dumps(req.to_dict())  # the normalised request is JSON-serialisable
    if source == "cfn_hook" and "cloud_control" not in name:
        assert req.region == "us-east-1"


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_fixture_is_ignored(name: str) -> None:
    result = normalise(load(name))
    assert isinstance(result, Ignored)
    assert result.reason == IGNORED[name]
    assert result.action
    assert result.event_id or "clientRequestToken" not in load(name)  # the guide's tokenless requests


def test_runinstances_envelope_fields() -> None:
    ev = load("cloudtrail_runinstances.json")
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert req.region == "us-east-1"
    assert req.principal == "arn:aws:sts::111122223333:assumed-role/Dev/alice"
    assert req.event_id == ev["id"]  # the EventBridge id wins over the CloudTrail eventID
    assert req.event_time == "2025-03-01T10:00:00Z"
    assert req.instance_ids == ["i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002"]
    assert req.items[0].path == "responseElements.instancesSet.items[].instanceType"


def test_runinstances_bare_record_uses_cloudtrail_event_id() -> None:
    rec = load("cloudtrail_runinstances.json")["detail"]
    req = normalise(rec)
    assert isinstance(req, LaunchRequest)
    assert req.event_id == rec["eventID"]


def test_request_type_and_max_count_when_no_response() -> None:
    ev = load("cloudtrail_runinstances.json")
    ev["detail"]["responseElements"] = None
    ev["detail"]["requestParameters"]["instancesSet"]["items"][0]["maxCount"] = 6
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert summary(req) == [("p5.48xlarge", 6)]
    assert req.items[0].path == "requestParameters.instanceType"
    assert req.instance_ids == []


def test_launch_template_ref_and_response_resolution() -> None:
    req = normalise(load("cloudtrail_runinstances_launch_template.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[0].unresolved
    assert req.items[0].ref == {"kind": "launch_template", "id": "lt-0abc1234def567890", "version": "$Latest"}
    # with response elements, the launched type is known and the template is kept for the record
    ev = load("cloudtrail_runinstances_launch_template.json")
    ev["detail"]["responseElements"] = load("cloudtrail_runinstances.json")["detail"]["responseElements"]
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert summary(req) == [("p5.48xlarge", 2)]
    assert req.extra["launch_template"]["id"] == "lt-0abc1234def567890"


def test_capacity_block_and_service_invoked_noted() -> None:
    req = normalise(load("cloudtrail_runinstances_capacity_block.json"))
    assert isinstance(req, LaunchRequest) and req.extra["market_type"] == "capacity-block"
    req = normalise(load("cloudtrail_runinstances_by_autoscaling.json"))
    assert isinstance(req, LaunchRequest)
    assert req.extra["invoked_by"] == "autoscaling.amazonaws.com"
    assert req.extra["launch_template"] == LT3


def test_createfleet_quirks() -> None:
    req = normalise(load("cloudtrail_createfleet.json"))
    assert isinstance(req, LaunchRequest)
    assert req.extra["alternatives"] is True and req.extra["fleet_type"] == "instant"
    assert (
        req.items[0].path
        == "requestParameters.CreateFleetRequest.LaunchTemplateConfigs[0].Overrides[0].InstanceType"
    )
    assert req.instance_ids == ["i-0a1b2c3d4e5f60004", "i-0a1b2c3d4e5f60005"]


def test_createfleet_instance_requirements_ref() -> None:
    req = normalise(load("cloudtrail_createfleet_abis.json"))
    assert isinstance(req, LaunchRequest)
    ref = req.items[0].ref
    assert ref is not None
    assert ref["accelerators"] is True and ref["accelerators_requested"] is True
    assert ref["accelerator_types"] == ["gpu"] and ref["accelerator_manufacturers"] == ["nvidia"]
    assert ref["launch_template"] == {"kind": "launch_template", "id": "lt-0abc1234def567892", "version": "1"}


def test_instance_requirements_excluding_accelerators() -> None:
    ev = load("cloudtrail_createfleet_abis.json")
    ov = ev["detail"]["requestParameters"]["CreateFleetRequest"]["LaunchTemplateConfigs"]["Overrides"]
    ov["InstanceRequirements"] = {"VCpuCount": {"Min": 2, "Max": 4}, "AcceleratorCount": {"Max": 0}}
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert req.items[0].ref is not None and req.items[0].ref["accelerators"] is False
    ov["InstanceRequirements"] = {"VCpuCount": {"Min": 2, "Max": 4}}  # AWS default allows any accelerator
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert req.items[0].ref is not None and req.items[0].ref["accelerators"] is True
    assert req.items[0].ref["accelerators_requested"] is False


def test_override_without_type_inherits_template() -> None:
    ev = load("cloudtrail_createfleet.json")
    cfg = ev["detail"]["requestParameters"]["CreateFleetRequest"]["LaunchTemplateConfigs"]
    cfg["Overrides"] = [
        {"InstanceType": "p5.48xlarge", "tag": 1},
        {"SubnetId": "subnet-0123456789abcdef1", "tag": 2},
    ]
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert summary(req) == [("p5.48xlarge", 2), ("ref:launch_template", 2)]


def test_sagemaker_prefix_stripped_and_kept() -> None:
    req = normalise(load("cloudtrail_sagemaker_training.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[0].instance_type == "p5.48xlarge"
    assert req.extra["original_instance_types"] == {
        "requestParameters.resourceConfig.instanceType": "ml.p5.48xlarge"
    }


def test_batch_families_and_cfn_paths() -> None:
    req = normalise(load("cloudtrail_batch_create_ce.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[1].ref == {"kind": "instance_family", "family": "p5"}
    req = normalise(load("cloudtrail_batch_update_ce.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[0].ref == {"kind": "instance_family", "family": "optimal"}
    req = normalise(load("cfn_hook_batch_ce.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[0].path == "requestData.targetModel.resourceProperties.ComputeResources.InstanceTypes[0]"


def test_asg_counts_and_extra() -> None:
    req = normalise(load("cloudtrail_asg_create.json"))
    assert isinstance(req, LaunchRequest)
    assert req.extra["desired_capacity"] == 2 and req.extra["max_size"] == 8
    req = normalise(load("cloudtrail_asg_update.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[0].ref == LT3


def test_state_change_and_sweep() -> None:
    req = normalise(load("state_change_pending.json"))
    assert isinstance(req, LaunchRequest)
    assert req.items[0].ref == {"kind": "instance_id", "id": "i-0a1b2c3d4e5f60001"}
    assert req.instance_ids == ["i-0a1b2c3d4e5f60001"] and req.principal is None
    sweep = normalise(load("scheduled_sweep.json"))
    assert isinstance(sweep, LaunchRequest)
    assert sweep.items == [] and sweep.extra["sweep"] is True
    assert sweep.event_time == "2025-03-01T10:15:00Z"


def test_cfn_hook_extra_and_cloud_control_region() -> None:
    ev = load("cfn_hook_ec2_instance.json")
    req = normalise(ev, now="2025-03-01T10:00:00Z")
    assert isinstance(req, LaunchRequest)
    assert req.event_id == ev["clientRequestToken"]
    assert req.event_time == "2025-03-01T10:00:00Z"
    assert req.extra["client_request_token"] == ev["clientRequestToken"]
    assert req.extra["invocation_point"] == "CREATE_PRE_PROVISION"
    assert req.extra["logical_id"] == "Trainer"
    assert req.extra["stack_id"] == ev["stackId"]
    cc = normalise(load("cfn_hook_cloud_control.json"))
    assert isinstance(cc, LaunchRequest)
    assert cc.region == "unknown" and cc.extra["stack_id"] is None and cc.extra["target_type"] == "RESOURCE"


def test_cfn_stack_payload_is_ignored() -> None:
    ev = load("cfn_hook_ec2_instance.json")
    ev["requestData"] = {
        "targetName": "STACK",
        "targetType": "STACK",
        "payload": "https://s3.example/presigned",
    }
    result = normalise(ev)
    assert isinstance(result, Ignored) and "payload" in result.reason


def test_broker_fields() -> None:
    ev = load("broker_launch.json")
    req = normalise(ev, now="2025-03-01T10:00:00Z")
    assert isinstance(req, LaunchRequest)
    assert req.principal == "arn:aws:sts::111122223333:assumed-role/Dev/alice"
    assert req.event_id == ev["requestContext"]["requestId"]
    assert req.extra["launch"]["imageId"] == "ami-0abcdef1234567890"
    b64 = normalise(load("broker_launch_base64_template.json"))
    assert isinstance(b64, LaunchRequest)
    assert b64.items[0].ref == {"kind": "launch_template", "id": "lt-0abc1234def567893", "version": "2"}
    direct = normalise(load("broker_direct.json"))
    assert isinstance(direct, LaunchRequest)
    assert direct.extra["alternatives"] is True
    assert direct.extra["launch_template"]["name"] == "gpu-train"


def test_log_file_records() -> None:
    doc = load("cloudtrail_log_file.json")
    results = [normalise(r) for r in iter_cloudtrail_records(doc)]
    kinds = [r.action if isinstance(r, LaunchRequest) else f"ignored:{r.reason}" for r in results]
    assert kinds == [
        "ec2:RunInstances",
        "ec2:RunInstances",
        "ignored:read-only call",
        "eks:CreateNodegroup",
        "ignored:api call failed: Client.UnauthorizedOperation",
    ]
    with pytest.raises(InputError, match="replay"):
        normalise(doc)
    one = {"Records": doc["Records"][:1]}
    assert isinstance(normalise(one), LaunchRequest)


def test_iter_records_shapes() -> None:
    ev = load("cloudtrail_runinstances.json")
    assert list(iter_cloudtrail_records(ev)) == [ev]
    assert list(iter_cloudtrail_records([ev, ev["detail"]])) == [ev, ev["detail"]]
    bad_docs: list[Any] = [{"Records": {}}, {"Records": [1]}, {"foo": 1}, 3, [1]]
    for bad in bad_docs:
        with pytest.raises(InputError):
            list(iter_cloudtrail_records(bad))


def test_normalise_accepts_raw_bytes() -> None:
    raw = (EVENTS / "cloudtrail_runinstances.json").read_bytes()
    req = normalise(raw)
    assert isinstance(req, LaunchRequest)
    assert summary(req) == [("p5.48xlarge", 2)]
    assert parse_event_bytes(raw.decode())["id"] == req.event_id


def test_dry_run_and_non_launch_calls_ignored() -> None:
    ev = load("cloudtrail_failed_call.json")
    ev["detail"]["errorCode"] = "Client.DryRunOperation"
    r = normalise(ev)
    assert isinstance(r, Ignored) and r.reason == "api call failed: Client.DryRunOperation"
    ev = load("cloudtrail_runinstances.json")
    ev["detail"]["eventName"] = "TerminateInstances"
    r = normalise(ev)
    assert isinstance(r, Ignored) and r.reason == "not a launch call: ec2:TerminateInstances"
    ev = load("cloudtrail_modifyinstanceattribute.json")
    ev["detail"]["requestParameters"] = {
        "instanceId": "i-0a1b2c3d4e5f60009",
        "disableApiStop": {"value": True},
    }
    r = normalise(ev)
    assert isinstance(r, Ignored) and r.reason == "not an instance type change"
    other = {
        "version": "0",
        "id": "x",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "detail": {},
    }
    r = normalise(other)
    assert isinstance(r, Ignored) and r.reason.startswith("event type not handled")


def test_attestation_ref_over_256_chars_is_dropped() -> None:
    ev = load("cfn_hook_ec2_instance.json")
    ev["requestData"]["targetModel"]["resourceProperties"]["Tags"][1]["Value"] = "x" * 257
    req = normalise(ev)
    assert isinstance(req, LaunchRequest)
    assert req.attestation_ref is None
    assert "256" in req.extra["attestation_ref_rejected"]


def test_registry_covers_the_launch_apis() -> None:
    for source, name in [
        ("ec2.amazonaws.com", "RunInstances"),
        ("ec2.amazonaws.com", "CreateFleet"),
        ("ec2.amazonaws.com", "PurchaseCapacityBlock"),
        ("autoscaling.amazonaws.com", "UpdateAutoScalingGroup"),
        ("eks.amazonaws.com", "CreateNodegroup"),
        ("sagemaker.amazonaws.com", "UpdateCluster"),
        ("batch.amazonaws.com", "UpdateComputeEnvironment"),
        ("elasticmapreduce.amazonaws.com", "RunJobFlow"),
    ]:
        assert (source, name) in CLOUDTRAIL_SHAPES


def test_inputs_are_not_mutated() -> None:
    ev = load("cloudtrail_createfleet.json")
    before = copy.deepcopy(ev)
    normalise(ev)
    assert ev == before


def test_bench_runs() -> None:
    from benchmarks.intake_bench import bench_normalise, main

    out = bench_normalise({"ri": load("cloudtrail_runinstances.json"), "bad": {"x": 1}}, number=3)
    assert set(out) == {"ri", "bad"} and all(v > 0 for v in out.values())
    assert main([]) == 2
