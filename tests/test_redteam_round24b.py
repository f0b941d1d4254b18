"""Red team round 24b: today's coverage changes attacked from the outside (3876fd2 attribute-based selection
in every call, 7b74c21 count-only fleet scale-ups, 6b75deb AppStream ``stream.*`` types, ef6de9f AppStream
and CodeBuild count members).

Each finding is a test: fixed ones pass, open ones are strict xfails naming the finding. Inputs follow the
botocore service models in the venv (member names, shapes) and the spellings CloudTrail uses.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from enforcer.intake import normalise
from enforcer.model import Ignored, LaunchRequest

ROOT = Path(__file__).resolve().parents[1]
CN = "123456789012"

#: vCPU and memory only: attribute-based selection that AWS's defaults let pick an accelerated type.
_IR: dict[str, Any] = {"vCpuCount": {"min": 4, "max": 16}, "memoryMiB": {"min": 8192}}


def _record(source: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    rec = json.loads((ROOT / "tests" / "events" / "cloudtrail_record_runinstances.json").read_text())
    rec.update(eventSource=source, eventName=name, requestParameters=params)
    rec.pop("responseElements", None)
    return rec


def _capacity_provider(service: str, reqs: dict[str, Any]) -> dict[str, Any]:
    """``CreateCapacityProvider`` of ECS, Lambda or Bedrock AgentCore with ``reqs`` as its requirements."""
    if service == "ecs":
        params: dict[str, Any] = {
            "name": "cp",
            "managedInstancesProvider": {
                "infrastructureRoleArn": f"arn:aws:iam::{CN}:role/ecs",
                "instanceLaunchTemplate": {
                    "ec2InstanceProfileArn": f"arn:aws:iam::{CN}:instance-profile/ecs",
                    "networkConfiguration": {"subnets": ["subnet-1"]},
                    "instanceRequirements": reqs,
                },
            },
        }
        return _record("ecs.amazonaws.com", "CreateCapacityProvider", params)
    if service == "lambda":
        params = {
            "CapacityProviderName": "cp",
            "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
            "InstanceRequirements": reqs,
        }
        return _record("lambda.amazonaws.com", "CreateCapacityProvider", params)
    params = {
        "name": "cp",
        "computeConfiguration": {
            "ec2Configuration": {"launchTemplateSource": {"launchParameters": {"instanceRequirements": reqs}}}
        },
    }
    return _record("bedrock-agentcore.amazonaws.com", "CreateCapacityProvider", params)


_SERVICES = ("ecs", "lambda", "bedrock-agentcore")


def _allowed(service: str) -> str:
    return "AllowedInstanceTypes" if service == "lambda" else "allowedInstanceTypes"


# -- finding 1: an allowed-types member that names no type the walk reads hid the selection ----------------
@pytest.mark.parametrize("service", _SERVICES)
@pytest.mark.parametrize(
    "value",
    [{"items": []}, [""], [None], [{}], [[]], {"item": []}],
    ids=["wrapped-empty", "blank", "null", "empty-object", "empty-list", "item-empty"],
)
def test_an_allowed_list_naming_no_type_is_still_a_selection(service: str, value: Any) -> None:
    """Finding 1 (high, fixed): ``_selection`` took any truthy allowed-types member as "names its types",
    so ``{"items": []}``, ``[""]``, ``[null]`` beside vCPU/memory dropped the selection and the walk found
    no type: the call was Ignored. Now only a member the walk reads holding a non-empty string names types;
    otherwise it is an unresolved ``instance_requirements`` reference (fails closed)."""
    got = normalise(_capacity_provider(service, {_allowed(service): value, **_IR}))
    assert isinstance(got, LaunchRequest), got
    assert [(i.instance_type, (i.ref or {}).get("kind")) for i in got.items] == [
        (None, "instance_requirements")
    ]
    assert got.items[0].ref is not None and got.items[0].ref["accelerators"] is True


@pytest.mark.parametrize("service", _SERVICES)
@pytest.mark.parametrize(
    "member",
    [
        {"InstanceTypes": ["m5.large"]},
        {"desiredInstanceTypes": ["m5.large"]},
        {"currentInstanceTypes": ["m5.large"]},
        {"instanceType": "t3.micro"},
    ],
    ids=["InstanceTypes", "desired", "current", "instanceType"],
)
def test_a_member_the_service_does_not_have_does_not_hide_the_selection(
    service: str, member: dict[str, Any]
) -> None:
    """Finding 1 (fixed): ``_ALLOWED`` matched SageMaker's ``InstanceTypes``/``Desired``/``Current`` and a bare
    ``instanceType`` in any service's requirements, so adding one the service's model lacks (ECS, Lambda and
    AgentCore only read ``allowedInstanceTypes``) made the selection vanish: Ignored, or read as the benign
    type alone. The selection now stays beside whatever the walk reads."""
    got = normalise(_capacity_provider(service, {**_IR, **member}))
    assert isinstance(got, LaunchRequest), got
    kinds = [(i.ref or {}).get("kind") for i in got.items if i.instance_type is None]
    assert kinds == ["instance_requirements"]


@pytest.mark.parametrize("service", _SERVICES)
def test_a_selection_naming_a_real_type_is_still_read_as_that_type(service: str) -> None:
    """What held: a non-empty allowed list is read as its types with no reference beside it."""
    got = normalise(_capacity_provider(service, {_allowed(service): ["m5.large", "p5.48xlarge"], **_IR}))
    assert isinstance(got, LaunchRequest), got
    assert [(i.instance_type, i.ref) for i in got.items] == [("m5.large", None), ("p5.48xlarge", None)]


def test_sagemaker_hyperpod_instance_types_still_name_the_types() -> None:
    group = {
        "InstanceGroupName": "g",
        "InstanceCount": 4,
        "InstanceRequirements": {"InstanceTypes": ["ml.p5.48xlarge"]},
        "ExecutionRole": f"arn:aws:iam::{CN}:role/x",
        "LifeCycleConfig": {"SourceS3Uri": "s3://b/p", "OnCreate": "x.sh"},
    }
    params = {"ClusterName": "c", "InstanceGroups": [group]}
    got = normalise(_record("sagemaker.amazonaws.com", "CreateCluster", params))
    assert isinstance(got, LaunchRequest), got
    assert [(i.instance_type, i.count, i.ref) for i in got.items] == [("p5.48xlarge", 4, None)]
    empty = copy.deepcopy(params)
    empty["InstanceGroups"][0]["InstanceRequirements"] = {"InstanceTypes": []}
    got = normalise(_record("sagemaker.amazonaws.com", "CreateCluster", empty))
    assert isinstance(got, LaunchRequest) and got.items[0].ref is not None, got


@pytest.mark.parametrize(
    "excluding",
    [
        {"acceleratorCount": {"max": 0}},
        {"acceleratorCount": {"Max": 0}},
        {"AcceleratorCount": {"max": "0"}},
        {"acceleratorCount": {"min": 0, "max": 0.0}},
        {"acceleratorCount": {"max": 0}, "acceleratorNames": ["h100"]},
    ],
)
def test_held_a_selection_excluding_accelerators_is_not_denied(excluding: dict[str, Any]) -> None:
    """What held (no needless deny): ``acceleratorCount.max`` 0, in any spelling, excludes accelerators even
    beside accelerator names (AWS selects no accelerated type)."""
    assert isinstance(normalise(_capacity_provider("ecs", {**_IR, **excluding})), Ignored)


@pytest.mark.parametrize(
    "asking",
    [{"acceleratorCount": {"max": None}}, {"acceleratorCount": {"max": -1}}, {"acceleratorTypes": ["gpu"]}],
)
def test_held_a_malformed_or_explicit_accelerator_member_asks(asking: dict[str, Any]) -> None:
    got = normalise(_capacity_provider("ecs", {**_IR, **asking}))
    assert isinstance(got, LaunchRequest) and got.items[0].ref is not None, got
    assert got.items[0].ref["accelerators_requested"] is True


# -- finding 2: type patterns in a requirements object's allowed types were a malformed launch (denied) -----
NOW = 1_796_083_200.0


@pytest.fixture
def decide(engine: Any, catalog: Any) -> Any:
    from enforcer.accounts import AccountOrigin, StaticAccountDirectory
    from enforcer.pipeline import Enforcer
    from enforcer.resolve import AwsResolver

    origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
    resolver = AwsResolver(None, known_types=catalog.known_types(), attempts=1)
    enforcer = Enforcer(
        catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver
    )

    def run(rec: dict[str, Any]) -> Any:
        req = normalise(rec)
        assert isinstance(req, LaunchRequest), req
        return enforcer.decide(req, now=NOW)

    return run


@pytest.mark.parametrize("service", _SERVICES)
def test_cpu_type_patterns_are_expanded_and_allowed(service: str, decide: Any) -> None:
    """Finding 2 (medium, false positive, fixed; older than 3876fd2): ``allowedInstanceTypes: ["m5.*",
    "c6i.*"]`` (AWS's documented wildcards) reached ``fields.instance_type`` in the table's walk and raised:
    the guard denied a CPU-only capacity provider as malformed (EC2's own CreateLaunchTemplate too). Now the
    patterns ride on the ``instance_requirements`` reference and the resolver expands them over the known
    types, as it does EC2's."""
    got = normalise(_capacity_provider(service, {_allowed(service): ["m5.*", "c6i.*"], **_IR}))
    assert isinstance(got, LaunchRequest), got
    assert [i.ref for i in got.items] == [
        {
            "kind": "instance_requirements",
            "accelerators": True,
            "accelerators_requested": False,
            "allowed_instance_types": ["m5.*", "c6i.*"],
        }
    ]
    d = decide(_capacity_provider(service, {_allowed(service): ["m5.*", "c6i.*"], **_IR}))
    assert d.effect == "allow", d.reason_codes
    assert {i.instance_type.split(".")[0] for i in d.request.items} == {"m5", "c6i"}


@pytest.mark.parametrize("pattern", ["p*", "*", "g6e.*", "p5*", "*.48xlarge"])
def test_gpu_type_patterns_are_denied(pattern: str, decide: Any) -> None:
    d = decide(_capacity_provider("ecs", {"allowedInstanceTypes": ["m5.large", pattern], **_IR}))
    assert d.effect == "deny", d.reason_codes


def test_excluded_patterns_narrow_the_expansion(decide: Any) -> None:
    reqs = {"allowedInstanceTypes": ["g6e.*", "m5.*"], "excludedInstanceTypes": ["g6e.*"], **_IR}
    d = decide(_capacity_provider("ecs", reqs))
    assert d.effect == "allow", d.reason_codes
    assert {i.instance_type.split(".")[0] for i in d.request.items} == {"m5"}


def test_a_pattern_matching_no_known_type_fails_closed(decide: Any) -> None:
    d = decide(_capacity_provider("ecs", {"allowedInstanceTypes": ["zz9*.*"], **_IR}))
    assert d.effect == "deny", d.reason_codes


def test_patterns_beside_excluded_accelerators_are_not_a_launch_of_one() -> None:
    reqs = {"allowedInstanceTypes": ["p*"], "acceleratorCount": {"max": 0}, **_IR}
    assert isinstance(normalise(_capacity_provider("ecs", reqs)), Ignored)


def test_ec2_launch_template_patterns_are_not_malformed() -> None:
    lt = {
        "LaunchTemplateName": "t",
        "LaunchTemplateData": {
            "InstanceRequirements": {"VCpuCount": {"Min": 4}, "AllowedInstanceTypes": ["m5.*"]}
        },
    }
    got = normalise(_record("ec2.amazonaws.com", "CreateLaunchTemplate", {"CreateLaunchTemplateRequest": lt}))
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref or {}).get("allowed_instance_types") for i in got.items] == [["m5.*"]]


