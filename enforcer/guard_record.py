"""The guard's one write before acting: the audit record with its remediation state and counter.

With an audit store that takes ``side_ops`` (``AwsAuditStore``) and a ledger that builds them
(``act_state.DynamoLedger``), a deny's record, its idempotency item, the state ``decided`` and the
account's hourly counter are one ``TransactWriteItems`` (the compute ledger's update joins it through
``ledger.sink``). A counter refusing its condition writes the record and the state without it; a
state/counter table that fails writes the record alone (the record never depends on them).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from enforcer.act_state import _state_fields
from enforcer.budget import Budget
from enforcer.model import Decision
from enforcer.ports import AuditReceipt

if TYPE_CHECKING:
    from enforcer.guard import Guard


def log_decision(
    guard: Guard, d: Decision, targets: list[str], legal: bool, room: int, budget: Budget
) -> tuple[AuditReceipt | None, int]:
    """Write the record (+ state ``decided`` + counter when possible); return the receipt and
    how many instances the counter already granted (-1: not counted in the write).

    Raises
    ------
    ports.AuditWriteError
        When the record cannot be written in enforce mode.
    """
    audit = guard.enforcer.audit
    if audit is None:
        return None, -1
    fields = _state_fields(d, targets, legal)
    side: list[dict[str, Any]] = []
    counted = -1
    put_op = getattr(guard.ledger, "put_op", None)
    takes = _keywords(audit.write)
    can_side = put_op is not None and "side_ops" in takes
    acts = d.effect == "deny" and d.enforced
    # A seal due now runs after the stop (Guard._finish), never between the record and the stop.
    kw: dict[str, Any] = {"defer_seal": True} if acts and "defer_seal" in takes else {}
    if acts and can_side and put_op is not None:
        side.append(put_op(d.decision_id, "decided", fields))
        if room and not legal and budget.caps is not None:
            side.append({"Update": budget.caps.update(d.request.account_id, d.request.region, room)})
            counted = room
    try:
        if side:
            from enforcer.audit.aws import SideOpRefused

            try:
                receipt = audit.write(d, guard.planned_action, side_ops=side, **kw)  # type: ignore[call-arg]
            except SideOpRefused:  # not enough room for all: write the record, then take what fits
                receipt = audit.write(d, guard.planned_action, side_ops=side[:1], **kw)  # type: ignore[call-arg]
                counted = -1
            except Exception:
                # The state/counter table failed (missing, throttled, denied): the record must not
                # depend on it. Write the record alone; the state and caps are tried apart.
                receipt = audit.write(d, guard.planned_action, **kw)
                counted = -1
                if not receipt.duplicate:
                    guard.safe(lambda: guard.ledger.put(d.decision_id, "decided", fields))
            if counted > 0:
                budget.used += counted
        else:
            receipt = audit.write(d, guard.planned_action, **kw)
            if acts:
                guard.safe(lambda: guard.ledger.put(d.decision_id, "decided", fields))
            counted = -1
    except Exception:
        guard.enforcer.counters["audit_write_failures"] += 1
        if guard.enforcer.mode == "enforce":
            raise
        return None, -1
    if receipt.duplicate:
        guard.enforcer.counters["duplicates"] += 1
    return receipt, counted


@functools.lru_cache(maxsize=64)
def _keywords_of(function: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def _keywords(write: Callable[..., Any]) -> frozenset[str]:
    """The parameters ``write`` takes (read once per function, not per event: ``inspect`` is slow)."""
    try:
        return _keywords_of(getattr(write, "__func__", write))
    except TypeError:  # not hashable: read it each time
        return frozenset(inspect.signature(write).parameters)
