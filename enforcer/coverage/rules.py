"""Statuses for the coverage table: registries of the judgements the service models cannot make.

Everything the models tell (which operations carry a type, where, with which enum) comes from
:mod:`enforcer.coverage.walker`; these registries add what a reader must decide: which calls only
*define* something used later (``resolved-at-use``), which services have no accelerated types or
launch nothing (``out-of-scope``), and which launches name no type at all but a reference
(``REFERENCE_OPERATIONS``: instance ids, launch templates, endpoint configurations).
An operation no registry names is ``decided`` when it writes, ``out-of-scope`` when it only reads.
"""

from __future__ import annotations

from typing import NamedTuple

#: Operation-name prefixes of calls that read and never launch.
READ_PREFIXES = ("Describe", "Get", "List", "Search", "BatchGet")

#: Services whose instance types are never accelerated (or that launch nothing), with the reason.
#: Services whose enum settles the question need no entry: the table builder checks every enum
#: value against the chip catalogue.
OUT_OF_SCOPE_SERVICES: dict[str, str] = {
    "kafka": "Amazon MSK brokers: kafka.*/express.* broker types, none accelerated",
    "mq": "Amazon MQ brokers: mq.* host types, none accelerated",
    "route53resolver": "Route 53 Resolver appliances on Outposts: no accelerated types",
    "m2": "Mainframe Modernization runtime environments: M2.* types, none accelerated",
    "managedblockchain": "blockchain nodes: bc.* types, none accelerated",
    "workspaces-web": "browser-portal session sizes, not instance types",
    "groundstation": "agent registration reports the host it runs on; launches nothing",
    "securityhub": "findings and filters describe resources; launch nothing",
    "discovery": "export preferences (excluded types); launch nothing",
    "outposts": (
        "reconfigures slots of customer-owned Outposts hardware; instances on it are EC2 "
        "RunInstances calls, decided there"
    ),
}

#: Single operations that launch nothing, with the reason.
OUT_OF_SCOPE_OPERATIONS: dict[tuple[str, str], str] = {
    ("ec2", "ModifyReservedInstances"): "billing: re-scopes reserved-instance discounts, launches nothing",
    ("sagemaker", "CreateComputeQuota"): (
        "shares capacity inside an existing HyperPod cluster (decided at CreateCluster, UpdateCluster, "
        "BatchAddClusterNodes)"
    ),
    ("sagemaker", "UpdateComputeQuota"): (
        "shares capacity inside an existing HyperPod cluster (decided at CreateCluster, UpdateCluster, "
        "BatchAddClusterNodes)"
    ),
}

_COMPUTE_ENV = "runs on a compute environment's instances, decided at Create/UpdateComputeEnvironment"
_STUDIO = "default Studio app types; decided when CreateApp starts an app"

#: Operations that only define something a later launch uses (decided at that launch).
RESOLVED_AT_USE: dict[tuple[str, str], str] = {
    ("batch", "RegisterJobDefinition"): _COMPUTE_ENV,
    ("batch", "SubmitJob"): _COMPUTE_ENV,
    ("pipes", "CreatePipe"): _COMPUTE_ENV,
    ("pipes", "UpdatePipe"): _COMPUTE_ENV,
    ("sagemaker", "CreateDomain"): _STUDIO,
    ("sagemaker", "UpdateDomain"): _STUDIO,
    ("sagemaker", "CreateUserProfile"): _STUDIO,
    ("sagemaker", "UpdateUserProfile"): _STUDIO,
    ("sagemaker", "CreateSpace"): _STUDIO,
    ("sagemaker", "UpdateSpace"): _STUDIO,
    ("imagebuilder", "CreateInfrastructureConfiguration"): (
        "build instances are EC2 RunInstances calls made by Image Builder in the account, decided there"
    ),
    ("imagebuilder", "UpdateInfrastructureConfiguration"): (
        "build instances are EC2 RunInstances calls made by Image Builder in the account, decided there"
    ),
}


class Reference(NamedTuple):
    """A launch that names no type: where the reference sits and what resolves it."""

    paths: tuple[str, ...]
    reason: str


#: HyperPod groups in SageMaker's account scaled by count alone (CreateCluster, UpdateCluster).
_HYPERPOD_GROUP = Reference(
    ("ClusterName", "InstanceGroups[].InstanceGroupName", "InstanceGroups[].InstanceCount"),
    "a group scaled by count alone (InstanceCount, no InstanceType or InstanceRequirements): the group's "
    "instance types at the new count (DescribeCluster)",
)

