"""Auto Scaling, EKS, Batch and EMR request shapes (CloudTrail and CloudFormation spellings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.cloudtrail_ec2 import instance_id
from enforcer.intake.fields import (
    Parsed,
    alternatives,
    as_list,
    first,
    instance_type,
    largest,
    locate,
    objects,
    objp,
    opt_count,
    opt_text,
    ref_item,
    requirements_ref,
    template_ref,
    type_item,
)
from enforcer.intake.registry import shape
from enforcer.model import Ignored, InputError, LaunchItem

#: EKS's documented default node type when neither instanceTypes nor a template type is given.
EKS_DEFAULT_TYPE = "t3.medium"


def _mixed_instances(out: Parsed, mlt: Mapping[str, Any], mpath: str, n: int) -> None:
    spec, spath = objp(mlt, "launchTemplateSpecification", mpath)
    tref = template_ref(spec, spath) if spec is not None else None
    overrides = list(objects(*locate(mlt, "overrides", mpath)))
    needs_template = not overrides
    for opath, ov in overrides:
        t, tpath = locate(ov, "instanceType", opath)
        reqs, rpath = locate(ov, "instanceRequirements", opath)
        own, own_path = objp(ov, "launchTemplateSpecification", opath)
        if t is not None:
            out.items.append(type_item(t, tpath, n))
        elif reqs is not None:
            ref = requirements_ref(reqs, rpath)
            if tref is not None:
                ref["launch_template"] = tref
            out.items.append(ref_item(ref, rpath, n))
        elif own is not None:
            out.items.append(ref_item(template_ref(own, own_path), own_path, n))
        else:
            needs_template = True
    if needs_template:
        if tref is None:
            raise InputError(f"{mpath}: neither a launch template nor an instance type")
        out.items.append(ref_item(tref, spath, n))


@shape("autoscaling.amazonaws.com", "CreateAutoScalingGroup", "UpdateAutoScalingGroup")
def auto_scaling_group(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """ASG: template ref, launch configuration, mixed-instances overrides; count = max(desired, max size)."""
    out = Parsed()
    desired = opt_count(p, "desiredCapacity", at)
    max_size = opt_count(p, "maxSize", at)
    n = largest(desired, max_size)
    for k, v in (("desired_capacity", desired), ("max_size", max_size)):
        if v is not None:
            out.extra[k] = v
    name = opt_text(p, "autoScalingGroupName", at, 255)
    if name is not None:
        out.extra["auto_scaling_group_name"] = name
    lt, lpath = objp(p, "launchTemplate", at)
    if lt is not None:
        out.items.append(ref_item(template_ref(lt, lpath), lpath, n))
    lc = opt_text(p, "launchConfigurationName", at, 255)
    if lc is not None:
        lc_ref = {"kind": "launch_configuration", "name": lc}
        out.items.append(ref_item(lc_ref, locate(p, "launchConfigurationName", at)[1], n))
    mip, mip_path = objp(p, "mixedInstancesPolicy", at)
    mlt, mpath = objp(mip, "launchTemplate", mip_path) if mip is not None else (None, "")
    if mlt is not None:
        _mixed_instances(out, mlt, mpath, n)
    iid, ipath = locate(p, "instanceId", at)
    if not out.items and iid is not None:
        ref = {"kind": "instance_id", "id": instance_id(iid, ipath)}
        out.items.append(ref_item(ref, ipath, n))
    if not out.items and name is not None:
        ref = {"kind": "auto_scaling_group", "name": name}
        out.items.append(ref_item(ref, locate(p, "autoScalingGroupName", at)[1], n))
    return alternatives(out, out.items, "request")


@shape("autoscaling.amazonaws.com", "CreateLaunchConfiguration")
def launch_configuration(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """Legacy launch configuration: ``instanceType`` (or copied from ``instanceId``)."""
    t, tpath = locate(p, "instanceType", at)
    if t is not None:
        return Parsed([type_item(t, tpath, 1)])
    iid, ipath = locate(p, "instanceId", at)
    return Parsed([ref_item({"kind": "instance_id", "id": instance_id(iid, ipath)}, ipath)])


@shape("eks.amazonaws.com", "CreateNodegroup")
def eks_nodegroup(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """EKS managed node group: ``instanceTypes[]`` or ``launchTemplate``; count = max(desired, max size)."""
    out = Parsed()
    sc, spath = objp(p, "scalingConfig", at)
    desired = opt_count(sc, "desiredSize", spath) if sc is not None else None
    max_size = opt_count(sc, "maxSize", spath) if sc is not None else None
    n = largest(desired, max_size)
    for key, v in (
        ("desired_size", desired),
        ("max_size", max_size),
        ("nodegroup_name", opt_text(p, "nodegroupName", at, 255)),
        ("cluster_name", opt_text(p, "clusterName", at, 255)),
    ):
        if v is not None:
            out.extra[key] = v
    types, tpath = locate(p, "instanceTypes", at)
    for i, t in enumerate(as_list(types)):
        out.items.append(type_item(t, f"{tpath}[{i}]", n))
    lt, lpath = objp(p, "launchTemplate", at)
    if not out.items and lt is not None:
        out.items.append(ref_item(template_ref(lt, lpath), lpath, n))
    if not out.items:
        out.items.append(LaunchItem(instance_type=EKS_DEFAULT_TYPE, count=n, path="default(eks)"))
    return alternatives(out, out.items, "request")


def _batch(p: Mapping[str, Any], at: str, create: bool) -> Parsed | Ignored:
    out = Parsed()
    name = opt_text(p, "computeEnvironmentName", at, 255) or opt_text(p, "computeEnvironment", at, 512)
    if name is not None:
        out.extra["compute_environment"] = name
    cr, cpath = objp(p, "computeResources", at)
    if cr is None:
        return Ignored("no compute resources (unmanaged or state-only change)")
    ce_type = opt_text(cr, "type", cpath, 32)
    if ce_type is not None and ce_type.upper().startswith("FARGATE"):
        return Ignored("Fargate compute environment")
    for key in ("maxvCpus", "desiredvCpus", "minvCpus"):
        v = opt_count(cr, key, cpath)
        if v is not None:
            out.extra[key[:-5] + "_vcpus"] = v
    lt, lpath = objp(cr, "launchTemplate", cpath)
    if lt is not None:
        out.extra["launch_template"] = template_ref(lt, lpath)
    types, tpath = locate(cr, "instanceTypes", cpath)
    for i, raw in enumerate(as_list(types)):
        path = f"{tpath}[{i}]"
        t = instance_type(raw, path)
        if "." in t:
            out.items.append(type_item(t, path))
        else:  # a family ("p4d"), "optimal" or "default_x86_64": the service picks the size
            out.items.append(ref_item({"kind": "instance_family", "family": t}, path))
    if not out.items:
        if create:
            out.items.append(ref_item({"kind": "instance_family", "family": "optimal"}, tpath))
        elif name is not None:
            ref = {"kind": "compute_environment", "name": name}
            out.items.append(ref_item(ref, locate(p, "computeEnvironment", at)[1]))
    return alternatives(out, out.items, "request")


@shape("batch.amazonaws.com", "CreateComputeEnvironment")
def batch_create(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Batch compute environment: ``computeResources.instanceTypes[]`` (types or families)."""
    return _batch(p, at, create=True)


