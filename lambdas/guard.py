"""Reactive guard: CloudTrail launch events, EC2 state changes and the scheduled sweep.

It acts after the launch (seconds later): a deny stops (or terminates) the instances, tags them and
notifies, within the blast-radius cap. It remediates; it does not prevent (the SCP does).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from enforcer.aws_wiring import runtime

logger = Logger(service="gpu-guard")
metrics = Metrics(namespace="GpuLaunchEnforcer", service="gpu-guard")
copy_config_to_registered_loggers(source_logger=logger, include={"enforcer"})

#: Remediation status -> metric name.
STATUS_METRICS = {
    "stopped": "Stopped",
    "terminated": "Terminated",
    "capped": "Capped",
    "would_deny": "WouldDeny",
    "duplicate": "Duplicates",
    "failed": "RemediationFailures",
}


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Decide on one EventBridge event and remediate denies; returns what was done."""
    rt = runtime()
    result = rt.guard.handle(event, rt.budget())
    if result["status"] == "ignored":
        metrics.add_metric(name="Ignored", unit=MetricUnit.Count, value=1)
    elif result["status"] == "bad_input":
        logger.error("bad guard event", extra={"error": result["error"], "code": result["code"]})
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
    for r in result.get("results", []):
        metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
        if r["effect"] == "deny":
            metrics.add_metric(name="Denies", unit=MetricUnit.Count, value=1)
        name = STATUS_METRICS.get(r["remediation"]["status"])
        if name is not None:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("guard event handled", extra={"result": result})
    return result
