"""EC2 request shapes (CloudTrail ``requestParameters``; the same code reads CloudFormation properties).

Every extractor takes the (unwrapped) request mapping, the path it sits at and the response
mapping (None for CloudFormation), and returns the items it found with their source paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.fields import (
    Parsed,
    alternatives,
    as_list,
    count,
    first,
    get,
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
    text,
    type_item,
)
from enforcer.intake.registry import shape
from enforcer.model import Ignored, InputError, LaunchItem

EC2 = "ec2.amazonaws.com"
#: EC2's documented default when a launch names no type and no template.
EC2_DEFAULT_TYPE = "m1.small"
_INSTANCE_ID_MAX = 32


def instance_id(value: Any, at: str) -> str:
    """Validate an EC2 instance id (``i-`` followed by hex)."""
    iid = text(value, at, _INSTANCE_ID_MAX)
    if not iid.startswith("i-") or not iid[2:].isalnum() or not iid.isascii():
        raise InputError(f"{at}: not an EC2 instance id")
    return iid


def fleet_configs(configs: Any, at: str, n: int) -> list[LaunchItem]:
    """Items of EC2 Fleet / Spot Fleet ``LaunchTemplateConfigs`` (each override is an alternative)."""
    items: list[LaunchItem] = []
    for cpath, cfg in objects(configs, at):
        spec, spath = objp(cfg, "LaunchTemplateSpecification", cpath)
        tref = template_ref(spec, spath) if spec is not None else None
        overrides = list(objects(*locate(cfg, "Overrides", cpath)))
        needs_template = not overrides
        for opath, ov in overrides:
            t, tpath = locate(ov, "InstanceType", opath)
            if t is not None:
                items.append(type_item(t, tpath, n))
                continue
            reqs, rpath = locate(ov, "InstanceRequirements", opath)
            if reqs is not None:
                ref = requirements_ref(reqs, rpath)
                if tref is not None:
                    ref["launch_template"] = tref
                items.append(ref_item(ref, rpath, n))
                continue
            needs_template = True  # an override without a type inherits the template's type
        if needs_template:
            if tref is None:
                raise InputError(f"{cpath}: neither a launch template nor an instance type")
            items.append(ref_item(tref, spath, n))
    return items


@shape(EC2, "RunInstances")
def run_instances(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """``RunInstances`` (and ``AWS::EC2::Instance``): type, template ref, count, launched instance ids."""
    out = Parsed()
    requested = None
    for path, spec in objects(*locate(p, "instancesSet", at)):
        n = largest(opt_count(spec, "maxCount", path), opt_count(spec, "minCount", path))
        requested = n + (requested or 0)
    if requested is None:
        requested = largest(opt_count(p, "maxCount", at), opt_count(p, "minCount", at))
    launched: dict[str, int] = {}
    if resp is not None:
        for path, inst in objects(*locate(resp, "instancesSet", "responseElements")):
            iid, ipath = locate(inst, "instanceId", path)
            if iid is not None:
                out.instance_ids.append(instance_id(iid, ipath))
            t, tpath = locate(inst, "instanceType", path)
            if t is not None:
                t = instance_type(t, tpath)
                launched[t] = launched.get(t, 0) + 1
    tmpl, lpath = objp(p, "launchTemplate", at)
    tref = template_ref(tmpl, lpath) if tmpl is not None else None
    market, mpath = objp(p, "instanceMarketOptions", at)
    if market is not None:
        mt = opt_text(market, "marketType", mpath, 64)
        if mt is not None:
            out.extra["market_type"] = mt
    n = len(out.instance_ids) or requested
    if launched:
        rpath = "responseElements.instancesSet.items[].instanceType"
        out.items = [LaunchItem(instance_type=t, count=c, path=rpath) for t, c in launched.items()]
        if tref is not None:
            out.extra["launch_template"] = tref
    elif (tf := locate(p, "instanceType", at))[0] is not None:
        out.items = [type_item(*tf, n)]
        if tref is not None:
            out.extra["launch_template"] = tref
    elif tref is not None:
        out.items = [ref_item(tref, lpath, n)]
    else:
        out.items = [LaunchItem(instance_type=EC2_DEFAULT_TYPE, count=n, path="default(ec2)")]
    return out


@shape(EC2, "CreateFleet", "ModifyFleet")
def create_fleet(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """EC2 Fleet (``CreateFleet``, ``ModifyFleet``, ``AWS::EC2::EC2Fleet``)."""
    out = Parsed()
    cap, cpath = objp(p, "TargetCapacitySpecification", at)
    n = largest(opt_count(cap, "TotalTargetCapacity", cpath) if cap else None)
    out.items = fleet_configs(*locate(p, "LaunchTemplateConfigs", at), n)
    fleet_type = opt_text(p, "Type", at, 32)
    if fleet_type is not None:
        out.extra["fleet_type"] = fleet_type
    fleet_id = opt_text(p, "FleetId", at, 64)
    if fleet_id is not None:
        out.extra["fleet_id"] = fleet_id
    if resp is not None:
        for path, fi in objects(*locate(resp, "fleetInstanceSet", "responseElements")):
            ids, ipath = locate(fi, "instanceIds", path)
            for i, iid in enumerate(as_list(ids)):
                out.instance_ids.append(instance_id(iid, f"{ipath}[{i}]"))
    if not out.items and fleet_id is not None:
        out.items = [ref_item({"kind": "fleet", "id": fleet_id}, locate(p, "FleetId", at)[1], n)]
    return alternatives(out, out.items, "request")


@shape(EC2, "RequestSpotFleet")
def request_spot_fleet(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """Spot Fleet (``RequestSpotFleet``, ``AWS::EC2::SpotFleet``)."""
    key, cfg = first(p, "spotFleetRequestConfig", "SpotFleetRequestConfigData")
    at = f"{at}.{key}"
    if not isinstance(cfg, dict):
        raise InputError(f"{at}: expected an object")
    out = Parsed()
    n = largest(opt_count(cfg, "targetCapacity", at))
    lkey, specs = first(cfg, "launchSpecifications", "launchSpecification")
    for path, spec in objects(specs, f"{at}.{lkey}"):
        t, tpath = locate(spec, "instanceType", path)
        reqs, rpath = locate(spec, "instanceRequirements", path)
        if t is not None:
            out.items.append(type_item(t, tpath, n))
        elif reqs is not None:
            out.items.append(ref_item(requirements_ref(reqs, rpath), rpath, n))
        else:
            raise InputError(f"{path}: launch specification without an instance type")
    out.items += fleet_configs(*locate(cfg, "launchTemplateConfigs", at), n)
    return alternatives(out, out.items, "request")


@shape(EC2, "RequestSpotInstances")
def request_spot_instances(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """``RequestSpotInstances``: ``launchSpecification.instanceType`` x ``instanceCount``."""
    n = largest(opt_count(p, "instanceCount", at))
    spec, spath = objp(p, "launchSpecification", at)
    t, tpath = locate(spec, "instanceType", spath) if spec is not None else (None, "")
    if t is None:
        return Parsed([LaunchItem(instance_type=EC2_DEFAULT_TYPE, count=n, path="default(ec2)")])
    return Parsed([type_item(t, tpath, n)])


@shape(EC2, "ModifyInstanceAttribute")
def modify_instance_attribute(
    p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None
) -> Parsed | Ignored:
    """Resize of a stopped instance: ``instanceType.value`` (or ``attribute=instanceType, value``)."""
    t, path = locate(p, "instanceType", at)
    if isinstance(t, dict):
        t, path = locate(t, "value", path)
    attr = get(p, "attribute")
    if t is None and isinstance(attr, str) and attr.lower() == "instancetype":
        t, path = locate(p, "value", at)
    if t is None:
        return Ignored("not an instance type change")
    iid = instance_id(*locate(p, "instanceId", at))
    return Parsed([type_item(t, path, 1)], instance_ids=[iid])


@shape(EC2, "CreateCapacityReservation")
def create_capacity_reservation(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """``CreateCapacityReservation`` (and ``AWS::EC2::CapacityReservation``)."""
    n = largest(opt_count(p, "InstanceCount", at))
    return Parsed([type_item(*locate(p, "InstanceType", at), n)])


@shape(EC2, "CreateCapacityReservationFleet")
def create_capacity_reservation_fleet(
    p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None
) -> Parsed:
    """``CreateCapacityReservationFleet``: ``InstanceTypeSpecifications[].InstanceType``."""
    n = largest(opt_count(p, "TotalTargetCapacity", at))
    key, specs = first(p, "InstanceTypeSpecifications", "InstanceTypeSpecification")
    items = [type_item(*locate(s, "InstanceType", path), n) for path, s in objects(specs, f"{at}.{key}")]
    out = Parsed(items)
    return alternatives(out, out.items, "request")


@shape(EC2, "PurchaseCapacityBlock")
def purchase_capacity_block(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """``PurchaseCapacityBlock``: only an offering id; the resolver looks the type up."""
    oid, opath = locate(p, "CapacityBlockOfferingId", at)
    oid = text(oid, opath, 128)
    out = Parsed([ref_item({"kind": "capacity_block_offering", "id": oid}, opath)])
    platform = opt_text(p, "InstancePlatform", at, 64)
    if platform is not None:
        out.extra["instance_platform"] = platform
    return out


@shape(EC2, "PurchaseCapacityBlockExtension")
def purchase_capacity_block_extension(
    p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None
) -> Parsed:
    """``PurchaseCapacityBlockExtension``: more hours on a Capacity Block; its reservation names the type."""
    rid, rpath = locate(p, "CapacityReservationId", at)
    rid = text(rid, rpath, 128)
    return Parsed([ref_item({"kind": "capacity_reservation", "id": rid}, rpath)])


@shape(EC2, "AllocateHosts")
def allocate_hosts(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """Dedicated hosts: ``instanceType`` or ``instanceFamily`` x ``quantity``."""
    n = largest(opt_count(p, "quantity", at))
    t, tpath = locate(p, "instanceType", at)
    if t is not None:
        return Parsed([type_item(t, tpath, n)])
    fam, fpath = locate(p, "instanceFamily", at)
    fam = instance_type(fam, fpath)
    return Parsed([ref_item({"kind": "instance_family", "family": fam}, fpath, n)])


@shape(EC2, "CreateLaunchTemplate", "CreateLaunchTemplateVersion")
def create_launch_template(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Launch templates arm later launches: ``LaunchTemplateData.InstanceType|InstanceRequirements``."""
    data, dpath = objp(p, "LaunchTemplateData", at)
    out = Parsed()
    for key in ("LaunchTemplateName", "LaunchTemplateId"):
        v = opt_text(p, key, at, 128)
        if v is not None:
            out.extra["launch_template_" + key[14:].lower()] = v
    t, tpath = locate(data, "InstanceType", dpath) if data is not None else (None, "")
    reqs, rpath = locate(data, "InstanceRequirements", dpath) if data is not None else (None, "")
    if t is not None:
        out.items = [type_item(t, tpath, 1)]
    elif reqs is not None:
        out.items = [ref_item(requirements_ref(reqs, rpath), rpath)]
    elif (src := get(p, "SourceVersion")) is not None:
        spec = {
            "LaunchTemplateId": get(p, "LaunchTemplateId"),
            "LaunchTemplateName": get(p, "LaunchTemplateName"),
        }
        spec["Version"] = src if isinstance(src, str) else str(count(src, f"{at}.SourceVersion"))
        out.items = [ref_item(template_ref(spec, at), f"{at}.SourceVersion")]
    else:
        return Ignored("launch template carries no instance type")
    return out
