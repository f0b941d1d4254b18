"""Auto Scaling, EKS, Batch and EMR request shapes (CloudTrail and CloudFormation spellings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake._registry import shape
from enforcer.intake._util import (
    Parsed,
    as_list,
    first,
    get,
    instance_type,
    largest,
    obj,
    objects,
    opt_count,
    opt_text,
    ref_item,
    requirements_ref,
    template_ref,
    type_item,
)
from enforcer.intake.cloudtrail_ec2 import instance_id
from enforcer.model import Ignored, InputError, LaunchItem

#: EKS's documented default node type when neither instanceTypes nor a template type is given.
EKS_DEFAULT_TYPE = "t3.medium"


def _alternatives(out: Parsed) -> Parsed:
    if len(out.items) > 1:
        out.extra["alternatives"] = True
    return out


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
    lt = obj(p, "launchTemplate", at)
    if lt is not None:
        out.items.append(ref_item(template_ref(lt, f"{at}.launchTemplate"), f"{at}.launchTemplate", n))
    lc = opt_text(p, "launchConfigurationName", at, 255)
    if lc is not None:
        lc_ref = {"kind": "launch_configuration", "name": lc}
        out.items.append(ref_item(lc_ref, f"{at}.launchConfigurationName", n))
    mip = obj(p, "mixedInstancesPolicy", at)
    mlt = obj(mip, "launchTemplate", f"{at}.mixedInstancesPolicy") if mip is not None else None
    if mlt is not None:
        mpath = f"{at}.mixedInstancesPolicy.launchTemplate"
        spec = obj(mlt, "launchTemplateSpecification", mpath)
        tref = template_ref(spec, f"{mpath}.launchTemplateSpecification") if spec is not None else None
        overrides = list(objects(get(mlt, "overrides"), f"{mpath}.overrides"))
        needs_template = not overrides
        for opath, ov in overrides:
            own = obj(ov, "launchTemplateSpecification", opath)
            if (t := get(ov, "instanceType")) is not None:
                out.items.append(type_item(t, f"{opath}.instanceType", n))
            elif (reqs := get(ov, "instanceRequirements")) is not None:
                ref = requirements_ref(reqs, f"{opath}.instanceRequirements")
                if tref is not None:
                    ref["launch_template"] = tref
                out.items.append(ref_item(ref, f"{opath}.instanceRequirements", n))
            elif own is not None:
                spath = f"{opath}.launchTemplateSpecification"
                out.items.append(ref_item(template_ref(own, spath), spath, n))
            else:
                needs_template = True
        if needs_template:
            if tref is None:
                raise InputError(f"{mpath}: neither a launch template nor an instance type")
            out.items.append(ref_item(tref, f"{mpath}.launchTemplateSpecification", n))
    iid = get(p, "instanceId")
    if not out.items and iid is not None:
        iid = instance_id(iid, f"{at}.instanceId")
        out.items.append(ref_item({"kind": "instance_id", "id": iid}, f"{at}.instanceId", n))
    if not out.items and name is not None:
        ref = {"kind": "auto_scaling_group", "name": name}
        out.items.append(ref_item(ref, f"{at}.autoScalingGroupName", n))
    return _alternatives(out)


@shape("autoscaling.amazonaws.com", "CreateLaunchConfiguration")
def launch_configuration(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """Legacy launch configuration: ``instanceType`` (or copied from ``instanceId``)."""
    t = get(p, "instanceType")
    if t is not None:
        return Parsed([type_item(t, f"{at}.instanceType", 1)])
    iid = instance_id(get(p, "instanceId"), f"{at}.instanceId")
    return Parsed([ref_item({"kind": "instance_id", "id": iid}, f"{at}.instanceId")])


@shape("eks.amazonaws.com", "CreateNodegroup")
def eks_nodegroup(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """EKS managed node group: ``instanceTypes[]`` or ``launchTemplate``; count from ``scalingConfig``."""
    out = Parsed()
    sc = obj(p, "scalingConfig", at)
    spath = f"{at}.scalingConfig"
    n = largest(opt_count(sc, "desiredSize", spath), opt_count(sc, "maxSize", spath)) if sc else 1
    for name in ("nodegroupName", "clusterName"):
        v = opt_text(p, name, at, 255)
        if v is not None:
            out.extra[name] = v
    for i, t in enumerate(as_list(get(p, "instanceTypes"))):
        out.items.append(type_item(t, f"{at}.instanceTypes[{i}]", n))
    lt = obj(p, "launchTemplate", at)
    if not out.items and lt is not None:
        out.items.append(ref_item(template_ref(lt, f"{at}.launchTemplate"), f"{at}.launchTemplate", n))
    if not out.items:
        out.items.append(LaunchItem(instance_type=EKS_DEFAULT_TYPE, count=n, path="default(eks)"))
    return _alternatives(out)


def _batch(p: Mapping[str, Any], at: str, create: bool) -> Parsed | Ignored:
    out = Parsed()
    name = opt_text(p, "computeEnvironmentName", at, 255) or opt_text(p, "computeEnvironment", at, 512)
    if name is not None:
        out.extra["compute_environment"] = name
    cr = obj(p, "computeResources", at)
    if cr is None:
        return Ignored("no compute resources (unmanaged or state-only change)")
    cpath = f"{at}.computeResources"
    ce_type = opt_text(cr, "type", cpath, 32)
    if ce_type is not None and ce_type.upper().startswith("FARGATE"):
        return Ignored("Fargate compute environment")
    for key in ("maxvCpus", "desiredvCpus", "minvCpus"):
        v = opt_count(cr, key, cpath)
        if v is not None:
            out.extra[key] = v
    lt = obj(cr, "launchTemplate", cpath)
    if lt is not None:
        out.extra["launch_template"] = template_ref(lt, f"{cpath}.launchTemplate")
    for i, raw in enumerate(as_list(get(cr, "instanceTypes"))):
        path = f"{cpath}.instanceTypes[{i}]"
        t = instance_type(raw, path)
        if "." in t:
            out.items.append(type_item(t, path))
        else:  # a family ("p4d"), "optimal" or "default_x86_64": the service picks the size
            out.items.append(ref_item({"kind": "instance_family", "family": t}, path))
    if not out.items:
        if create:
            ref = {"kind": "instance_family", "family": "optimal"}
            out.items.append(ref_item(ref, f"{cpath}.instanceTypes"))
        elif name is not None:
            out.items.append(
                ref_item({"kind": "compute_environment", "name": name}, f"{at}.computeEnvironment")
            )
    return _alternatives(out)


@shape("batch.amazonaws.com", "CreateComputeEnvironment")
def batch_create(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Batch compute environment: ``computeResources.instanceTypes[]`` (types or families)."""
    return _batch(p, at, create=True)


