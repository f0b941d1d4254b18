"""The guard's remediation backlog: denies a cap held back or a failed call left running.

Each scheduled sweep works it first (oldest first where the store knows the order), while the
invocation's budget allows: the instances still to act on are stopped (or terminated) and the state
moves to ``acted``, or stays ``capped`` / ``failed`` for the next run.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from enforcer.act_state import FINAL_STATES
from enforcer.actions import ActionResult, Budget
from enforcer.intake.sweep import backlog_request
from enforcer.model import Decision, Reason
from enforcer.pipeline import rfc3339

if TYPE_CHECKING:
    from enforcer.guard import Guard


def drain_backlog(guard: Guard, budget: Budget) -> list[dict[str, Any]]:
    """Act on capped/failed remediations while the budget allows; one result per entry."""
    out: list[dict[str, Any]] = []
    ids = guard.safe(guard.ledger.backlog) or []
    for did in ids:
        item = guard.safe(functools.partial(guard.ledger.get, did))
        if not isinstance(item, dict) or item.get("state") in FINAL_STATES:
            guard.safe(functools.partial(guard.ledger.backlog_remove, did))
            continue
        out.append(act_on_backlog(guard, did, item, budget))
    return out


def act_on_backlog(guard: Guard, did: str, item: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Act on one backlog entry (its ``remaining`` instances) and record the state it leaves."""
    req = backlog_request(did, item)
    legal = bool(item.get("legal", True))
    reasons = [Reason(str(c), "", "high") for c in item.get("reasons") or []]
    d = Decision(did, rfc3339(time.time()), "deny", True, reasons, req, "backlog", "backlog")
    remaining = list(req.instance_ids)
    result = ActionResult("no_target", did, targets=remaining)
    if remaining:
        try:
            ec2 = guard.clients.client("ec2", req.account_id, req.region)
            asg = guard.clients.client("autoscaling", req.account_id, req.region)
        except Exception as exc:
            result.status, result.errors = "failed", [f"member account access: {type(exc).__name__}"]
        else:
            guard.wait(guard.execute(d, remaining, ec2, asg, budget, legal, result, -1, describe=True))
    state, remaining_now = guard.state_of(result)
    fields = {"remaining": remaining_now}
    guard.safe(lambda: guard.ledger.put(did, state, fields))
    if state == "acted":
        guard.safe(lambda: guard.ledger.backlog_remove(did))
    return {
        "event_id": req.event_id,
        "decision_id": did,
        "effect": "deny",
        "reasons": d.reason_codes,
        "duplicate": False,
        "backlog": True,
        "remediation": result.to_dict(),
    }
