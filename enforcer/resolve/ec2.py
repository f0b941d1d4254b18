"""EC2 look-ups: launch templates, attribute-based selection, instances, fleets, Capacity Blocks."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from typing import Any

from enforcer.aws_errors import error_code
from enforcer.intake.cloudtrail_ec2 import fleet_configs
from enforcer.intake.fields import MAX_COUNT, requirements_ref
from enforcer.intake.tags import find_attestation_ref
from enforcer.model import LaunchItem, LaunchRequest
from enforcer.resolve.common import Lookups, ResolutionError, described_count, resolved

#: Durations probed when looking a Capacity Block offering up (the API has no offering-id filter).
CAPACITY_BLOCK_HOURS = (24, 48, 72, 96, 120, 144, 168, 336)
_MAX_PAGES = 5
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


class Ec2Lookups(Lookups):
    """What EC2 says a reference launches."""

    def template_data(self, ref: Mapping[str, Any]) -> dict[str, Any]:
        """``LaunchTemplateData`` of the referenced version (numbered versions are cached)."""
        version = str(ref.get("version") or "$Default")
        kwargs: dict[str, Any] = {"Versions": [version]}
        if ref.get("id"):
            kwargs["LaunchTemplateId"] = str(ref["id"])
        elif ref.get("name"):
            kwargs["LaunchTemplateName"] = str(ref["name"])
        else:
            raise ResolutionError("launch template reference without id or name")
        key = (str(ref.get("id") or "name:" + str(ref.get("name"))), version)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        versions = self.ec2.describe_launch_template_versions(**kwargs).get("LaunchTemplateVersions") or []
        if not versions:
            raise ResolutionError(f"launch template version {version} not found")
        data: dict[str, Any] = versions[0].get("LaunchTemplateData") or {}
        if version.isdigit():  # numbered versions are immutable
            self._versions[key] = data
        return data

    def _template(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        data = self.template_data(ref)
        itype = data.get("InstanceType")
        if isinstance(itype, str) and itype:
            return [resolved(item, itype)]
        reqs = data.get("InstanceRequirements")
        if isinstance(reqs, Mapping):
            rref = requirements_ref(reqs, f"{item.path}(launch template)")
            rref["launch_template"] = dict(ref)
            return [LaunchItem(instance_type=None, count=item.count, ref=rref, path=item.path)]
        raise ResolutionError("launch template names no instance type")

    def _requirements(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem] | None:
        allowed = [str(t) for t in ref.get("allowed_instance_types") or []]
        if not allowed:
            return None  # admits accelerators without naming types: may hold a controlled chip
        excluded = [str(t) for t in ref.get("excluded_instance_types") or []]
        types: list[str] = []
        for pattern in allowed:
            if not any(ch in pattern for ch in "*?["):
                types.append(pattern)
            elif self.known_types is None:
                raise ResolutionError(f"wildcard {pattern!r} with no known-types list")
            else:
                types.extend(fnmatch.filter(self.known_types, pattern))
        types = [t for t in dict.fromkeys(types) if not any(fnmatch.fnmatch(t, x) for x in excluded)]
        if not types:
            raise ResolutionError("allowed instance types match nothing")
        return [resolved(item, t) for t in types]

    def _instance(self, item: LaunchItem, iid: str, request: LaunchRequest) -> LaunchItem:
        inst = self.describe_instance(iid)
        itype = inst.get("InstanceType")
        if not isinstance(itype, str) or not itype:
            raise ResolutionError(f"{iid} has no instance type")
        if request.attestation_ref is None:
            request.attestation_ref = find_attestation_ref(inst.get("Tags") or [])[0]
        state = (inst.get("State") or {}).get("Name")
        if isinstance(state, str):
            request.extra.setdefault("instance_states", {})[iid] = state
        return resolved(item, itype)

    def describe_instance(self, iid: str) -> dict[str, Any]:
        """``DescribeInstances`` for one id, retrying while EC2 does not see the instance yet."""
        delay = self.backoff
        for attempt in range(self.attempts):
            try:
                resp = self.ec2.describe_instances(InstanceIds=[iid])
            except Exception as exc:
                if error_code(exc) not in NOT_FOUND_CODES or attempt == self.attempts - 1:
                    raise
                self.sleep(delay)
                delay *= 2
                continue
            for res in resp.get("Reservations") or []:
                for inst in res.get("Instances") or []:
                    if inst.get("InstanceId") == iid:
                        return dict(inst)
            raise ResolutionError(f"{iid} not returned by DescribeInstances")
        raise ResolutionError(f"{iid} not found")  # pragma: no cover - the loop returns or raises

    def _fleet(self, item: LaunchItem, fleet_id: str) -> list[LaunchItem]:
        fleets = self.ec2.describe_fleets(FleetIds=[fleet_id]).get("Fleets") or []
        if not fleets:
            raise ResolutionError(f"fleet {fleet_id!r} not found")
        configs = fleets[0].get("LaunchTemplateConfigs") or []
        items = fleet_configs(configs, f"{item.path}(fleet)", instances_for(item.count, configs))
        for new in items:
            if new.instance_type is not None:
                new.ref = item.ref
        return items

    def _offering(self, item: LaunchItem, offering_id: str) -> LaunchItem:
        for hours in self.capacity_block_hours:
            kwargs: dict[str, Any] = {"CapacityDurationHours": hours}
            for _ in range(_MAX_PAGES):
                resp = self.ec2.describe_capacity_block_offerings(**kwargs)
                for off in resp.get("CapacityBlockOfferings") or []:
                    if off.get("CapacityBlockOfferingId") == offering_id and off.get("InstanceType"):
                        count = int(off.get("InstanceCount") or item.count)
                        return resolved(item, str(off["InstanceType"]), count)
                token = resp.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        raise ResolutionError(f"capacity block offering {offering_id!r} not found")

    def _reservation(self, item: LaunchItem, reservation_id: str) -> LaunchItem:
        """A capacity reservation's type at the larger of its total count and the item's (a resize asks
        for the new count; the reservation may not show it yet)."""
        resp = self.ec2.describe_capacity_reservations(CapacityReservationIds=[reservation_id])
        for cr in resp.get("CapacityReservations") or []:
            if cr.get("InstanceType"):
                n = max(item.count, described_count(cr.get("TotalInstanceCount")) or 0)
                return resolved(item, str(cr["InstanceType"]), n)
        raise ResolutionError(f"capacity reservation {reservation_id!r} not found")

    def _reservation_fleet(self, item: LaunchItem, fleet_id: str) -> list[LaunchItem]:
        """A capacity reservation fleet's instance types (alternatives) at the instances its target capacity
        may hold: ``max(TotalTargetCapacity, requested)`` units over the lightest specification weight (the
        resize may not show yet). A fleet not returned, or one without a typed specification, raises."""
        resp = self.ec2.describe_capacity_reservation_fleets(CapacityReservationFleetIds=[fleet_id])
        fleet = next(
            (
                f
                for f in resp.get("CapacityReservationFleets") or []
                if f.get("CapacityReservationFleetId") == fleet_id
            ),
            None,
        )
        if fleet is None:
            raise ResolutionError(f"capacity reservation fleet {fleet_id!r} not found")
        specs = [s for s in fleet.get("InstanceTypeSpecifications") or [] if s and s.get("InstanceType")]
        if not specs:
            raise ResolutionError(f"capacity reservation fleet {fleet_id!r} names no instance type")
        units = max(item.count, described_count(fleet.get("TotalTargetCapacity")) or 0)
        overrides = [{"WeightedCapacity": s["Weight"]} for s in specs if s.get("Weight") is not None]
        n = instances_for(units, [{"Overrides": overrides}])
        types = dict.fromkeys(str(s["InstanceType"]).lower() for s in specs)
        return [resolved(item, t, n) for t in types]


def instances_for(units: int, configs: Any) -> int:
    """Instances a fleet's target capacity of ``units`` may launch: a request counts capacity units, and an
    override weighing ``w`` < 1 fills ``units`` with ``units / w`` instances, so the lightest positive weight
    of the described fleet decides (counted up: the conservative reading). A bad weight fails closed."""
    lightest = 1.0
    for cfg in configs if isinstance(configs, list) else []:
        for ov in (cfg.get("Overrides") or []) if isinstance(cfg, dict) else []:
            w = ov.get("WeightedCapacity") if isinstance(ov, dict) else None
            if w is None:
                continue
            if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0 or w != w:
                raise ResolutionError(f"fleet override weight {w!r} is not a positive number")
            lightest = min(lightest, float(w))
    return min(MAX_COUNT, math.ceil(units / lightest))
