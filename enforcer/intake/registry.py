"""Plugin registry: CloudTrail shapes keyed by (eventSource, eventName), and event-shape detectors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from enforcer.intake.fields import Parsed
from enforcer.model import Ignored, LaunchRequest

#: ``extractor(request_parameters, path, response_elements)``; also used for CloudFormation properties.
Extractor = Callable[[Mapping[str, Any], str, Mapping[str, Any] | None], Parsed | Ignored]
#: ``handler(event, now)`` for one top-level event shape.
Handler = Callable[[Mapping[str, Any], str | None], LaunchRequest | Ignored]
Predicate = Callable[[Mapping[str, Any]], bool]

CLOUDTRAIL_SHAPES: dict[tuple[str, str], Extractor] = {}
DETECTORS: list[tuple[str, Predicate, Handler]] = []


def shape(event_source: str, *event_names: str) -> Callable[[Extractor], Extractor]:
    """Register an extractor for CloudTrail records with ``eventSource`` and any of ``event_names``.

    Parameters
    ----------
    event_source
        e.g. ``"ec2.amazonaws.com"``.
    *event_names
        e.g. ``"RunInstances"``.

    Returns
    -------
    Callable
        A decorator that registers the function and returns it unchanged.
    """

    def register(fn: Extractor) -> Extractor:
        for name in event_names:
            key = (event_source, name)
            if key in CLOUDTRAIL_SHAPES:
                raise ValueError(f"duplicate CloudTrail shape {key}")
            CLOUDTRAIL_SHAPES[key] = fn
        return fn

    return register


def detector(name: str, predicate: Predicate) -> Callable[[Handler], Handler]:
    """Register ``handler`` for events on which ``predicate`` (cheap, never raising) is true.

    Detectors are tried in registration order; the first match handles the event.
    """

    def register(fn: Handler) -> Handler:
        DETECTORS.append((name, predicate, fn))
        return fn

    return register
