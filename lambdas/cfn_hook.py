"""CloudFormation Lambda Hook (RESOURCE, CLOUD_CONTROL, STACK, CHANGE_SET): prevents IaC launches.

Answers ``SUCCESS`` or ``FAILED`` with ``errorCode`` ``NonCompliant`` (policy deny) or
``InternalFailure`` (could not evaluate: fails closed unless no chip is controlled and the fail
policy is ``open``), echoes ``clientRequestToken`` when the request has one, keeps ``message`` under
Cloud Control's 1,024. Resource types that launch nothing answer SUCCESS before any AWS client exists.
"""

from __future__ import annotations

import time
from typing import Any

from enforcer.hook_payload import PresignedFetcher, normalise_hook
from enforcer.intake import normalise
from enforcer.intake.cfn_hook import PAYLOAD_NOT_FETCHED
from enforcer.intake.cfn_stack import hook_token
from enforcer.model import CONTROLLED_CLASSES, Ignored, InputError, LaunchRequest
from enforcer.pipeline import rfc3339
from enforcer.wiring.aws import Runtime, runtime
from lambdas._common import count, freezes_warm_heap, powertools

logger, metrics = powertools("gpu-cfn-hook")
MAX_MESSAGE = 1000


def respond(token: Any, status: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    """A hook response; ``message`` is cut to fit Cloud Control's 1,024-character limit."""
    out: dict[str, Any] = {
        "hookStatus": status,
        "message": message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…",
    }
    if isinstance(token, str):
        out["clientRequestToken"] = token
    if error_code is not None:
        out["errorCode"] = error_code
    return out


def _may_fail_open(request: LaunchRequest | None, rt: Runtime | None) -> bool:
    if request is None or rt is None or not request.items:
        return False
    controlled = any(i.chip_class is None or i.chip_class in CONTROLLED_CLASSES for i in request.items)
    return not controlled and rt.config.fail_policy == "open"


@freezes_warm_heap  # the first invocation's end: the cold start's objects leave the collector's scans
@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Evaluate one resource of a CloudFormation or Cloud Control operation."""
    token = hook_token(event)
    request: LaunchRequest | None = None
    rt: Runtime | None = None
    try:
        now = rfc3339(time.time())
        parsed = normalise(event, now)  # no runtime yet: non-launch resources answer at once
        if isinstance(parsed, Ignored) and parsed.reason == PAYLOAD_NOT_FETCHED:  # STACK, CHANGE_SET
            rt = runtime()
            parsed = normalise_hook(event, now, PresignedFetcher(rt.config.hook_payload_hosts))
        if isinstance(parsed, Ignored):
            count(metrics, "NotEvaluated")
            return respond(token, "SUCCESS", f"not evaluated: {parsed.reason}")
        request = parsed
        rt = rt or runtime()
        d = rt.enforcer.enforce(request, action="hook:respond").decision
    except InputError as exc:
        count(metrics, "BadInput")
        return respond(token, "FAILED", f"invalid hook request ({exc.code}): {exc}", "InternalFailure")
    except Exception as exc:
        logger.exception("hook evaluation failed")
        count(metrics, "InternalFailures")
        if _may_fail_open(request, rt):
            count(metrics, "FailOpen")  # every fail-open is counted
            return respond(
                token, "SUCCESS", f"guard error ({type(exc).__name__}); no controlled chip: fail open"
            )
        return respond(
            token, "FAILED", f"guard error ({type(exc).__name__}); failing closed", "InternalFailure"
        )
    count(metrics, "Decisions")
    reasons = "; ".join(f"{r.code}: {r.message}" for r in d.reasons)
    logger.info(
        "hook decision", extra={"decision_id": d.decision_id, "effect": d.effect, "reasons": d.reason_codes}
    )
    if d.effect == "deny" and d.enforced:
        count(metrics, "Denies")
        return respond(token, "FAILED", f"denied (decision {d.decision_id}): {reasons}", "NonCompliant")
    if d.effect == "deny":
        logger.info("would deny (dryrun)", extra={"decision_id": d.decision_id})
        return respond(token, "SUCCESS", f"dryrun: would deny (decision {d.decision_id}): {reasons}")
    return respond(
        token, "SUCCESS", f"{d.effect} (decision {d.decision_id}){': ' + reasons if reasons else ''}"
    )
