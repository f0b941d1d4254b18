"""Events EC2 and EventBridge emit directly: instance state changes and the scheduled sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.cloudtrail import account_id, region
from enforcer.intake.cloudtrail_ec2 import instance_id
from enforcer.intake.fields import kind, ref_item, text
from enforcer.intake.registry import detector
from enforcer.model import Ignored, InputError, LaunchRequest

STATE_CHANGE = "EC2 Instance State-change Notification"
SCHEDULED = "Scheduled Event"


def _envelope(event: Mapping[str, Any], now: str | None) -> tuple[str, str, str | None, str | None]:
    acct = account_id(event.get("account"), "account")
    reg = region(event.get("region"), "region")
    eid = event.get("id")
    event_id = text(eid, "id", 128) if eid is not None else None
    when = event.get("time")
    return acct, reg, event_id, text(when, "time", 64) if when is not None else now


def _is_state_change(e: Mapping[str, Any]) -> bool:
    return e.get("detail-type") == STATE_CHANGE


def _is_scheduled(e: Mapping[str, Any]) -> bool:
    return e.get("detail-type") == SCHEDULED and e.get("source") == "aws.events"


@detector("ec2_state_change", _is_state_change)
def from_state_change(event: Mapping[str, Any], now: str | None) -> LaunchRequest | Ignored:
    """``pending`` -> a request with one ``instance_id`` ref (the resolver looks the type up).

    Other states are Ignored. The event carries no type and no principal.
    """
    if event.get("source") != "aws.ec2":
        raise InputError("source: a state-change notification must come from aws.ec2")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InputError(f"detail: expected an object, got {kind(detail)}")
    state = text(detail.get("state"), "detail.state", 32)
    eid = event.get("id")
    event_id = text(eid, "id", 128) if eid is not None else None
    if state != "pending":
        return Ignored(f"instance state {state}", event_id, "ec2:StateChange")
    iid = instance_id(detail.get("instance-id"), "detail.instance-id")
    acct, reg, event_id, when = _envelope(event, now)
    return LaunchRequest(
        source="state_change",
        action="ec2:StateChange",
        account_id=acct,
        region=reg,
        items=[ref_item({"kind": "instance_id", "id": iid}, "detail.instance-id")],
        event_id=event_id,
        event_time=when,
        instance_ids=[iid],
    )


@detector("scheduled_sweep", _is_scheduled)
def from_scheduled(event: Mapping[str, Any], now: str | None) -> LaunchRequest | Ignored:
    """A scheduled EventBridge rule: a sweep request with no items (the guard lists instances itself)."""
    acct, reg, event_id, when = _envelope(event, now)
    extra: dict[str, Any] = {"sweep": True}
    resources = event.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], str):
        extra["rule"] = resources[0][:512]
    return LaunchRequest(
        source="sweep",
        action="sweep",
        account_id=acct,
        region=reg,
        items=[],
        event_id=event_id,
        event_time=when,
        extra=extra,
    )
