"""CloudFormation Lambda Hook requests (RESOURCE and CLOUD_CONTROL target operations; STACK and
CHANGE_SET payloads are read by ``cfn_stack`` once fetched).

Resource properties are PascalCase with numbers as strings; the CloudTrail extractors read them
unchanged because the getters ignore case and counts accept decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake import cloudtrail_generic
from enforcer.intake.cloudtrail import account_id, region
from enforcer.intake.cloudtrail_ec2 import (
    allocate_hosts,
    create_capacity_reservation,
    create_fleet,
    create_launch_template,
    request_spot_fleet,
    run_instances,
)
from enforcer.intake.cloudtrail_sagemaker import endpoint_config, hyperpod_cluster, notebook_instance
from enforcer.intake.cloudtrail_services import (
    auto_scaling_group,
    batch_create,
    eks_nodegroup,
    emr_cfn_cluster,
    launch_configuration,
)
from enforcer.intake.fields import kind, text
from enforcer.intake.registry import CLOUDTRAIL_SHAPES, Extractor, detector
from enforcer.intake.request import launch_request
from enforcer.model import Ignored, InputError, LaunchRequest

#: CloudFormation resource type -> extractor for its properties.
RESOURCE_TYPES: dict[str, Extractor] = {
    "AWS::EC2::Instance": run_instances,
    "AWS::EC2::LaunchTemplate": create_launch_template,
    "AWS::EC2::EC2Fleet": create_fleet,
    "AWS::EC2::SpotFleet": request_spot_fleet,
    "AWS::EC2::CapacityReservation": create_capacity_reservation,
    "AWS::EC2::Host": allocate_hosts,
    "AWS::AutoScaling::AutoScalingGroup": auto_scaling_group,
    "AWS::AutoScaling::LaunchConfiguration": launch_configuration,
    "AWS::EKS::Nodegroup": eks_nodegroup,
    "AWS::SageMaker::EndpointConfig": endpoint_config,
    "AWS::SageMaker::NotebookInstance": notebook_instance,
    "AWS::SageMaker::Cluster": hyperpod_cluster,
    "AWS::Batch::ComputeEnvironment": batch_create,
    "AWS::EMR::Cluster": emr_cfn_cluster,
}
#: Resource types whose properties mirror a decided API call: read by that call's CloudTrail extractor
#: (hand-written or table-driven), then completed from the service model. Red team: these got SUCCESS.
API_OF_RESOURCE: dict[str, tuple[str, str]] = {
    "AWS::EC2::CapacityReservationFleet": ("ec2.amazonaws.com", "CreateCapacityReservationFleet"),
    "AWS::EMR::InstanceFleetConfig": ("elasticmapreduce.amazonaws.com", "AddInstanceFleet"),
    "AWS::EMR::InstanceGroupConfig": ("elasticmapreduce.amazonaws.com", "AddInstanceGroups"),
    "AWS::Cloud9::EnvironmentEC2": ("cloud9.amazonaws.com", "CreateEnvironmentEC2"),
    "AWS::SageMaker::App": ("sagemaker.amazonaws.com", "CreateApp"),
    "AWS::PCS::ComputeNodeGroup": ("pcs.amazonaws.com", "CreateComputeNodeGroup"),
    "AWS::AppStream::Fleet": ("appstream.amazonaws.com", "CreateFleet"),
    "AWS::AppStream::ImageBuilder": ("appstream.amazonaws.com", "CreateImageBuilder"),
    "AWS::AppStream::AppBlockBuilder": ("appstream.amazonaws.com", "CreateAppBlockBuilder"),
    "AWS::CodeBuild::Fleet": ("codebuild.amazonaws.com", "CreateFleet"),
    "AWS::CodeBuild::Project": ("codebuild.amazonaws.com", "CreateProject"),
    "AWS::Deadline::Fleet": ("deadline.amazonaws.com", "CreateFleet"),
    "AWS::ECS::CapacityProvider": ("ecs.amazonaws.com", "CreateCapacityProvider"),
    "AWS::Lambda::CapacityProvider": ("lambda.amazonaws.com", "CreateCapacityProvider"),
    "AWS::GameLift::Fleet": ("gamelift.amazonaws.com", "CreateFleet"),
    "AWS::GameLift::ContainerFleet": ("gamelift.amazonaws.com", "CreateContainerFleet"),
    "AWS::SageMaker::MonitoringSchedule": ("sagemaker.amazonaws.com", "CreateMonitoringSchedule"),
    "AWS::SageMaker::DataQualityJobDefinition": ("sagemaker.amazonaws.com", "CreateDataQualityJobDefinition"),
    "AWS::SageMaker::ModelBiasJobDefinition": ("sagemaker.amazonaws.com", "CreateModelBiasJobDefinition"),
    "AWS::SageMaker::ModelExplainabilityJobDefinition": (
        "sagemaker.amazonaws.com",
        "CreateModelExplainabilityJobDefinition",
    ),
    "AWS::SageMaker::ModelQualityJobDefinition": (
        "sagemaker.amazonaws.com",
        "CreateModelQualityJobDefinition",
    ),
    "AWS::SageMaker::InferenceExperiment": ("sagemaker.amazonaws.com", "CreateInferenceExperiment"),
    "AWS::SageMaker::ProcessingJob": ("sagemaker.amazonaws.com", "CreateProcessingJob"),
    "AWS::SageMaker::InferenceComponent": ("sagemaker.amazonaws.com", "CreateInferenceComponent"),
    "AWS::SageMaker::ModelPackage": ("sagemaker.amazonaws.com", "CreateModelPackage"),
    "AWS::EKS::Cluster": ("eks.amazonaws.com", "CreateCluster"),
    "AWS::DRS::ReplicationConfigurationTemplate": (
        "drs.amazonaws.com",
        "CreateReplicationConfigurationTemplate",
    ),
    "AWS::BedrockAgentCore::CapacityProvider": ("bedrock-agentcore.amazonaws.com", "CreateCapacityProvider"),
    "AWS::WorkspacesInstances::WorkspaceInstance": (
        "workspaces-instances.amazonaws.com",
        "CreateWorkspaceInstance",
    ),
}


def hook_target_names() -> tuple[str, ...]:
    """Every CloudFormation type the hook decides: the templates' ``TargetNames`` (tests compare)."""
    return tuple(sorted(set(RESOURCE_TYPES) | set(API_OF_RESOURCE)))


