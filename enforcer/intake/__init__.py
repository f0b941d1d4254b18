"""Intake: turn every trigger shape into one :class:`~enforcer.model.LaunchRequest`.

Shapes are plugins. CloudTrail API calls register an extractor with
``@shape(eventSource, eventName)``; other top-level shapes (state change, sweep, CloudFormation
hook, broker) register a cheap predicate and a handler with ``@detector``. :func:`normalise`
tries the detectors in order; anything malformed raises :class:`~enforcer.model.InputError`.

Cold start (issue 16): importing the package loads the CloudTrail reader, its EC2 shapes and the
coverage table's, enough for a CloudTrail launch record; the other detector modules
(``registry.DETECTOR_MODULES``) are imported by the first event that is not a CloudTrail record, the other
shape modules by the first record that misses (``registry.LAZY_SHAPE_MODULES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Registers the CloudTrail shapes and detectors (first in registry.DETECTOR_ORDER).
from enforcer.intake import cloudtrail  # noqa: F401
from enforcer.intake.cloudtrail import iter_cloudtrail_records
from enforcer.intake.fields import as_list, kind, text
from enforcer.intake.registry import CLOUDTRAIL_SHAPES, DETECTORS, detector, loaded_detectors, shape
from enforcer.model import Ignored, InputError, LaunchRequest

#: The detectors tried before any other: a CloudTrail record never needs another detector module.
CLOUDTRAIL_DETECTORS = frozenset({"eventbridge_cloudtrail", "cloudtrail_record"})

__all__ = [
    "CLOUDTRAIL_SHAPES",
    "DEFAULT_MAX_BYTES",
    "as_list",
    "detector",
    "iter_cloudtrail_records",
    "normalise",
    "parse_event_bytes",
    "shape",
]


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_MAX_BYTES", "parse_event_bytes"):  # the byte parser loads on use
        from enforcer.intake import parse

        return getattr(parse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_other_eventbridge(e: Mapping[str, Any]) -> bool:
    return "detail-type" in e and "source" in e and "detail" in e


@detector("eventbridge_other", _is_other_eventbridge)
def _other_eventbridge(event: Mapping[str, Any], now: str | None) -> Ignored:
    dt = text(event.get("detail-type"), "detail-type", 256)
    eid = event.get("id")
    return Ignored(f"event type not handled: {dt}", eid if isinstance(eid, str) else None)


def normalise(event: Any, now: str | None = None) -> LaunchRequest | Ignored:
    """Normalise one trigger event.

    Parameters
    ----------
    event
        A parsed event (dict): EventBridge CloudTrail API call or bare CloudTrail record, EC2
        state-change notification, scheduled sweep, CloudFormation Lambda Hook request, API
        Gateway ``POST /launch`` or direct broker invoke. Raw bytes/text are parsed first with
        :func:`parse_event_bytes`. A CloudTrail log file holding exactly one record is accepted.
    now
        RFC 3339 time used as ``event_time`` when the event carries none (hook, broker).

    Returns
    -------
    LaunchRequest or Ignored
        ``Ignored`` for recognised events that launch nothing (failed or read-only calls,
        non-launch API calls, non-pending states, deletes, resource types without instances).

    Raises
    ------
    InputError
        For anything malformed: wrong types, missing fields, unknown shape, oversize input.
    """
    if isinstance(event, bytes | bytearray | memoryview | str):
        from enforcer.intake.parse import parse_event_bytes

        event = parse_event_bytes(event)
    if not isinstance(event, Mapping):
        raise InputError(f"event must be a JSON object, got {kind(event)}")
    if "Records" in event:
        records = list(iter_cloudtrail_records(event))
        if len(records) != 1:
            raise InputError(f"a CloudTrail log file with {len(records)} records: replay it instead")
        event = records[0]
    for name, predicate, handler in loaded_detectors():  # CloudTrail's come first in every order
        if name not in CLOUDTRAIL_DETECTORS:
            break
        if predicate(event):
            return handler(event, now)
    for _name, predicate, handler in DETECTORS:  # every detector (their modules imported)
        if predicate(event):
            return handler(event, now)
    raise InputError("unrecognised event shape")
