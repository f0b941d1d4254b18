"""Reactive guard: CloudTrail launch events, EC2 state changes and the scheduled sweep.

It acts after the launch (seconds later): a deny stops (or terminates) the instances, tags them and
notifies, within the blast-radius cap. It remediates; it does not prevent (the SCP does).
"""

from __future__ import annotations

import time
from typing import Any

from enforcer.wiring.aws import runtime
from lambdas._common import count, freezes_warm_heap, powertools

logger, metrics = powertools("gpu-guard")

#: Remediation status -> metric name.
STATUS_METRICS = {
    "stopped": "Stopped",
    "terminated": "Terminated",
    "capped": "Capped",
    "would_deny": "WouldDeny",
    "duplicate": "Duplicates",
    "failed": "RemediationFailures",
}


@freezes_warm_heap  # the first invocation's end: the cold start's objects leave the collector's scans
@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Decide on one EventBridge event and remediate denies; returns what was done."""
    rt = runtime()
    result = rt.guard.handle(event, rt.budget())
    if result["status"] == "ignored":
        count(metrics, "Ignored")
        from enforcer.ledger.release import release_ledger  # not on a launch's path (cold start)

        if release_ledger(rt.enforcer, event, time.time()):  # a stop/terminate/completion (issue 14)
            count(metrics, "LedgerReleases")
    elif result["status"] == "bad_input" or "malformed" in result:  # malformed: a launch denied unread
        bad = result.get("malformed") or result
        logger.error("bad guard event", extra={"error": bad["error"], "code": bad["code"]})
        count(metrics, "BadInput")
    for r in result.get("results", []):
        count(metrics, "Backlog" if r.get("backlog") else "Decisions")
        if r["effect"] == "deny" and not r.get("backlog"):
            count(metrics, "Denies")
        name = STATUS_METRICS.get(r["remediation"]["status"])
        if name is not None:
            count(metrics, name)
        if r["remediation"]["status"] == "capped":  # high severity: a deny left running for now
            logger.error("remediation capped: held in the backlog", extra={"decision_id": r["decision_id"]})
        if r.get("seal_error"):
            count(metrics, "SealFailures")
    if result["status"] == "reported":
        count(metrics, "Violators", len(result.get("violators", [])))
    logger.info("guard event handled", extra={"result": result})
    return result
