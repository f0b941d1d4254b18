"""Launch broker: API Gateway (IAM auth) ``POST /launch``. Prevents: it decides before launching.

On allow (or audit) it launches with the broker role (the only role the SCP lets launch controlled
types) and tags the instances with the decision id; on deny it answers 403 with the reasons.
"""

from __future__ import annotations

import time
from typing import Any

from enforcer.aws_errors import error_code
from enforcer.broker_auth import refusal
from enforcer.broker_launch import broker_launch
from enforcer.intake import normalise
from enforcer.model import Ignored, InputError
from enforcer.pipeline import rfc3339
from enforcer.ports import AuditWriteError
from enforcer.wiring.aws import runtime
from lambdas._common import count, freezes_warm_heap, powertools, reply

logger, metrics = powertools("gpu-broker")


@freezes_warm_heap  # the first invocation's end: the cold start's objects leave the collector's scans
@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Decide on a launch request and launch it when allowed."""
    try:
        rt = runtime()
        request = normalise(event, rfc3339(time.time()))
        if isinstance(request, Ignored) or request.source != "broker":
            raise InputError("not a POST /launch request")
        refused = refusal(request)
        if (
            refused is not None
        ):  # before deciding: no decision is logged for an account the caller may not act for
            logger.warning(
                "broker caller refused", extra={"code": refused[0], "account_id": request.account_id}
            )
            count(metrics, "CallerRefused")
            return reply(403, {"code": refused[0], "message": refused[1]})
        outcome = rt.enforcer.enforce(request, action="broker:launch")
    except InputError as exc:
        count(metrics, "BadInput")
        return reply(400, {"code": exc.code, "message": str(exc)[:500]})
    except AuditWriteError:
        logger.exception("audit write failed; refusing")
        count(metrics, "AuditWriteFailures")  # the template's AuditWriteFailuresAlarm
        return reply(
            503, {"code": "AUDIT_UNAVAILABLE", "message": "decision could not be logged; not launching"}
        )
    d = outcome.decision
    body: dict[str, Any] = {
        "decision_id": d.decision_id,
        "effect": d.effect,
        "reasons": [r.to_dict() for r in d.reasons],
    }
    count(metrics, "Decisions")
    if outcome.duplicate:  # answered with the logged decision (``d`` is the logged one), not a new one
        return reply(409, {**body, "code": "DUPLICATE_REQUEST"})
    if d.effect == "deny" and d.enforced:
        count(metrics, "Denies")
        return reply(403, body)
    if d.effect == "deny":
        logger.info("would deny (dryrun); launching", extra={"decision_id": d.decision_id})
    try:
        ec2 = rt.clients.client("ec2", request.account_id, request.region, role=rt.config.broker_role)
        body["instance_ids"] = broker_launch(ec2, request, d)
    except InputError as exc:
        return reply(400, {**body, "code": exc.code, "message": str(exc)[:500]})
    except Exception as exc:
        logger.exception("broker launch failed", extra={"decision_id": d.decision_id})
        return reply(502, {**body, "code": "LAUNCH_FAILED", "message": error_code(exc)[:200]})
    count(metrics, "Launches")
    return reply(200, body)