PROPS_PATH = "requestData.targetModel.resourceProperties"
#: Reason of the Ignored a STACK/CHANGE_SET request gets until its payload is fetched (hook_payload).
PAYLOAD_NOT_FETCHED = "template payload not fetched here"


def _is_hook(e: Mapping[str, Any]) -> bool:
    # The Hooks guide documents requests without a clientRequestToken: recognise them by their fields.
    return "requestData" in e and any(k in e for k in _HOOK_KEYS)


_HOOK_KEYS = ("clientRequestToken", "clientRequesttoken", "hookTypeName", "awsAccountId")


def extractor_for(resource_type: str) -> Extractor | None:
    """The properties extractor of a launch-bearing CloudFormation resource type, else None.

    The one call site deciding whether a resource type is launch-bearing (RESOURCE, CLOUD_CONTROL,
    STACK and CHANGE_SET targets all ask here).
    """
    hand = RESOURCE_TYPES.get(resource_type)
    if hand is not None or resource_type not in API_OF_RESOURCE:
        return hand
    source, name = API_OF_RESOURCE[resource_type]
    base = CLOUDTRAIL_SHAPES.get((source, name)) or cloudtrail_generic.extractor_for(source, name)
    if base is None:  # the coverage table no longer decides the call: fail closed on a type anyway
        base = cloudtrail_generic.extractor_for("ec2.amazonaws.com", "RunInstances")
    assert base is not None
    inner: Extractor = base

    def read(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Any:
        return cloudtrail_generic.complete(inner(p, at, resp), p, at, source, name)

    return read


def hook_context(event: Mapping[str, Any]) -> tuple[str | None, str, str, str | None, str | None]:
    """``(token, account, region, stack_id, invocation_point)`` of a hook request (token may be None).

    Raises
    ------
    InputError
        Bad account id, stack ARN or field types.
    """
    from enforcer.intake.cfn_stack import hook_token  # YAML loaded for hook requests, not at import

    token = hook_token(event)
    for key in ("clientRequestToken", "clientRequesttoken"):
        if event.get(key) is not None:  # optional, but a token that is there must be a string
            token = text(event.get(key), key, 128)
            break
    acct = account_id(event.get("awsAccountId"), "awsAccountId")
    stack_key = "stackId" if "stackId" in event else "stackID"  # the guide spells it both ways
    stack_id = _opt(event, stack_key, 2048)
    return token, acct, stack_region(stack_id), stack_id, _opt(event, "actionInvocationPoint", 64)


def _opt(event: Mapping[str, Any], key: str, max_len: int) -> str | None:
    v = event.get(key)
    return text(v, key, max_len) if v is not None and v != "" else None


def stack_region(stack_id: str | None) -> str:
    """Region of a stack ARN (``arn:aws:cloudformation:REGION:ACCOUNT:stack/...``), else ``"unknown"``."""
    if not stack_id:
        return "unknown"
    parts = stack_id.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "cloudformation":
        raise InputError("stackId: not a CloudFormation stack ARN")
    return region(parts[3], "stackId")


@detector("cfn_hook", _is_hook)
def from_hook(event: Mapping[str, Any], now: str | None) -> LaunchRequest | Ignored:
    """Normalise a Lambda Hook request for one resource.

    Returns
    -------
    LaunchRequest or Ignored
        Ignored for deletes, resource types that carry no instance type, and stack or change-set
        payloads (those arrive as S3 URLs and are not evaluated here).

    Raises
    ------
    InputError
        Missing account/target, or malformed properties (a missing token is not an error).
    """
    token, acct, reg, stack_id, point = hook_context(event)
    rd = event.get("requestData")
    if not isinstance(rd, dict):
        raise InputError(f"requestData: expected an object, got {kind(rd)}")
    target = text(rd.get("targetName"), "requestData.targetName", 256)
    action = f"cloudformation:{target}"
    if point is not None and point.upper().startswith("DELETE"):
        return Ignored("delete operation", token, action)
    from enforcer.intake.cfn_stack import template_target

    if template_target(event) is not None:  # the Lambda handler fetches the payload (cfn_stack)
        return Ignored(PAYLOAD_NOT_FETCHED, token, action)
    extractor = extractor_for(target)
    if extractor is None:
        return Ignored("resource type carries no instance type", token, action)
    model = rd.get("targetModel")
    if not isinstance(model, dict):
        raise InputError(f"requestData.targetModel: expected an object, got {kind(model)}")
    props = model.get("resourceProperties")
    if not isinstance(props, dict):
        raise InputError(f"{PROPS_PATH}: expected an object, got {kind(props)}")
    parsed = extractor(props, PROPS_PATH, None)

    def context() -> dict[str, Any]:
        extra: dict[str, Any] = {
            "client_request_token": token,
            "invocation_point": point,
            "logical_id": _opt(rd, "targetLogicalId", 256),
            "stack_id": stack_id,
        }
        target_type = _opt(rd, "targetType", 256)
        if target_type is not None:
            extra["target_type"] = target_type
        return extra

    return launch_request(
        parsed,
        source="cfn_hook",
        action=action,
        account_id=acct,
        region=reg,
        event_id=token,
        event_time=now,
        body=props,
        extra=context,
        empty="no instance type in resource",
    )