# -- finding 3: a selection's count skipped the object that holds it -------------------------------------------
def test_a_selection_counts_the_instances_of_the_group_that_holds_it() -> None:
    """Finding 3 (low, fixed): a selection item took its count from ``chain[1]``, the holder's parent, so a
    HyperPod instance group of ``InstanceCount`` 4 selecting by requirements was decided (and audited) at 1
    instance; a type named in the same place counted 4. Once patterns resolve (finding 2) the count is the
    launch's size. Both now count from the holder up."""
    group = {
        "InstanceGroupName": "g",
        "InstanceCount": 4,
        "InstanceRequirements": {"InstanceTypes": []},
        "ExecutionRole": f"arn:aws:iam::{CN}:role/x",
        "LifeCycleConfig": {"SourceS3Uri": "s3://b/p", "OnCreate": "x.sh"},
    }
    got = normalise(
        _record("sagemaker.amazonaws.com", "CreateCluster", {"ClusterName": "c", "InstanceGroups": [group]})
    )
    assert isinstance(got, LaunchRequest), got
    assert [(i.instance_type, i.count) for i in got.items] == [(None, 4)]
    got = normalise(_capacity_provider("ecs", {"allowedInstanceTypes": ["m5.*"], **_IR}))
    assert isinstance(got, LaunchRequest) and [i.count for i in got.items] == [1]  # no count anywhere: 1


