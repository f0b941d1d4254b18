"""A launch call whose CloudTrail record the intake rejects, as a request the policy denies.

The reactive guard sees launches after they happened: a record that does not parse (a field of a type
or size the extractors refuse) must not leave what it launched running and unaudited. When the record
is a successful call the coverage table decides and its account and region are sound, the guard turns
the rejection into a request with one unresolved item (``malformed_request``: the policy denies it
``REQUEST_UNRESOLVED``), carrying the instance ids the response names, so the decision is logged, the
instances are stopped and the alert goes out. Anything less certain stays a ``bad_input`` result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.cloudtrail import (
    CLOUDTRAIL_DETAIL_TYPE,
    account_and_region,
    is_launch_call,
    launches_nothing,
)
from enforcer.intake.cloudtrail_ec2 import instance_id
from enforcer.model import InputError, LaunchItem, LaunchRequest

#: Most instance ids read from a rejected record's response.
MAX_IDS = 1000


def malformed_launch(event: Any, error: InputError) -> LaunchRequest | None:
    """The fail-closed request for a rejected CloudTrail launch record, or None when it is not one.

    Parameters
    ----------
    event
        The EventBridge event, bare CloudTrail record or one-record log file the intake rejected.
    error
        The intake's error; its code and message go into the item's reference (and so the audit record).

    Returns
    -------
    LaunchRequest or None
        None when the event is not a successful, write, launch-capable CloudTrail call with a valid
        account id and region.
    """
    if not isinstance(event, Mapping):
        return None
    records = event.get("Records")
    if isinstance(records, list) and len(records) == 1 and isinstance(records[0], Mapping):
        event = records[0]  # a log file of one record, as the intake unwraps it
    rec = event.get("detail") if event.get("detail-type") == CLOUDTRAIL_DETAIL_TYPE else event
    if not isinstance(rec, Mapping):
        return None
    source, name = rec.get("eventSource"), rec.get("eventName")
    if not isinstance(source, str) or not isinstance(name, str) or launches_nothing(rec) is not None:
        return None
    if not is_launch_call(source, name):
        return None
    raw_ident = rec.get("userIdentity")
    ident: Mapping[str, Any] = raw_ident if isinstance(raw_ident, Mapping) else {}
    try:
        acct, reg = account_and_region(rec, event if rec is not event else {}, ident)
    except InputError:
        return None
    ref = {"kind": "malformed_request", "error": f"{error.code}: {' '.join(str(error).split())[:200]}"}
    raw_id = event.get("id") or rec.get("eventID")
    when = rec.get("eventTime")
    principal = ident.get("arn")
    return LaunchRequest(
        source="cloudtrail",
        action=f"{source.split('.', 1)[0][:64]}:{name[:128]}",
        account_id=acct,
        region=reg,
        principal=principal[:2048] if isinstance(principal, str) else None,
        items=[LaunchItem(instance_type=None, count=1, ref=ref, path="requestParameters")],
        event_id=raw_id[:128] if isinstance(raw_id, str) else None,
        event_time=when[:64] if isinstance(when, str) else None,
        instance_ids=_instance_ids(rec.get("responseElements")),
    )


#: Response members that hold launched instances (RunInstances' ``instancesSet``, an instant fleet's
#: ``fleetInstanceSet[].instanceIds``, the id lists of other launch calls). Nothing else is read: tags and
#: labels echo what the caller wrote, so an id found there could name somebody else's instance.
ID_CONTAINERS = frozenset(
    {"instancesSet", "fleetInstanceSet", "instances", "Instances", "instanceIds", "InstanceIds"}
)
#: Never descended into, even inside a container.
CALLER_ECHO = frozenset({"tags", "tagSet", "Tags", "TagSet", "labels", "Labels", "tagSpecificationSet"})
_ID_KEYS = frozenset({"instanceId", "InstanceId"})
_ID_LISTS = frozenset({"instanceIds", "InstanceIds"})


def _instance_ids(resp: Any) -> list[str]:
    """The well-formed instance ids the response's id containers hold (any nesting), at most MAX_IDS."""
    if isinstance(resp, Mapping) and len(resp) == 1:
        ((key, inner),) = resp.items()
        if isinstance(key, str) and key.endswith("Response") and isinstance(inner, Mapping):
            resp = inner
    if not isinstance(resp, Mapping):
        return []
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(v, k in _ID_LISTS) for k, v in resp.items() if k in ID_CONTAINERS]
    while stack and len(out) < MAX_IDS:
        node, id_list = stack.pop()
        if isinstance(node, str):
            if id_list:
                _add(out, node)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if key in CALLER_ECHO:
                    continue
                if key in _ID_KEYS and isinstance(value, str):
                    _add(out, value)
                else:
                    stack.append((value, key in _ID_LISTS or (id_list and key == "item")))
        elif isinstance(node, list):
            stack.extend((v, id_list) for v in node)
    return out


def _add(out: list[str], value: str) -> None:
    try:
        iid = instance_id(value, "instanceId")
    except InputError:
        return
    if iid not in out:
        out.append(iid)
