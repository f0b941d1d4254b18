"""Requests the guard makes itself: one per running instance the sweep finds, one per backlog entry.

The sweep describes running instances in every (account, region) of the organisation and decides on
each accelerated one as if it had just been launched; the backlog re-acts on denies a cap or a
failed call left running. Both are request shapes, so they are built here, like every other shape,
from what AWS returned (a ``DescribeInstances`` instance, a remediation-state item), validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.fields import instance_type, text
from enforcer.intake.tags import find_attestation_ref
from enforcer.model import InputError, LaunchItem, LaunchRequest

#: Longest instance id accepted from a describe result (``i-`` and 17 hex digits today).
_ID_MAX = 64


def sweep_request(
    trigger: LaunchRequest, account: str, region: str, instance: Mapping[str, Any], now: str
) -> LaunchRequest:
    """The request for one running instance found by the sweep.

    Parameters
    ----------
    trigger
        The scheduled sweep's own request (its event id prefixes every instance's).
    account, region
        Where the instance runs.
    instance
        One instance of a ``DescribeInstances`` response.
    now
        RFC 3339 time of the sweep (event id prefix when the trigger has no id).

    Raises
    ------
    enforcer.model.InputError
        When the instance has no usable id. A type that is not one is kept (printable characters)
        so the catalogue classifies it as unknown and the policy fails closed on it.
    """
    iid = text(instance.get("InstanceId"), "Instances[].InstanceId", _ID_MAX)
    try:
        itype = instance_type(instance.get("InstanceType"), f"{iid}.InstanceType")
    except InputError:  # decided as a type nobody knows (a controlled class: fails closed), not skipped
        raw = instance.get("InstanceType")
        itype = "".join(c for c in str(raw) if c.isprintable())[:_ID_MAX] or "unreadable"
    return LaunchRequest(
        source="sweep",
        action="ec2:Sweep",
        account_id=account,
        region=region,
        items=[LaunchItem(itype, 1, path="sweep")],
        event_id=f"{trigger.event_id or now}/{account}/{iid}",
        event_time=trigger.event_time,
        instance_ids=[iid],
        attestation_ref=find_attestation_ref(instance.get("Tags") or [])[0],
        extra={"sweep": True},
    )


def backlog_request(decision_id: str, item: Mapping[str, Any]) -> LaunchRequest:
    """The request re-acting on a capped or failed deny (an ``act_state`` item) from the backlog."""
    remaining = [str(i) for i in item.get("remaining") or []]
    return LaunchRequest(
        "backlog",
        "guard:Backlog",
        str(item.get("account")),
        str(item.get("region")),
        instance_ids=remaining,
        event_id=str(item.get("event_id") or decision_id),
    )