# -- what held -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "chip_class"),
    [
        ("stream.graphics.g6e.xlarge", "3A090.a"),
        ("STREAM.GRAPHICS.G6E.XLARGE", "3A090.a"),  # intake lower-cases: same as the spelling AWS uses
        ("stream.graphics.p5.48xlarge", "3A090.a"),
        ("stream.graphics.g5.xlarge", "none"),
        ("stream.graphics-pro.4xlarge", "none"),
        ("stream.standard.small", "none"),
        ("stream.memory.z1d.large", "none"),
        ("stream.graphics-design.large", "unknown"),
        ("stream.graphics.zz9.xlarge", "unknown"),  # a GPU family the catalogue lacks: unknown, never none
        ("stream.graphics..g6e.xlarge", "unknown"),
        ("stream.graphics.g6e.xlarge.", "unknown"),
        ("stream.graphics-pro.p5.48xlarge", "unknown"),
        ("stream.graphics", "unknown"),
        ("stream.standard", "unknown"),
    ],
)
def test_held_appstream_names_through_intake_and_catalogue(name: str, chip_class: str, catalog: Any) -> None:
    """What held: a CreateFleet's ``stream.*`` name, in any case, classifies as the EC2 type behind it; odd
    dots and families the mapping does not know are unknown (fail closed); the sweep uses the same mapping.
    (``stream.standard.g5.xlarge`` classifies ``none``, but AWS rejects that name: a failed call is Ignored.)"""
    params = {"Name": "f", "InstanceType": name, "ComputeCapacity": {"DesiredInstances": 3}}
    got = normalise(_record("appstream.amazonaws.com", "CreateFleet", params))
    assert isinstance(got, LaunchRequest), got
    (item,) = got.items
    assert item.count == 3
    assert item.instance_type is not None
    assert catalog.classify(item.instance_type).chip_class == chip_class


