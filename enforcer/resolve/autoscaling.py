"""Auto Scaling look-ups: a group's overrides, template or configuration; a launch configuration's type."""

from __future__ import annotations

from enforcer.intake.fields import requirements_ref
from enforcer.model import LaunchItem
from enforcer.resolve.common import Lookups, ResolutionError, resolved, template_ref


class AutoScalingLookups(Lookups):
    """What Auto Scaling says a reference launches."""

    def _asg(self, item: LaunchItem, name: str) -> list[LaunchItem]:
        if self.autoscaling is None:
            raise ResolutionError("no Auto Scaling client")
        groups = (
            self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name]).get(
                "AutoScalingGroups"
            )
            or []
        )
        if not groups:
            raise ResolutionError(f"auto scaling group {name!r} not found")
        g = groups[0]
        items: list[LaunchItem] = []
        mip = (g.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
        spec = mip.get("LaunchTemplateSpecification") or g.get("LaunchTemplate")
        tref = template_ref(spec) if spec else None
        overrides = mip.get("Overrides") or []
        for ov in overrides:
            if ov.get("InstanceType"):
                items.append(resolved(item, str(ov["InstanceType"])))
            elif ov.get("InstanceRequirements"):
                rref = requirements_ref(ov["InstanceRequirements"], f"{item.path}(asg override)")
                if tref is not None:
                    rref["launch_template"] = tref
                items.append(LaunchItem(None, item.count, rref, item.path))
        if (not overrides or len(items) < len(overrides)) and tref is not None:
            items.append(LaunchItem(None, item.count, tref, item.path))
        if g.get("LaunchConfigurationName"):
            lc = {"kind": "launch_configuration", "name": str(g["LaunchConfigurationName"])}
            items.append(LaunchItem(None, item.count, lc, item.path))
        if not items:
            raise ResolutionError(f"auto scaling group {name!r} has no launch template or configuration")
        return items

    def _launch_configuration(self, item: LaunchItem, name: str) -> LaunchItem:
        if self.autoscaling is None:
            raise ResolutionError("no Auto Scaling client")
        lcs = (
            self.autoscaling.describe_launch_configurations(LaunchConfigurationNames=[name]).get(
                "LaunchConfigurations"
            )
            or []
        )
        if not lcs or not lcs[0].get("InstanceType"):
            raise ResolutionError(f"launch configuration {name!r} not found")
        return resolved(item, str(lcs[0]["InstanceType"]))
