"""What every handler shares: Powertools logging and metrics, counting, API Gateway replies."""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "GpuLaunchEnforcer"

_heap_frozen = False


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


def freeze_warm_heap() -> bool:
    """Move every object alive now to the collector's permanent generation, once per process.

    A handler calls it at the end of its first invocation: the cold start is over by then (the runtime,
    its clients and service models, the policy engine: objects that live as long as the container), so
    the cyclic collector stops rescanning them in every full collection (``benchmarks/guard_warm.py``:
    one 240-270 ms pause in each run of 100 warm denies, issue 16's p99, before). ``gc.freeze`` moves
    lists, it does not walk them (no cost to the cold start), and nothing is collected first (a full
    collection would add that pause to the cold start instead): garbage cycles still uncollected at that
    moment are kept for the container's life, a bounded one-off. Later invocations are not frozen.

    Returns
    -------
    bool
        Whether this call froze (False: an earlier invocation did).
    """
    global _heap_frozen
    if _heap_frozen:
        return False
    _heap_frozen = True
    gc.freeze()
    return True


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def freezes_warm_heap(handler: Handler) -> Handler:
    """Decorate a Lambda handler so that its first invocation ends with :func:`freeze_warm_heap`
    (whichever way it returns or raises)."""

    @functools.wraps(handler)
    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return handler(event, context)
        finally:
            freeze_warm_heap()

    return wrapped