@pytest.mark.parametrize(
    "name", [" stream.graphics.g6e.xlarge", "stream.graphics.g6e.xlarge ", "stream.graphics.\uff476e.xlarge"]
)
def test_held_spaced_or_look_alike_names_are_malformed_not_ignored(name: str) -> None:
    from enforcer.model import InputError

    with pytest.raises(InputError):
        normalise(_record("appstream.amazonaws.com", "CreateFleet", {"Name": "f", "InstanceType": name}))


@pytest.mark.parametrize(
    "capacity",
    [
        {"desiredInstances": "500"},
        {"desiredInstances": 500.0},
        {"desiredInstances": 0, "desiredSessions": 500},
    ],
)
def test_held_count_only_scale_ups_read_every_count_spelling(capacity: dict[str, Any]) -> None:
    params = {"name": "g", "computeCapacity": capacity}
    got = normalise(_record("appstream.amazonaws.com", "UpdateFleet", params))
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref, i.count) for i in got.items] == [({"kind": "appstream_fleet", "name": "g"}, 500)]


@pytest.mark.parametrize(
    "capacity",
    [
        {"desiredInstances": -5},
        {"desiredInstances": 10**15},
        {"desiredInstances": "5e2"},
        {"desiredInstances": 1.5},
    ],
)
def test_held_bad_counts_are_malformed_not_ignored(capacity: dict[str, Any]) -> None:
    from enforcer.model import InputError

    with pytest.raises(InputError):
        normalise(
            _record("appstream.amazonaws.com", "UpdateFleet", {"name": "g", "computeCapacity": capacity})
        )


