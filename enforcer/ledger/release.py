"""Stop, terminate and completion events take compute off the ledger's running figures.

The EC2 state-change and SageMaker state-change detectors (``enforcer.intake``) decide only on
launches and ignore these events; this module reads the same envelopes with the intake's own
validators and tables (``ec2_events.STATE_CHANGE``, ``sagemaker_events.EVENTS``) to name the
resource that stopped, and releases it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from enforcer.intake.cloudtrail import account_id, region
from enforcer.intake.cloudtrail_ec2 import instance_id
from enforcer.intake.ec2_events import STATE_CHANGE
from enforcer.intake.fields import get, text
from enforcer.intake.sagemaker_events import EVENTS, SOURCE
from enforcer.ledger.figures import Allocation
from enforcer.ledger.owners import managed_resource
from enforcer.ledger.store import LedgerStore
from enforcer.model import InputError

#: EC2 states after which an instance no longer computes.
EC2_RELEASE_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
#: SageMaker statuses (lower case, no spaces) after which a resource no longer computes.
SAGEMAKER_RELEASE_STATES = frozenset(
    {"completed", "failed", "stopped", "stopping", "deleting", "deleted", "outofservice"}
)


def released_resource(event: Any) -> str | None:
    """The ledger resource a stop/terminate/completion event releases, or None for any other event.

    Raises
    ------
    InputError
        A release-shaped event with a malformed field (the caller logs it; nothing is released).
    """
    if not isinstance(event, Mapping):
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    if event.get("detail-type") == STATE_CHANGE and event.get("source") == "aws.ec2":
        state = text(detail.get("state"), "detail.state", 32)
        if state not in EC2_RELEASE_STATES:
            return None
        return f"instance:{instance_id(detail.get('instance-id'), 'detail.instance-id')}"
    if event.get("source") == SOURCE and event.get("detail-type") in EVENTS:
        kind, name_key, status_key, live, _ = EVENTS[str(event["detail-type"])]
        status = text(get(detail, status_key), f"detail.{status_key}", 64).replace(" ", "").lower()
        if status in live or status not in SAGEMAKER_RELEASE_STATES:
            return None
        name = text(get(detail, name_key), f"detail.{name_key}", 256)
        acct = account_id(event.get("account"), "account")
        return managed_resource(kind, acct, region(event.get("region"), "region"), name)
    return None


def _event_time(event: Mapping[str, Any], now: float) -> float:
    when = event.get("time")
    if isinstance(when, str):
        try:
            return datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return now


def release_event(ledger: LedgerStore, event: Any, now: float) -> Allocation | None:
    """Release what ``event`` stopped (at the event's time); None when nothing was held for it."""
    try:
        resource = released_resource(event)
    except InputError:
        return None
    if resource is None:
        return None
    assert isinstance(event, Mapping)
    return ledger.release(resource, _event_time(event, now))


def release_ledger(enforcer: Any, event: Any, now: float) -> bool:
    """Release what a stop/terminate/completion event stopped from ``enforcer.observer.ledger``, if any."""
    ledger = getattr(getattr(enforcer, "observer", None), "ledger", None)
    if ledger is None:
        return False
    try:
        return release_event(ledger, event, now) is not None
    except Exception:  # a failed release leaves the running figure high: conservative, counted
        enforcer.counters["ledger_release_failures"] += 1
        return False
