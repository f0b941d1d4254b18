"""Updates and restarts that launch without naming a type: instance restarts, template swaps,
instance refreshes, endpoint redeployments and fleets (reservations) scaled by count alone. Each
becomes a reference the resolver turns into instance types (unresolved references classify as
``unknown`` and fail closed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.cloudtrail_ec2 import EC2, instance_id
from enforcer.intake.cloudtrail_sagemaker import SAGEMAKER
from enforcer.intake.cloudtrail_services import _mixed_instances
from enforcer.intake.fields import (
    Parsed,
    alternatives,
    largest,
    locate,
    objects,
    objp,
    opt_count,
    opt_text,
    ref_item,
    template_ref,
)
from enforcer.intake.registry import shape
from enforcer.model import Ignored


@shape(EC2, "StartInstances")
def start_instances(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Restart of stopped instances: one ``instance_id`` reference per instance (resolved to its type)."""
    out = Parsed()
    key = "instancesSet" if locate(p, "instancesSet", at)[0] is not None else "instanceIds"
    for path, inst in objects(*locate(p, key, at)) if key == "instancesSet" else ():
        iid, ipath = locate(inst, "instanceId", path)
        out.instance_ids.append(instance_id(iid, ipath))
        out.items.append(ref_item({"kind": "instance_id", "id": out.instance_ids[-1]}, ipath))
    if key == "instanceIds":
        ids, ipath = locate(p, "instanceIds", at)
        for i, iid in enumerate(ids if isinstance(ids, list) else [ids] if ids is not None else []):
            out.instance_ids.append(instance_id(iid, f"{ipath}[{i}]"))
            out.items.append(ref_item({"kind": "instance_id", "id": out.instance_ids[-1]}, f"{ipath}[{i}]"))
    return out if out.items else Ignored("no instance id in request")