def test_held_replay_without_aws_denies_a_count_only_scale_up(engine: Any, catalog: Any) -> None:
    """What replay (no resolver) decides for a fleet reference: unresolved, denied, with its count."""
    from enforcer.accounts import AccountOrigin, StaticAccountDirectory
    from enforcer.pipeline import Enforcer

    origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
    enforcer = Enforcer(catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine)
    for source, params in [
        ("appstream.amazonaws.com", {"name": "g", "computeCapacity": {"desiredInstances": 50}}),
        (
            "codebuild.amazonaws.com",
            {"arn": "arn:aws:codebuild:us-east-1:123456789012:fleet/f:1", "baseCapacity": 50},
        ),
        ("deadline.amazonaws.com", {"farmId": "farm-1", "fleetId": "fleet-1", "maxWorkerCount": 50}),
    ]:
        req = normalise(_record(source, "UpdateFleet", params))
        assert isinstance(req, LaunchRequest), req
        d = enforcer.decide(req, now=NOW)
        assert d.effect == "deny" and "REQUEST_UNRESOLVED" in d.reason_codes, (source, d.reason_codes)
        assert [i.count for i in d.request.items] == [50]


# -- findings 4 and 5: Deadline count-only scale-ups the shape stepped aside from ----------------------------------
FARM, FLEET = "farm-0123456789abcdef0123456789abcdef", "fleet-0123456789abcdef0123456789abcdef"


def _deadline_update(**params: Any) -> dict[str, Any]:
    return _record("deadline.amazonaws.com", "UpdateFleet", {"farmId": FARM, "fleetId": FLEET, **params})


def test_raising_the_worker_floor_is_a_scale_up() -> None:
    """Finding 4 (high, fixed): ``UpdateFleet`` with ``minWorkerCount`` 500 and no ``maxWorkerCount`` starts
    500 workers on a fleet whose maximum allows it, but the shape read only ``maxWorkerCount``: Ignored. Now the
    larger of the two counts; the resolver still takes the fleet's described maximum if larger."""
    got = normalise(_deadline_update(minWorkerCount=500))
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref, i.count) for i in got.items] == [
        ({"kind": "deadline_fleet", "farm_id": FARM, "id": FLEET}, 500)
    ]
    assert isinstance(normalise(_deadline_update(minWorkerCount=0, maxWorkerCount=0)), Ignored)


@pytest.mark.parametrize(
    "configuration",
    [{}, {"serviceManagedEc2": {}}, {"serviceManagedEc2": {"instanceMarketOptions": {"type": "spot"}}}],
)
def test_a_configuration_naming_nothing_does_not_hide_the_scale_up(configuration: dict[str, Any]) -> None:
    """Finding 5 (low, fixed; AWS rejects these, so only a hook or broker payload carries one): any
    ``configuration`` object made the shape step aside for the table's walk, which read nothing in ``{}`` and
    so Ignored ``maxWorkerCount`` 1000. The shape now steps aside only for a configuration the walk decides
    (customer-managed, or service-managed with ``instanceCapabilities``)."""
    got = normalise(_deadline_update(maxWorkerCount=1000, configuration=configuration))
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref or {}).get("kind") for i in got.items] == ["deadline_fleet"]
    assert [i.count for i in got.items] == [1000]


