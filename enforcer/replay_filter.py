"""Cheap pre-filter for replay: most of a trail is calls that launch nothing; skip them undecoded.

A CloudTrail record is normalised only when its ``(eventSource, eventName)`` is one the intake
decides: the hand-written CloudTrail shapes plus the coverage table's decided calls (the same two
sources :func:`enforcer.intake.cloudtrail.from_record` looks extractors up in). Every other record
would come back ``Ignored("not a launch call")``; the filter counts it as ignored without building a
request. It never skips what normalise would reject: a record whose source, name or id is not a
short string, or that another event detector would claim, goes through normalise as before.

Log files are parsed with orjson first. A byte-level test before parsing was weighed and left out:
a file or line naming no covered operation may still hold malformed records (counted as errors) or
EC2/SageMaker state changes (which release the compute ledger), so it must be parsed anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import orjson

#: normalise's limit on eventSource, eventName and eventID (``text(..., 128)``).
_MAX = 128


@cache
def launch_keys() -> frozenset[tuple[str, str]]:
    """``(eventSource, eventName)`` of every CloudTrail call the intake decides."""
    from enforcer.coverage.table import decided
    from enforcer.intake import CLOUDTRAIL_SHAPES

    keys = set(CLOUDTRAIL_SHAPES)
    keys |= {k for k, e in decided().items() if not e.reference}
    return frozenset(keys)


@cache
def launch_names() -> frozenset[str]:
    """The eventNames of :func:`launch_keys` (a first, cheaper test)."""
    return frozenset(name for _, name in launch_keys())


@cache
def _detectors_before() -> tuple[Any, ...]:
    """Predicates of the detectors normalise tries before the bare CloudTrail record's."""
    from enforcer.intake._registry import DETECTORS

    names = [name for name, _, _ in DETECTORS]
    return tuple(pred for _, pred, _ in DETECTORS[: names.index("cloudtrail_record")])


def _other_detector(rec: Mapping[str, Any]) -> bool:
    # normalise unpacks log files ("Records") and tries detectors in order: a record another one
    # claims (an EventBridge envelope ...) is left to normalise, which decides what it is
    return "Records" in rec or any(pred(rec) for pred in _detectors_before())


def skippable(rec: Any) -> bool:
    """True when ``rec`` is a CloudTrail record normalise would answer ``Ignored`` without deciding.

    Parameters
    ----------
    rec
        One entry of a log file's ``Records`` (or one JSON-lines event).
    """
    if type(rec) is not dict:
        return False
    name = rec.get("eventName")
    if type(name) is not str or name in launch_names() or len(name) > _MAX:
        return False
    source = rec.get("eventSource")
    if type(source) is not str or len(source) > _MAX:
        return False
    eid = rec.get("eventID")
    if eid is not None and (type(eid) is not str or len(eid) > _MAX):
        return False
    return not _other_detector(rec)


def loads(raw: bytes | str) -> Any:
    """Parse JSON with orjson (a ``json.JSONDecodeError`` subclass on bad input)."""
    return orjson.loads(raw)


def dumps_line(obj: Any) -> str:
    """One JSON line (orjson; non-str keys or exotic values fall back to the standard encoder)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        import json

        return json.dumps(obj, default=str) + "\n"
