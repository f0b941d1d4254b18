"""Managed compute families: what runs, how to find it, how to stop it.

A *family* is one kind of managed resource that puts accelerators to work without an EC2 instance
the account can see (a SageMaker training job, an AppStream fleet ...). Each family registers:

- ``sweep(client, limit)``: the resources running now, each as a :class:`ManagedResource`;
- ``describe(client, resource)``: the same resource looked up by name (a state-change event that
  names a resource without its instance type);
- ``remediate(client, resource)``: the service's own stop or scale-to-zero call, returning what was
  done (``stopped``, ``scaled_to_zero``, ``deleted``); None when the service offers none, in which
  case a deny only alerts.

The guard turns a resource into a :class:`~enforcer.model.LaunchRequest` with :func:`to_request`
and dispatches on ``request.extra["managed"]["kind"]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from enforcer.model import LaunchItem, LaunchRequest

#: The ``ref`` kind of an item whose instance type must be read from the managed service.
MANAGED_REF = "managed_resource"


@dataclass(slots=True)
class ManagedResource:
    """One running managed resource.

    ``items`` holds ``(instance_type, count)`` with the type in EC2 spelling (``p5.48xlarge``);
    ``original`` keeps the service's spelling (``ml.p5.48xlarge``, ``stream.graphics.g5.xlarge``);
    ``ids`` holds what the remediation call needs besides the name (farm id, domain id ...).
    """

    kind: str
    name: str
    arn: str | None = None
    items: list[tuple[str | None, int]] = field(default_factory=list)
    original: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    status: str | None = None
    #: The items are choices for one capacity (a list of allowed types), not all at once.
    alternatives: bool = False

    def ref(self) -> dict[str, Any]:
        """The ``managed`` entry of a request's ``extra`` (what the remediation acts on)."""
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.arn:
            out["arn"] = self.arn
        if self.ids:
            out["ids"] = dict(self.ids)
        if self.original:
            out["original_instance_types"] = self.original[:50]
        return out


Sweeper = Callable[[Any, int], Iterator[ManagedResource]]
Describer = Callable[[Any, ManagedResource], ManagedResource | None]
Remedy = Callable[[Any, ManagedResource], str]


@dataclass(frozen=True, slots=True)
class Family:
    """A managed compute family (see the module docstring)."""

    kind: str
    service: str
    sweep: Sweeper
    describe: Describer | None = None
    remediate: Remedy | None = None
    #: The AWS call the remediation makes, or why there is none (README and notifications).
    remedy: str = ""


_FAMILIES: dict[str, Family] = {}
#: Every family by kind, read as ``registry.FAMILIES`` or :func:`families`: the first read imports the
#: modules that register them (:data:`FAMILY_MODULES`), so an EC2 launch's cold start never does.
FAMILIES: dict[str, Family]
FAMILY_MODULES = ("enforcer.managed.fleets", "enforcer.managed.sagemaker")
_imported: list[bool] = []


def families() -> dict[str, Family]:
    """Every registered family by kind (the family modules imported first).

    Returns
    -------
    dict
        ``kind -> Family``, the registry itself.
    """
    if not _imported:  # import_module waits for a module another thread is importing
        for name in FAMILY_MODULES:
            importlib.import_module(name)
        _imported.append(True)
    return _FAMILIES


def __getattr__(name: str) -> Any:
    if name == "FAMILIES":
        return families()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(family: Family) -> Family:
    """Add ``family`` to the registry (one per kind).

    Raises
    ------
    ValueError
        When the kind is already registered.
    """
    if family.kind in _FAMILIES:
        raise ValueError(f"duplicate managed family {family.kind}")
    _FAMILIES[family.kind] = family
    return family


def to_request(
    res: ManagedResource,
    account: str,
    region: str,
    *,
    source: str,
    action: str,
    event_id: str | None,
    event_time: str | None,
) -> LaunchRequest:
    """A request for ``res``: one item per instance type (an unresolved ref when none is known)."""
    items = [
        LaunchItem(t, max(1, n) if t is not None else 1, path=f"{res.kind}:{res.name}")
        if t is not None
        else LaunchItem(
            None, 1, ref={"kind": MANAGED_REF, "resource": res.kind}, path=f"{res.kind}:{res.name}"
        )
        for t, n in res.items
    ] or [LaunchItem(None, 1, ref={"kind": MANAGED_REF, "resource": res.kind}, path=f"{res.kind}:{res.name}")]
    if res.alternatives and len(items) > 1:
        for item in items:
            item.group = f"{res.kind}:{res.name}"
    return LaunchRequest(
        source=source,
        action=action,
        account_id=account,
        region=region,
        items=items,
        event_id=event_id,
        event_time=event_time,
        extra={"managed": res.ref()},
    )


def from_request(request: LaunchRequest) -> ManagedResource | None:
    """The resource a request names in ``extra["managed"]`` (None for other requests)."""
    m = request.extra.get("managed")
    if not isinstance(m, dict) or not isinstance(m.get("kind"), str) or not isinstance(m.get("name"), str):
        return None
    ids = m.get("ids") if isinstance(m.get("ids"), dict) else {}
    return ManagedResource(
        str(m["kind"]),
        str(m["name"]),
        m.get("arn") if isinstance(m.get("arn"), str) else None,
        ids={str(k): str(v) for k, v in (ids or {}).items()},
    )


def ml_type(value: Any) -> str | None:
    """``ml.p5.48xlarge`` -> ``p5.48xlarge`` (None for anything that is not a string type)."""
    if not isinstance(value, str) or not value or value.lower() == "system":
        return None  # Studio's "system" spec runs on no instance of the app's own
    t = value.lower()
    return t[3:] if t.startswith("ml.") and len(t) > 3 else t