def test_held_a_configuration_the_walk_reads_is_still_the_walks() -> None:
    caps = {
        "vCpuCount": {"min": 4},
        "memoryMiB": {"min": 8192},
        "osFamily": "LINUX",
        "cpuArchitectureType": "x86_64",
    }
    gpu = {**caps, "acceleratorCapabilities": {"selections": [{"name": "l40s"}]}}
    for c, kinds in [(caps, None), (gpu, ["instance_requirements"])]:
        cfg = {"serviceManagedEc2": {"instanceCapabilities": c, "instanceMarketOptions": {"type": "spot"}}}
        got = normalise(_deadline_update(maxWorkerCount=1000, configuration=cfg))
        if kinds is None:
            assert isinstance(got, Ignored), got  # no accelerators asked for: Deadline selects none
        else:
            assert isinstance(got, LaunchRequest), got
            assert [((i.ref or {}).get("kind"), i.count) for i in got.items] == [
                ("instance_requirements", 1000)
            ]
    customer = {"customerManaged": {"mode": "NO_SCALING", "workerCapabilities": caps}}
    assert isinstance(normalise(_deadline_update(maxWorkerCount=1000, configuration=customer)), Ignored)


# -- finding 6 (open): a type change without a count is decided at one instance ------------------------------------
@pytest.mark.xfail(
    strict=True,
    reason="finding 6: an UpdateFleet naming a new type but no capacity is decided at count 1, not at the "
    "fleet's capacity (needs the fleet reference to carry the named type and the resolver to count it)",
)
@pytest.mark.parametrize(
    ("source", "params"),
    [
        ("appstream.amazonaws.com", {"name": "g", "instanceType": "stream.graphics.g6e.xlarge"}),
        (
            "codebuild.amazonaws.com",
            {
                "arn": "arn:aws:codebuild:us-east-1:123456789012:fleet/f:1",
                "computeConfiguration": {"instanceType": "g6e.2xlarge"},
            },
        ),
    ],
)
def test_a_type_change_is_counted_at_the_fleets_capacity(source: str, params: dict[str, Any]) -> None:
    """A running fleet of 500 switched to a controlled type: the call names the type but no count, so the
    walk counts 1. The deny does not depend on it, but a licensed account's aggregate (the ledger's running
    compute) is understated by the fleet's size. Expected: the fleet's capacity (a reference), or at least not
    a bare count of 1."""
    got = normalise(_record(source, "UpdateFleet", params))
    assert isinstance(got, LaunchRequest), got
    assert any(i.ref is not None for i in got.items), [(i.instance_type, i.count) for i in got.items]


# -- finding 7 (open): a CodeBuild GPU environment choosing its instance by attributes is Ignored when created -------
_CB_GPU_ABS = {
    "environmentType": "LINUX_GPU_CONTAINER",
    "computeType": "ATTRIBUTE_BASED_COMPUTE",
    "computeConfiguration": {"vCpu": 48, "memory": 384, "machineType": "GENERAL"},
}


@pytest.mark.xfail(
    strict=True,
    reason="finding 7: CodeBuild CreateFleet/CreateProject/UpdateFleet of LINUX_GPU_CONTAINER with "
    "ATTRIBUTE_BASED_COMPUTE names no instance type and is Ignored, while resolve.fleets fails the same "
    "configuration closed when a count-only UpdateFleet scales it",
)
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("CreateFleet", {"name": "f", "baseCapacity": 10, **_CB_GPU_ABS}),
        ("UpdateFleet", {"arn": "arn:aws:codebuild:us-east-1:123456789012:fleet/f:1", **_CB_GPU_ABS}),
        (
            "CreateProject",
            {
                "name": "p",
                "source": {"type": "NO_SOURCE"},
                "artifacts": {"type": "NO_ARTIFACTS"},
                "environment": {
                    "type": "LINUX_GPU_CONTAINER",
                    "image": "aws/codebuild/standard:7.0",
                    "computeType": "ATTRIBUTE_BASED_COMPUTE",
                    "computeConfiguration": {"vCpu": 48, "memory": 384},
                },
                "serviceRole": f"arn:aws:iam::{CN}:role/cb",
            },
        ),
    ],
)
def test_a_codebuild_gpu_environment_selected_by_attributes_is_decided(
    name: str, params: dict[str, Any]
) -> None:
    """CodeBuild picks the GPU instance from vCPU and memory; which accelerator it gets is not in the call.
    The resolver reads that as "may be controlled" (unresolved, deny) for a fleet scaled later; the call that
    creates or reconfigures the fleet should be read the same way, not Ignored."""
    got = normalise(_record("codebuild.amazonaws.com", name, params))
    assert isinstance(got, LaunchRequest), got


