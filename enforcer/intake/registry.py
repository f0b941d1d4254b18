"""Plugin registry: CloudTrail shapes keyed by (eventSource, eventName), and event-shape detectors.

Both load on demand (issue 16, cold start): a shape module that only registers shapes is imported the
first time a record misses the shapes loaded so far, or anything lists them (:data:`LAZY_SHAPE_MODULES`);
the detector modules other than CloudTrail's when anything reads :data:`DETECTORS`
(:data:`DETECTOR_MODULES`). Detectors are kept in :data:`DETECTOR_ORDER` whatever order their modules were
imported in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any

from enforcer.intake.fields import Parsed
from enforcer.model import Ignored, LaunchRequest

#: ``extractor(request_parameters, path, response_elements)``; also used for CloudFormation properties.
Extractor = Callable[[Mapping[str, Any], str, Mapping[str, Any] | None], Parsed | Ignored]
#: ``handler(event, now)`` for one top-level event shape.
Handler = Callable[[Mapping[str, Any], str | None], LaunchRequest | Ignored]
Predicate = Callable[[Mapping[str, Any]], bool]

#: Shape modules imported on the first miss or listing instead of with the package (the others, EC2's and
#: the coverage table's, are imported by ``enforcer.intake.cloudtrail``).
LAZY_SHAPE_MODULES = (
    "enforcer.intake.cloudtrail_sagemaker",
    "enforcer.intake.cloudtrail_services",
    "enforcer.intake.cloudtrail_updates",
)


_loaded: set[str] = set()


def _import_all(names: tuple[str, ...]) -> None:
    # import_module, not a sys.modules check: a module another thread is importing is in sys.modules
    # before it has registered anything, and import_module waits for it
    if not _loaded.issuperset(names):
        for name in names:
            importlib.import_module(name)
        _loaded.update(names)


def load_shape_modules() -> None:
    """Import every shape module of :data:`LAZY_SHAPE_MODULES` (each registers its shapes once)."""
    _import_all(LAZY_SHAPE_MODULES)


Key = tuple[str, str]


class _Shapes(dict[Key, Extractor]):
    """The shapes registry: a dict that imports the lazy shape modules before it answers a miss or lists
    its keys, so every reader sees every shape, as when they were all imported with the package."""

    def _want(self, key: object) -> None:
        if not dict.__contains__(self, key):
            load_shape_modules()

    def __contains__(self, key: object) -> bool:
        self._want(key)
        return dict.__contains__(self, key)

    def __getitem__(self, key: Key) -> Extractor:
        self._want(key)
        return dict.__getitem__(self, key)

    def get(self, key: Key, default: Any = None) -> Any:
        self._want(key)
        return dict.get(self, key, default)

    def __iter__(self) -> Iterator[Key]:
        load_shape_modules()
        return dict.__iter__(self)

    def __len__(self) -> int:
        load_shape_modules()
        return dict.__len__(self)

    def keys(self) -> KeysView[Key]:  # type: ignore[override]
        load_shape_modules()
        return dict.keys(self)

    def values(self) -> ValuesView[Extractor]:  # type: ignore[override]
        load_shape_modules()
        return dict.values(self)

    def items(self) -> ItemsView[Key, Extractor]:  # type: ignore[override]
        load_shape_modules()
        return dict.items(self)

    def copy(self) -> dict[Key, Extractor]:
        load_shape_modules()
        return dict(dict.items(self))


CLOUDTRAIL_SHAPES: dict[Key, Extractor] = _Shapes()

#: The order detectors are tried in (first match handles the event); a detector not named here goes
#: just before the catch-all ``eventbridge_other``, in registration order.
DETECTOR_ORDER = (
    "eventbridge_cloudtrail",
    "cloudtrail_record",
    "broker_api_gateway",
    "broker_direct",
    "cfn_hook",
    "ec2_state_change",
    "scheduled_sweep",
    "sagemaker_state_change",
    "eventbridge_other",
)
#: Modules registering the detectors other than CloudTrail's, imported when anything reads :data:`DETECTORS`.
DETECTOR_MODULES = (
    "enforcer.intake.broker",
    "enforcer.intake.cfn_hook",
    "enforcer.intake.ec2_events",
    "enforcer.intake.sagemaker_events",
)

Detector = tuple[str, Predicate, Handler]


def load_detector_modules() -> None:
    """Import every module of :data:`DETECTOR_MODULES` (each registers its detectors once)."""
    _import_all(DETECTOR_MODULES)


class _Detectors(list[Detector]):
    """The detectors in order: a list that imports the detector modules before anything reads it, so every
    reader sees every detector (``enforcer.intake.normalise`` tries CloudTrail's first without them)."""

    def __iter__(self) -> Iterator[Detector]:
        load_detector_modules()
        return list.__iter__(self)

    def __len__(self) -> int:
        load_detector_modules()
        return list.__len__(self)

    def __getitem__(self, index: Any) -> Any:
        load_detector_modules()
        return list.__getitem__(self, index)

    def __contains__(self, value: object) -> bool:
        load_detector_modules()
        return list.__contains__(self, value)

    def __reversed__(self) -> Iterator[Detector]:
        load_detector_modules()
        return list.__reversed__(self)

    def index(self, value: Detector, *args: Any) -> int:
        load_detector_modules()
        return list.index(self, value, *args)

    def copy(self) -> list[Detector]:
        load_detector_modules()
        return list(list.__iter__(self))


DETECTORS: list[Detector] = _Detectors()


def loaded_detectors() -> Iterator[Detector]:
    """The detectors registered so far, in order, without importing any module."""
    return list.__iter__(DETECTORS)


def _rank(name: str) -> float:
    if name in DETECTOR_ORDER:
        return float(DETECTOR_ORDER.index(name))
    return DETECTOR_ORDER.index("eventbridge_other") - 0.5


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
            if dict.__contains__(CLOUDTRAIL_SHAPES, key):
                raise ValueError(f"duplicate CloudTrail shape {key}")
            dict.__setitem__(CLOUDTRAIL_SHAPES, key, fn)
        return fn

    return register


def detector(name: str, predicate: Predicate) -> Callable[[Handler], Handler]:
    """Register ``handler`` for events on which ``predicate`` (cheap, never raising) is true.

    Detectors are tried in :data:`DETECTOR_ORDER`; the first match handles the event.
    """

    def register(fn: Handler) -> Handler:
        at = list.__len__(DETECTORS)
        while at > 0 and _rank(list.__getitem__(DETECTORS, at - 1)[0]) > _rank(name):
            at -= 1
        DETECTORS.insert(at, (name, predicate, fn))
        return fn

    return register
