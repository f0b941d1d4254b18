"""CloudFormation Lambda Hook (RESOURCE and CLOUD_CONTROL, PRE_PROVISION): prevents IaC launches.

Answers ``SUCCESS`` or ``FAILED`` with ``errorCode`` ``NonCompliant`` (policy deny) or
``InternalFailure`` (could not evaluate: fails closed unless no chip is controlled and the fail
policy is ``open``), echoes ``clientRequestToken``, keeps ``message`` under Cloud Control's 1,024.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from enforcer.aws_wiring import runtime
from enforcer.intake import normalise
from enforcer.model import CONTROLLED_CLASSES, Ignored, InputError, LaunchRequest
from enforcer.pipeline import rfc3339

logger = Logger(service="gpu-cfn-hook")
metrics = Metrics(namespace="GpuLaunchEnforcer", service="gpu-cfn-hook")
copy_config_to_registered_loggers(source_logger=logger, include={"enforcer"})
MAX_MESSAGE = 1000


def respond(token: Any, status: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    """A hook response; ``message`` is cut to fit Cloud Control's 1,024-character limit."""
    out: dict[str, Any] = {
        "hookStatus": status,
        "message": message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…",
        "clientRequestToken": token if isinstance(token, str) else "",
    }
    if error_code is not None:
        out["errorCode"] = error_code
    return out


def _may_fail_open(request: LaunchRequest | None) -> bool:
    if request is None or not request.items:
        return False
    controlled = any(i.chip_class is None or i.chip_class in CONTROLLED_CLASSES for i in request.items)
    return not controlled and runtime().config.fail_policy == "open"


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Evaluate one resource of a CloudFormation or Cloud Control operation."""
    token = event.get("clientRequestToken") if isinstance(event, dict) else None
    request: LaunchRequest | None = None
    try:
        rt = runtime()
        parsed = normalise(event, rfc3339(time.time()))
        if isinstance(parsed, Ignored):
            metrics.add_metric(name="NotEvaluated", unit=MetricUnit.Count, value=1)
            return respond(token, "SUCCESS", f"not evaluated: {parsed.reason}")
        request = parsed
        d = rt.enforcer.enforce(request, action="hook:respond").decision
    except InputError as exc:
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
        return respond(token, "FAILED", f"invalid hook request ({exc.code}): {exc}", "InternalFailure")
    except Exception as exc:
        logger.exception("hook evaluation failed")
        metrics.add_metric(name="InternalFailures", unit=MetricUnit.Count, value=1)
        if _may_fail_open(request):
            metrics.add_metric(name="FailOpen", unit=MetricUnit.Count, value=1)  # every fail-open is counted
            return respond(
                token, "SUCCESS", f"guard error ({type(exc).__name__}); no controlled chip: fail open"
            )
        return respond(
            token, "FAILED", f"guard error ({type(exc).__name__}); failing closed", "InternalFailure"
        )
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
    reasons = "; ".join(f"{r.code}: {r.message}" for r in d.reasons)
    logger.info(
        "hook decision", extra={"decision_id": d.decision_id, "effect": d.effect, "reasons": d.reason_codes}
    )
    if d.effect == "deny" and d.enforced:
        metrics.add_metric(name="Denies", unit=MetricUnit.Count, value=1)
        return respond(token, "FAILED", f"denied (decision {d.decision_id}): {reasons}", "NonCompliant")
    if d.effect == "deny":
        logger.info("would deny (dryrun)", extra={"decision_id": d.decision_id})
        return respond(token, "SUCCESS", f"dryrun: would deny (decision {d.decision_id}): {reasons}")
    return respond(
        token, "SUCCESS", f"{d.effect} (decision {d.decision_id}){': ' + reasons if reasons else ''}"
    )