# -- finding 8 (open): CPU-only patterns that expand past the resolver's alternatives budget are denied -------------
@pytest.mark.xfail(
    strict=True,
    reason="finding 8: allowed patterns expanding to more than resolve.common.MAX_ITEMS (64) known types "
    "(['m*'], or seven CPU families) leave the selection unresolved: a CPU-only selection is denied",
)
@pytest.mark.parametrize(
    "allowed",
    [["m*"], ["m5.*", "m6i.*", "m7i.*", "c6i.*", "c7i.*", "r6i.*", "r7i.*"]],
    ids=["m*", "seven-families"],
)
def test_many_cpu_patterns_are_allowed(allowed: list[str], decide: Any) -> None:
    d = decide(_capacity_provider("ecs", {"allowedInstanceTypes": allowed, **_IR}))
    assert d.effect == "allow", d.reason_codes


@pytest.mark.parametrize(
    "name",
    [
        "stream.graphics.g6e.xlarge",
        "stream.graphics.g4dn.xlarge",
        "stream.graphics-pro.4xlarge",
        "stream.graphics-design.large",
        "stream.graphics.zz9.xlarge",
        "stream.standard.small",
        "stream.memory.z1d.large",
        "stream.graphics",
        "stream.future.g9.xlarge",
    ],
)
def test_held_the_sweep_and_the_catalogue_agree(name: str, catalog: Any) -> None:
    """The sweep skips exactly what the catalogue classifies ``none`` for want of GPUs, and otherwise
    classifies the same type the catalogue does (one mapping, ``chips.appstream_type``)."""
    from enforcer.chips import appstream_type

    swept = appstream_type(name)
    direct = catalog.classify(name).chip_class
    if swept is None:
        assert direct == "none"
    else:
        assert catalog.classify(swept).chip_class == direct


# -- finding 9: SageMaker HyperPod nodes added by count ------------------------------------------------------------
def _add_nodes(**spec: Any) -> dict[str, Any]:
    params = {
        "ClusterName": "c",
        "NodesToAdd": [{"InstanceGroupName": "gpu", "IncrementTargetCountBy": 50, **spec}],
    }
    return _record("sagemaker.amazonaws.com", "BatchAddClusterNodes", params)


def test_nodes_added_to_a_named_type_count_the_increment() -> None:
    """Finding 9a (medium, fixed): ``BatchAddClusterNodes`` naming ``InstanceTypes`` was decided at 1 node:
    ``IncrementTargetCountBy`` (up to 50 a call) was no count member. It is one now (the only member of that
    name in the service models)."""
    got = normalise(_add_nodes(InstanceTypes=["ml.p5.48xlarge"]))
    assert isinstance(got, LaunchRequest), got
    assert [(i.instance_type, i.count) for i in got.items] == [("p5.48xlarge", 50)]