@shape("batch.amazonaws.com", "UpdateComputeEnvironment")
def batch_update(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Batch compute environment update (no types -> a ``compute_environment`` ref)."""
    return _batch(p, at, create=False)


def _emr_group(g: Mapping[str, Any], path: str) -> LaunchItem:
    return type_item(*locate(g, "instanceType", path), largest(opt_count(g, "instanceCount", path)))


def _emr_fleet(f: Mapping[str, Any], path: str) -> list[LaunchItem]:
    caps = (opt_count(f, k, path) for k in ("targetOnDemandCapacity", "targetSpotCapacity"))
    n = largest(sum(v for v in caps if v))
    return [
        type_item(*locate(c, "instanceType", cpath), n)
        for cpath, c in objects(*locate(f, "instanceTypeConfigs", path))
    ]


@shape("elasticmapreduce.amazonaws.com", "RunJobFlow", "AddInstanceGroups", "AddInstanceFleet")
def emr(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """EMR: instance groups, instance fleets (types are alternatives), master/slave instance types."""
    out = Parsed()
    inst, ipath = objp(p, "instances", at)
    root, rpath = (inst, ipath) if inst is not None else (p, at)
    for path, g in objects(*locate(root, "instanceGroups", rpath)):
        out.items.append(_emr_group(g, path))
    key, fleets = first(root, "instanceFleets", "instanceFleet")
    for path, f in objects(fleets, f"{rpath}.{key}"):
        fleet = _emr_fleet(f, path)
        out.items += fleet
        alternatives(out, fleet, path)  # a fleet's type configs are alternatives; fleets add up
        out.extra["instance_fleets"] = True
    master, mpath = locate(root, "masterInstanceType", rpath)
    if master is not None:
        out.items.append(type_item(master, mpath, 1))
    slave, spath = locate(root, "slaveInstanceType", rpath)
    if slave is not None:
        total = largest(opt_count(root, "instanceCount", rpath))
        out.items.append(type_item(slave, spath, max(total - 1, 0)))
    if not out.items:
        return Ignored("no instance type in request")
    return out


def emr_cfn_cluster(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``AWS::EMR::Cluster``: ``Instances.{Master,Core}Instance{Group,Fleet}``, ``TaskInstance*``."""
    inst, ipath = objp(p, "Instances", at)
    if inst is None:
        raise InputError(f"{ipath}: missing")
    out = Parsed()
    for role in ("Master", "Core"):
        g, gpath = objp(inst, f"{role}InstanceGroup", ipath)
        if g is not None:
            out.items.append(_emr_group(g, gpath))
        f, fpath = objp(inst, f"{role}InstanceFleet", ipath)
        if f is not None:
            out.items += _emr_fleet(f, fpath)
    for path, g in objects(*locate(inst, "TaskInstanceGroups", ipath)):
        out.items.append(_emr_group(g, path))
    for path, f in objects(*locate(inst, "TaskInstanceFleets", ipath)):
        out.items += _emr_fleet(f, path)
    if not out.items:
        return Ignored("no instance type in request")
    return out