@shape("batch.amazonaws.com", "UpdateComputeEnvironment")
def batch_update(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Batch compute environment update (no types -> a ``compute_environment`` ref)."""
    return _batch(p, at, create=False)


def _emr_group(g: Mapping[str, Any], path: str, default_count: int = 1) -> LaunchItem:
    n = largest(opt_count(g, "instanceCount", path), default=default_count)
    return type_item(get(g, "instanceType"), f"{path}.instanceType", n)


def _emr_fleet(f: Mapping[str, Any], path: str) -> list[LaunchItem]:
    n = largest(
        sum(
            v for v in (opt_count(f, k, path) for k in ("targetOnDemandCapacity", "targetSpotCapacity")) if v
        ),
    )
    return [
        type_item(get(c, "instanceType"), f"{cpath}.instanceType", n)
        for cpath, c in objects(get(f, "instanceTypeConfigs"), f"{path}.instanceTypeConfigs")
    ]


@shape("elasticmapreduce.amazonaws.com", "RunJobFlow", "AddInstanceGroups", "AddInstanceFleet")
def emr(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """EMR: instance groups, instance fleets (types are alternatives), master/slave instance types."""
    out = Parsed()
    inst = obj(p, "instances", at)
    root, rpath = (inst, f"{at}.instances") if inst is not None else (p, at)
    for path, g in objects(get(root, "instanceGroups"), f"{rpath}.instanceGroups"):
        out.items.append(_emr_group(g, path))
    key, fleets = first(root, "instanceFleets", "instanceFleet")
    for path, f in objects(fleets, f"{rpath}.{key}"):
        out.items += _emr_fleet(f, path)
        out.extra["instance_fleets"] = True
    master = get(root, "masterInstanceType")
    if master is not None:
        out.items.append(type_item(master, f"{rpath}.masterInstanceType", 1))
    slave = get(root, "slaveInstanceType")
    if slave is not None:
        total = largest(opt_count(root, "instanceCount", rpath))
        out.items.append(type_item(slave, f"{rpath}.slaveInstanceType", max(total - 1, 0)))
    if not out.items:
        return Ignored("no instance type in request")
    return out


def emr_cfn_cluster(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``AWS::EMR::Cluster``: ``Instances.{Master,Core}Instance{Group,Fleet}``, ``TaskInstance*``."""
    inst = obj(p, "Instances", at)
    if inst is None:
        raise InputError(f"{at}.Instances: missing")
    ipath = f"{at}.Instances"
    out = Parsed()
    for role in ("Master", "Core"):
        g = obj(inst, f"{role}InstanceGroup", ipath)
        if g is not None:
            out.items.append(_emr_group(g, f"{ipath}.{role}InstanceGroup"))
        f = obj(inst, f"{role}InstanceFleet", ipath)
        if f is not None:
            out.items += _emr_fleet(f, f"{ipath}.{role}InstanceFleet")
    for path, g in objects(get(inst, "TaskInstanceGroups"), f"{ipath}.TaskInstanceGroups"):
        out.items.append(_emr_group(g, path))
    for path, f in objects(get(inst, "TaskInstanceFleets"), f"{ipath}.TaskInstanceFleets"):
        out.items += _emr_fleet(f, path)
    if not out.items:
        return Ignored("no instance type in request")
    return out