#: Launches (and restarts) whose request carries a reference instead of a type.
REFERENCE_OPERATIONS: dict[tuple[str, str], Reference] = {
    ("ec2", "StartInstances"): Reference(
        ("InstanceIds[]",), "restarts stopped instances: each id is resolved to its type (DescribeInstances)"
    ),
    ("ec2", "PurchaseCapacityBlock"): Reference(
        ("CapacityBlockOfferingId",), "buys a Capacity Block: the offering id is resolved to its type"
    ),
    ("eks", "UpdateNodegroupVersion"): Reference(
        ("launchTemplate",),
        "swaps in a launch template: resolved to its type (DescribeLaunchTemplateVersions)",
    ),
    ("sagemaker", "UpdateEndpoint"): Reference(
        ("EndpointConfigName",), "redeploys an endpoint on an endpoint configuration (decided by reference)"
    ),
    ("sagemaker", "CreateEndpoint"): Reference(
        ("EndpointConfigName",), "deploys an endpoint configuration (decided by reference)"
    ),
    ("sagemaker", "StartNotebookInstance"): Reference(
        ("NotebookInstanceName",),
        "restarts a notebook instance: resolved to its type (DescribeNotebookInstance)",
    ),
    ("sagemaker", "CreateTrainingPlan"): Reference(
        ("TrainingPlanName",),
        "reserves ml.p5/ml.trn2 capacity like a Capacity Block: the plan's reserved capacities are "
        "resolved to their types (DescribeTrainingPlan)",
    ),
    ("sagemaker", "ExtendTrainingPlan"): Reference(
        ("TrainingPlanExtensionOfferingId",),
        "extends a training plan's reserved capacity; the plan, named nowhere in the call, is found by the "
        "offering in its extension history (ListTrainingPlans, DescribeTrainingPlanExtensionHistory)",
    ),
    ("sagemaker", "UpdateEndpointWeightsAndCapacities"): Reference(
        ("EndpointName", "DesiredWeightsAndCapacities[].DesiredInstanceCount"),
        "scales a running endpoint: its variants' types at the desired counts (DescribeEndpoint)",
    ),
    # fleets in the service's account (no EC2 state change reaches the guard) scaled by count alone: the
    # fleet's configuration, read as CreateFleet's, at the new count (enforcer.resolve.fleets)
    ("deadline", "UpdateFleet"): Reference(
        ("farmId", "fleetId", "maxWorkerCount", "minWorkerCount"),
        "scaled by count alone (maxWorkerCount or minWorkerCount, no configuration): the fleet's "
        "configuration (service-managed instance capabilities) at the new worker count (GetFleet)",
    ),
    ("appstream", "UpdateFleet"): Reference(
        ("Name", "ComputeCapacity.DesiredInstances", "ComputeCapacity.DesiredSessions"),
        "scaled by count alone (ComputeCapacity, no InstanceType): the fleet's instance type at the new "
        "capacity (DescribeFleets)",
    ),
    ("codebuild", "UpdateFleet"): Reference(
        ("arn", "baseCapacity", "scalingConfiguration.maxCapacity"),
        "scaled by count alone (baseCapacity, no computeConfiguration.instanceType): the fleet's instance "
        "type at the new capacity (BatchGetFleets); a GPU environment naming none fails closed",
    ),
    ("ec2", "ModifyCapacityReservation"): Reference(
        ("CapacityReservationId", "InstanceCount"),
        "resizes a capacity reservation: its instance type at the new count (DescribeCapacityReservations)",
    ),
    ("ec2", "ModifyCapacityReservationFleet"): Reference(
        ("CapacityReservationFleetId", "TotalTargetCapacity"),
        "resizes a capacity reservation fleet: its instance type specifications at the new target capacity "
        "over the lightest weight (DescribeCapacityReservationFleets)",
    ),
    # HyperPod groups in SageMaker's account scaled by count alone: the group's types (DescribeCluster)
    ("sagemaker", "CreateCluster"): _HYPERPOD_GROUP,
    ("sagemaker", "UpdateCluster"): _HYPERPOD_GROUP,
    ("sagemaker", "BatchAddClusterNodes"): Reference(
        ("ClusterName", "NodesToAdd[].InstanceGroupName", "NodesToAdd[].IncrementTargetCountBy"),
        "nodes added by count alone (IncrementTargetCountBy, no InstanceTypes): the group's instance types "
        "at the increment (DescribeCluster)",
    ),
}
