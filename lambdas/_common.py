"""What every handler shares: Powertools logging and metrics, counting, API Gateway replies."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "GpuLaunchEnforcer"


def powertools(service: str) -> tuple[Logger, Metrics]:
    """The handler's logger and metrics; the library's ``enforcer`` loggers log in the same format."""
    logger = Logger(service=service)
    metrics = Metrics(namespace=NAMESPACE, service=service)
    copy_config_to_registered_loggers(source_logger=logger, include={"enforcer"})
    return logger, metrics


def count(metrics: Metrics, name: str, value: int = 1) -> None:
    """Add ``value`` to the count metric ``name``."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def reply(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway proxy response with a JSON body."""
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
