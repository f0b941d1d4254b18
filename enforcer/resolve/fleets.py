"""Service-managed fleets scaled by count alone (``UpdateFleet`` of Deadline Cloud, AppStream 2.0 and
CodeBuild): the fleet is described and its configuration read as the ``CreateFleet`` call would have been
(the coverage table's walk, :mod:`enforcer.intake.cloudtrail_generic`), at the larger of the requested and
the described count (the CloudTrail record arrives after the call: either may be the fleet's capacity).

A configuration the walk finds no type or accelerator selection in (a Deadline customer-managed fleet,
whose workers are the account's own EC2 instances; a service-managed one that asks for no accelerators; a
CodeBuild fleet outside the GPU environment) resolves to an ``instance_requirements`` item without
accelerators (classified ``none``), as ``CreateFleet`` of the same configuration is not a launch of one.
A fleet AWS does not return, or a CodeBuild GPU environment that names no instance type, raises: the
item stays unresolved and fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.model import Ignored, LaunchItem
from enforcer.resolve.common import Lookups, ResolutionError, described_count, resolved

#: CodeBuild's environment type whose instances carry GPUs.
CODEBUILD_GPU_ENVIRONMENTS = frozenset({"LINUX_GPU_CONTAINER"})


class FleetLookups(Lookups):
    """What Deadline, AppStream and CodeBuild say a fleet scaled by count runs."""

    def _as_created(
        self, item: LaunchItem, source: str, config: Mapping[str, Any], count: int
    ) -> list[LaunchItem] | None:
        """Items the ``CreateFleet`` path reads from ``config`` (types and attribute-based selections),
        each at ``count``; None when it reads nothing."""
        from enforcer.intake.cloudtrail_generic import extractor_for

        extractor = extractor_for(source, "CreateFleet")
        if extractor is None:
            raise ResolutionError(f"{source} CreateFleet is not in the coverage table")
        parsed = extractor(config, f"{item.path}(described)", None)
        if isinstance(parsed, Ignored):
            return None
        out: list[LaunchItem] = []
        for found in parsed.items:
            if found.instance_type is not None:
                out.append(resolved(item, found.instance_type, count))
            else:  # attribute-based selection: resolved (or left unresolved) like the CreateFleet item
                ref = {**(found.ref or {}), "fleet": dict(item.ref or {})}
                out.append(LaunchItem(None, count, ref, item.path))
        return out

    @staticmethod
    def _no_accelerators(item: LaunchItem, count: int, why: str) -> list[LaunchItem]:
        ref = {
            "kind": "instance_requirements",
            "accelerators": False,
            "accelerators_requested": False,
            "fleet": dict(item.ref or {}),
            "note": why,
        }
        return [LaunchItem(None, count, ref, item.path)]

    def _deadline_fleet(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """A Deadline fleet (``GetFleet``): its service-managed instance capabilities at the worker count."""
        if self.deadline is None:
            raise ResolutionError("no Deadline client")
        fleet = self.deadline.get_fleet(farmId=str(ref.get("farm_id", "")), fleetId=str(ref.get("id", "")))
        n = max(item.count, described_count(fleet.get("maxWorkerCount")) or 0)
        cfg = fleet.get("configuration") or {}
        if isinstance(cfg.get("customerManaged"), Mapping):
            return self._no_accelerators(
                item, n, "customer-managed fleet: workers are the account's instances"
            )
        if not isinstance(cfg.get("serviceManagedEc2"), Mapping):
            raise ResolutionError("fleet configuration is neither customer- nor service-managed")
        items = self._as_created(item, "deadline.amazonaws.com", {"configuration": cfg}, n)
        return items or self._no_accelerators(item, n, "service-managed fleet asks for no accelerators")

    def _appstream_fleet(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """An AppStream fleet (``DescribeFleets``): its ``InstanceType`` at the desired capacity."""
        if self.appstream is None:
            raise ResolutionError("no AppStream client")
        name = str(ref.get("name", ""))
        fleets = [f for f in self.appstream.describe_fleets(Names=[name]).get("Fleets") or [] if f]
        fleet = next((f for f in fleets if f.get("Name") == name), None)
        if fleet is None or not fleet.get("InstanceType"):
            raise ResolutionError(f"AppStream fleet {name!r} not found or names no instance type")
        status = fleet.get("ComputeCapacityStatus") or {}
        desired = (described_count(status.get(k)) or 0 for k in ("Desired", "DesiredUserSessions"))
        n = max(item.count, *desired)
        items = self._as_created(item, "appstream.amazonaws.com", {"InstanceType": fleet["InstanceType"]}, n)
        if not items:
            raise ResolutionError(f"AppStream fleet {name!r}: instance type not read")
        return items

    def _codebuild_fleet(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """A CodeBuild fleet (``BatchGetFleets``): ``computeConfiguration.instanceType`` at its capacity;
        a GPU environment without one stays unresolved (fails closed)."""
        if self.codebuild is None:
            raise ResolutionError("no CodeBuild client")
        arn = str(ref.get("arn", ""))
        fleets = self.codebuild.batch_get_fleets(names=[arn]).get("fleets") or []
        fleet = next((f for f in fleets if f and arn in (f.get("arn"), f.get("name"))), None)
        if fleet is None:
            raise ResolutionError(f"CodeBuild fleet {arn[:160]!r} not found")
        top = described_count((fleet.get("scalingConfiguration") or {}).get("maxCapacity")) or 0
        n = max(item.count, described_count(fleet.get("baseCapacity")) or 0, top)
        config = {
            k: fleet[k] for k in ("environmentType", "computeType", "computeConfiguration") if k in fleet
        }
        items = self._as_created(item, "codebuild.amazonaws.com", config, n)
        if items:
            return items
        if fleet.get("environmentType") in CODEBUILD_GPU_ENVIRONMENTS:
            raise ResolutionError(
                f"GPU fleet names no instance type (compute type {fleet.get('computeType')!r})"
            )
        return self._no_accelerators(item, n, f"{fleet.get('environmentType')} fleet: no GPU environment")
