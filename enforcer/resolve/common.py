"""What every look-up shares: the clients it reads, the error it raises, the resolved item it builds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from enforcer.model import LaunchItem

#: Upper bound on the items one request may grow to; beyond it the reference stays unresolved.
MAX_ITEMS = 64
#: Upper bound on reference chains (ASG -> template -> requirements).
MAX_DEPTH = 4


class ResolutionError(Exception):
    """A reference that AWS could not turn into an instance type (kept on the item, never raised out)."""


class Lookups:
    """The state the per-service look-ups read (set by :class:`enforcer.resolve.AwsResolver`)."""

    ec2: Any
    autoscaling: Any
    sagemaker: Any
    deadline: Any
    appstream: Any
    codebuild: Any
    known_types: tuple[str, ...] | None
    attempts: int
    backoff: float
    sleep: Callable[[float], None]
    capacity_block_hours: tuple[int, ...]
    _versions: dict[tuple[str, str], dict[str, Any]]


def resolved(item: LaunchItem, instance_type: str, count: int | None = None) -> LaunchItem:
    """A resolved copy of ``item`` that keeps the reference it came from (for the audit record)."""
    return LaunchItem(
        instance_type=instance_type.lower(),
        count=item.count if count is None else count,
        ref=item.ref,
        path=item.path,
    )


def template_ref(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The launch-template reference of an EC2/Auto Scaling ``LaunchTemplateSpecification``."""
    ref: dict[str, Any] = {"kind": "launch_template", "version": str(spec.get("Version") or "$Default")}
    if spec.get("LaunchTemplateId"):
        ref["id"] = str(spec["LaunchTemplateId"])
    if spec.get("LaunchTemplateName"):
        ref["name"] = str(spec["LaunchTemplateName"])
    return ref


def described_count(value: Any) -> int | None:
    """A positive instance count from a Describe answer, else None (absent, zero, malformed, a bool)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