@pytest.mark.parametrize("which", ["BatchAddClusterNodes", "UpdateCluster"])
def test_hyperpod_groups_scaled_by_count_alone_are_decided(which: str) -> None:
    """Finding 9b (high, fixed): ``BatchAddClusterNodes`` (``IncrementTargetCountBy``) and ``UpdateCluster``
    (``InstanceCount``, no ``InstanceType``: optional in the model) scaled a HyperPod group by count alone
    and were Ignored; HyperPod nodes run in SageMaker's account (no EC2 state change reaches the guard).
    Each such group is now a ``sagemaker_cluster_group`` reference at the requested count (the increment
    for BatchAddClusterNodes), resolved by ``DescribeCluster`` (tests/test_hyperpod_scaling.py)."""
    if which == "BatchAddClusterNodes":
        rec = _add_nodes()
    else:
        group = {
            "InstanceGroupName": "gpu",
            "InstanceCount": 500,
            "ExecutionRole": f"arn:aws:iam::{CN}:role/x",
            "LifeCycleConfig": {"SourceS3Uri": "s3://b/p", "OnCreate": "x.sh"},
        }
        rec = _record(
            "sagemaker.amazonaws.com", "UpdateCluster", {"ClusterName": "c", "InstanceGroups": [group]}
        )
    got = normalise(rec)
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref, i.count) for i in got.items] == [
        (
            {"kind": "sagemaker_cluster_group", "cluster": "c", "group": "gpu"}
            | ({"added": True} if which == "BatchAddClusterNodes" else {}),
            50 if which == "BatchAddClusterNodes" else 500,
        )
    ]


# -- finding 10: a capacity reservation fleet resized by count -------------------------------------------------
def test_a_capacity_reservation_fleet_resize_is_decided() -> None:
    """Finding 10 (medium, fixed): ec2 ``ModifyCapacityReservationFleet`` (``TotalTargetCapacity``) was 'not
    a launch call' while ``ModifyCapacityReservation`` was decided by reference: it is now a
    ``capacity_reservation_fleet`` reference at the new target capacity, resolved by
    ``DescribeCapacityReservationFleets`` (tests/test_hyperpod_scaling.py)."""
    params = {
        "ModifyCapacityReservationFleetRequest": {
            "CapacityReservationFleetId": "crf-0123",
            "TotalTargetCapacity": 500,
        }
    }
    got = normalise(_record("ec2.amazonaws.com", "ModifyCapacityReservationFleet", params))
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref, i.count) for i in got.items] == [
        ({"kind": "capacity_reservation_fleet", "id": "crf-0123"}, 500)
    ]


@pytest.mark.parametrize("call", ["CreateAutoScalingGroup", "CreateFleet"])
def test_ec2_fleet_and_asg_patterns_are_not_malformed(call: str) -> None:
    """Finding 2 (fixed) also held for EC2 Fleet and Auto Scaling overrides: ``AllowedInstanceTypes: ["m5.*"]``
    in an override's requirements raised in the walk (malformed, denied) though the hand shape read it."""
    reqs = {"VCpuCount": {"Min": 2}, "MemoryMiB": {"Min": 4096}, "AllowedInstanceTypes": ["m5.*"]}
    spec = {"LaunchTemplateSpecification": {"LaunchTemplateName": "lt", "Version": "1"}}
    if call == "CreateAutoScalingGroup":
        source = "autoscaling.amazonaws.com"
        params: dict[str, Any] = {
            "AutoScalingGroupName": "a",
            "MinSize": 0,
            "MaxSize": 10,
            "MixedInstancesPolicy": {
                "LaunchTemplate": {**spec, "Overrides": [{"InstanceRequirements": reqs}]}
            },
        }
    else:
        source = "ec2.amazonaws.com"
        fleet = {
            "Type": "instant",
            "TargetCapacitySpecification": {
                "TotalTargetCapacity": 5,
                "DefaultTargetCapacityType": "on-demand",
            },
            "LaunchTemplateConfigs": [{**spec, "Overrides": [{"InstanceRequirements": reqs}]}],
        }
        params = {"CreateFleetRequest": fleet}
    got = normalise(_record(source, call, params))
    assert isinstance(got, LaunchRequest), got
    assert [(i.ref or {}).get("allowed_instance_types") for i in got.items] == [["m5.*"]]
