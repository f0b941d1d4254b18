"""CloudTrail calls read from the coverage table instead of a hand-written shape.

Every ``decided`` operation of :mod:`enforcer.coverage` gets an extractor here unless a hand-written
one is registered (``@shape``); those stay where the semantics need them (templates, fleets, ASG
overrides). Hand-written or not, :func:`complete` then walks the request for instance types the
extractor did not report (a type nested in a preference or pool list it does not know) and adds
them: the service model, not our list of shapes, says where types sit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from enforcer.coverage.table import Entry, decided
from enforcer.intake.fields import Parsed
from enforcer.intake.registry import Extractor
from enforcer.model import Ignored


@cache
def _entries() -> dict[tuple[str, str], Entry]:
    return {k: e for k, e in decided().items() if not e.reference}


def entry_for(event_source: str, event_name: str) -> Entry | None:
    """The decided coverage entry of a CloudTrail call (None when the table does not decide it)."""
    return _entries().get((event_source, event_name))


def extractor_for(event_source: str, event_name: str) -> Extractor | None:
    """A table-driven extractor for a decided call, or None when the table does not decide it."""
    entry = entry_for(event_source, event_name)
    if entry is None:
        return None

    def generic(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
        from enforcer.coverage.extract import extract  # the walker loads on the first walk (cold start)

        out = extract(p, entry, at)
        return out if out.items else Ignored("no instance type in request")

    return generic


def complete(
    parsed: Parsed | Ignored, p: Mapping[str, Any], at: str, event_source: str, event_name: str
) -> Parsed | Ignored:
    """Add the instance types a hand-written extractor missed (compared by type, ``ml.`` ignored).

    Returns ``parsed`` unchanged when the table finds nothing new; an ``Ignored`` becomes the
    table's findings when it finds types.
    """
    entry = entry_for(event_source, event_name)
    if entry is None:
        return parsed
    have: set[str] = set()
    if not isinstance(parsed, Ignored):
        have = {i.instance_type for i in parsed.items if i.instance_type is not None}
        for i in parsed.items:  # references that name the value (Batch families, template names)
            have.update(str(v).lower() for v in (i.ref or {}).values() if isinstance(v, str))
    if have and _nothing_new(p, have):
        return parsed
    from enforcer.coverage.extract import extract

    extra = extract(p, entry, at, known=frozenset(have))
    if not extra.items:
        return parsed
    if isinstance(parsed, Ignored):
        return extra
    # attribute-based selections the shape already turned into references are not added twice
    reqs = any((i.ref or {}).get("kind") == "instance_requirements" for i in parsed.items)
    missed = [
        i for i in extra.items if (i.instance_type not in have if i.instance_type is not None else not reqs)
    ]
    biggest: dict[str, int] = {}
    weighted = extra.extra.get("weighted_capacity", {})
    for i in extra.items:  # weighted capacity: the model's count is instances, a shape's is units
        if i.instance_type is not None and i.path in weighted:
            biggest[i.instance_type] = max(biggest.get(i.instance_type, 0), i.count)
    for i in parsed.items:
        if i.instance_type is not None and biggest.get(i.instance_type, 0) > i.count:
            i.count = biggest[i.instance_type]
            parsed.extra.setdefault("model_counts", []).append(i.path)
    for key in ("count_clamped", "weighted_capacity"):
        if key in extra.extra and not missed:
            _merge(parsed, key, extra.extra[key])
    if missed:
        parsed.items.extend(missed)
        parsed.extra.setdefault("model_paths", []).extend(i.path for i in missed)
        for key in ("count_clamped", "weighted_capacity", "original_instance_types"):
            if key in extra.extra:
                _merge(parsed, key, extra.extra[key])
        if any(i.group for i in missed):
            parsed.extra["alternatives"] = True
    return parsed


def _merge(parsed: Parsed, key: str, value: Any) -> None:
    if isinstance(value, dict):
        parsed.extra.setdefault(key, {}).update(value)
    else:
        parsed.extra.setdefault(key, []).extend(value)


#: A string value that could be an instance type (``p5.48xlarge``, ``ml.g5.xlarge``, ``stream.x.y``).
_TYPE_LIKE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9.-]+")
#: Request members whose presence always needs the walk (weights, attribute-based selection).
_WALK_HINTS = ("weight", "instancerequirements", "instancecapabilities")
_MAX_DEPTH = 48


@lru_cache(maxsize=8192)
def _hint(key: str) -> bool:
    low = key.lower()
    return any(h in low for h in _WALK_HINTS)


def _nothing_new(x: Any, have: set[str], depth: int = 0) -> bool:
    """Cheap proof that the walk cannot add anything: every string that could be a type is one the
    shape already read, and nothing is weighted or chosen by attributes (else: walk)."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str) or _hint(k) or not _nothing_new(v, have, depth + 1):
                return False
        return True
    if isinstance(x, list):
        return all(_nothing_new(v, have, depth + 1) for v in x)
    if isinstance(x, str) and "." in x:
        t = x.lower()
        return t.removeprefix("ml.") in have or _TYPE_LIKE.fullmatch(t) is None
    return True