@shape("eks.amazonaws.com", "UpdateNodegroupVersion")
def eks_nodegroup_version(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Node-group version update: a ``launchTemplate`` swaps in new nodes (resolved to its type)."""
    lt, lpath = objp(p, "launchTemplate", at)
    if lt is None:
        return Ignored("version update without a launch template keeps the node group's types")
    out = Parsed([ref_item(template_ref(lt, lpath), lpath)])
    for key in ("clusterName", "nodegroupName"):
        v = opt_text(p, key, at, 255)
        if v is not None:
            out.extra[key.replace("Name", "_name").lower()] = v
    return out


@shape(SAGEMAKER, "CreateEndpoint", "UpdateEndpoint")
def endpoint_deploy(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Endpoint (re)deployment: the endpoint configuration is resolved to its variants' types."""
    path = locate(p, "endpointConfigName", at)[1]
    cfg = opt_text(p, "endpointConfigName", at, 63)
    if cfg is None:
        return Ignored("no endpoint configuration in request")
    out = Parsed([ref_item({"kind": "sagemaker_endpoint_config", "name": cfg}, path)])
    endpoint = opt_text(p, "endpointName", at, 63)
    if endpoint is not None:
        out.extra["endpoint_name"] = endpoint
    return out


@shape("autoscaling.amazonaws.com", "StartInstanceRefresh")
def instance_refresh(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Instance refresh: ``desiredConfiguration`` (template, mixed-instances policy) or the group's own."""
    out = Parsed()
    name = opt_text(p, "autoScalingGroupName", at, 255)
    if name is not None:
        out.extra["auto_scaling_group_name"] = name
    desired, dpath = objp(p, "desiredConfiguration", at)
    lt, lpath = objp(desired, "launchTemplate", dpath) if desired is not None else (None, "")
    if lt is not None:
        out.items.append(ref_item(template_ref(lt, lpath), lpath))
    mip, mpath = objp(desired, "mixedInstancesPolicy", dpath) if desired is not None else (None, "")
    mlt, mltpath = objp(mip, "launchTemplate", mpath) if mip is not None else (None, "")
    if mlt is not None:
        _mixed_instances(out, mlt, mltpath, 1)
    if not out.items and name is not None:  # a refresh relaunches the group's current configuration
        ref = {"kind": "auto_scaling_group", "name": name}
        out.items.append(ref_item(ref, locate(p, "autoScalingGroupName", at)[1]))
    if not out.items:
        return Ignored("no auto scaling group in request")
    return alternatives(out, out.items, "request")


@shape(SAGEMAKER, "StartNotebookInstance")
def notebook_start(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Restart of a stopped notebook instance (SageMaker compute has no EC2 state change to catch it)."""
    name = opt_text(p, "notebookInstanceName", at, 63)
    if name is None:
        return Ignored("no notebook instance in request")
    path = locate(p, "notebookInstanceName", at)[1]
    return Parsed(
        [ref_item({"kind": "sagemaker_notebook", "name": name}, path)], extra={"notebook_instance_name": name}
    )


@shape(SAGEMAKER, "UpdateEndpointWeightsAndCapacities")
def endpoint_capacity(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Scaling a running endpoint: its variants at the desired instance counts."""
    name = opt_text(p, "endpointName", at, 63)
    if name is None:
        return Ignored("no endpoint in request")
    counts: dict[str, int] = {}
    for path, w in objects(*locate(p, "desiredWeightsAndCapacities", at)):
        variant = opt_text(w, "variantName", path, 63)
        n = opt_count(w, "desiredInstanceCount", path)
        if variant is not None and n is not None:
            counts[variant] = n
    if not counts:
        return Ignored("weights only: no instance count changes")
    ref = {"kind": "sagemaker_endpoint", "name": name, "counts": counts}
    return Parsed([ref_item(ref, locate(p, "endpointName", at)[1], max(counts.values()))])


# -- scaling a service-managed fleet by count alone ---------------------------------------------------------
# Deadline, AppStream and CodeBuild fleets run in the service's account: no EC2 state-change event reaches
# the guard. A call that names a type (or a configuration) is read by the coverage table's walk
# (cloudtrail_generic.complete runs after these shapes); one that only changes a count becomes a reference
# to the fleet, resolved to its configuration at the new count (enforcer.resolve.fleets).


def _positive(*counts: int | None) -> int | None:
    """The largest count present when it is above zero (a scale to zero launches nothing), else None."""
    return largest(*counts, default=0) or None


def _names_configuration(cfg: Mapping[str, Any] | None) -> bool:
    """Whether a Deadline fleet configuration is one the table's walk decides: customer-managed (the
    account's own instances), or service-managed with its ``instanceCapabilities``. An empty or unknown
    one (``{}``, ``{"serviceManagedEc2": {}}``) reads as no type: the scale-up is decided by reference."""
    if cfg is None:
        return False
    members = {k.lower(): v for k, v in cfg.items() if isinstance(k, str) and isinstance(v, dict) and v}
    managed = members.get("servicemanagedec2")
    if managed is not None:
        return any(
            isinstance(k, str) and k.lower() == "instancecapabilities" and v for k, v in managed.items()
        )
    return "customermanaged" in members


@shape("deadline.amazonaws.com", "UpdateFleet")
def deadline_fleet_scale(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Deadline fleet update: ``maxWorkerCount`` or ``minWorkerCount`` (a floor Deadline starts workers
    for) without a ``configuration`` the walk reads grows the fleet it names."""
    if _names_configuration(objp(p, "configuration", at)[0]):
        return Ignored("no instance type in request")  # the configuration's types: the table's walk
    n = _positive(opt_count(p, "maxWorkerCount", at), opt_count(p, "minWorkerCount", at))
    farm, fleet = opt_text(p, "farmId", at, 64), opt_text(p, "fleetId", at, 64)
    if n is None or farm is None or fleet is None:
        return Ignored("no worker count increase on a named fleet")
    ref = {"kind": "deadline_fleet", "farm_id": farm, "id": fleet}
    return Parsed([ref_item(ref, locate(p, "fleetId", at)[1], n)], extra={"farm_id": farm, "fleet_id": fleet})


@shape("appstream.amazonaws.com", "UpdateFleet")
def appstream_fleet_scale(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """AppStream fleet update: ``ComputeCapacity`` without ``InstanceType`` scales the fleet it names
    (desired sessions count as instances: at most one instance per session)."""
    if opt_text(p, "instanceType", at) is not None:
        return Ignored("no instance type in request")  # the named type: the table's walk
    cap, cpath = objp(p, "computeCapacity", at)
    n = None
    if cap is not None:
        n = _positive(opt_count(cap, "desiredInstances", cpath), opt_count(cap, "desiredSessions", cpath))
    name = opt_text(p, "name", at, 256)
    if n is None or name is None:
        return Ignored("no capacity increase on a named fleet")
    ref = {"kind": "appstream_fleet", "name": name}
    return Parsed([ref_item(ref, locate(p, "name", at)[1], n)], extra={"fleet_name": name})


@shape("codebuild.amazonaws.com", "UpdateFleet")
def codebuild_fleet_scale(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """CodeBuild fleet update: ``baseCapacity`` (or ``scalingConfiguration.maxCapacity``) without
    ``computeConfiguration.instanceType`` scales the fleet it names."""
    cfg, cfgpath = objp(p, "computeConfiguration", at)
    if cfg is not None and opt_text(cfg, "instanceType", cfgpath) is not None:
        return Ignored("no instance type in request")  # the named type: the table's walk
    scaling, spath = objp(p, "scalingConfiguration", at)
    top = opt_count(scaling, "maxCapacity", spath) if scaling is not None else None
    n = _positive(opt_count(p, "baseCapacity", at), top)
    arn = opt_text(p, "arn", at, 2048)
    if n is None or arn is None:
        return Ignored("no capacity increase on a named fleet")
    ref = {"kind": "codebuild_fleet", "arn": arn}
    return Parsed([ref_item(ref, locate(p, "arn", at)[1], n)], extra={"fleet_arn": arn})


def _resize(
    p: Mapping[str, Any], at: str, id_key: str, count_key: str, kind: str, unchanged: str
) -> Parsed | Ignored:
    """A reservation resized by count alone: one ``kind`` reference to ``id_key`` at ``count_key``."""
    n = _positive(opt_count(p, count_key, at))
    rid = opt_text(p, id_key, at, 128)
    if n is None or rid is None:
        return Ignored(unchanged)
    return Parsed([ref_item({"kind": kind, "id": rid}, locate(p, id_key, at)[1], n)])


@shape(EC2, "ModifyCapacityReservation")
def capacity_reservation_scale(
    p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None
) -> Parsed | Ignored:
    """Capacity reservation resize: ``InstanceCount`` of the reservation's type (resolved)."""
    return _resize(
        p, at, "CapacityReservationId", "InstanceCount", "capacity_reservation", "no instance count change"
    )


@shape(EC2, "ModifyCapacityReservationFleet")
def capacity_reservation_fleet_scale(
    p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None
) -> Parsed | Ignored:
    """Capacity reservation fleet resize: ``TotalTargetCapacity`` (capacity units) of the fleet's instance
    type specifications (resolved with their weights, as ``CreateCapacityReservationFleet`` is decided)."""
    return _resize(
        p,
        at,
        "CapacityReservationFleetId",
        "TotalTargetCapacity",
        "capacity_reservation_fleet",
        "no target capacity change",
    )
