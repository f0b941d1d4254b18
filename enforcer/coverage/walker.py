"""Walk botocore's service models for operations whose input carries an instance type.

An input member carries an instance type when its name says so (``InstanceType``,
``InstanceTypes``, ``instanceType``, ``TrainingInstanceType``, ``HostInstanceType`` ...) or when
its string shape (or the string members of its list) is an enum of ``ml.*`` types. The search goes
to any depth through structures, lists and maps, so types inside preference, pool and override
lists are found (``ResourceConfig.InstancePreferences[].InstanceType``).

Each path is given a *role*: ``launch`` (a type the call may run) or ``metadata`` (exclusion
lists, "supported types" declarations, filters and enums that are not types at all, such as
``SpotInstanceType = one-time|persistent``). Only ``launch`` paths are extracted from requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

#: A member name that names an instance type (or a list of them).
TYPE_NAME = re.compile(r"(?i)^[a-z0-9]*instancetypes?$")
#: Members that mention types without asking for them (exclusions, declarations, filters).
METADATA_NAME = re.compile(r"(?i)^(excluded|unsupported|supported|intended).*|.*filter.*|^resourceaws.*")
#: Enum values that make a string member an instance-type member even when its name does not.
_ML_ENUM = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9-]+$")
_MAX_DEPTH = 24


@dataclass(slots=True)
class TypePath:
    """Where one instance-type member sits in an operation's input."""

    path: str
    role: str  # "launch" | "metadata"
    enum: tuple[str, ...] = ()


@dataclass(slots=True)
class TypeOperation:
    """One operation whose input carries at least one instance-type member."""

    service: str
    operation: str
    event_source: str
    protocol: str
    paths: list[TypePath] = field(default_factory=list)

    @property
    def launch_paths(self) -> list[str]:
        return [p.path for p in self.paths if p.role == "launch"]


#: CloudTrail ``eventSource`` where it is not ``<signingName>.amazonaws.com``.
EVENT_SOURCE_OVERRIDES = {"opensearch": "es.amazonaws.com"}


def event_source(service: str, metadata: dict[str, Any]) -> str:
    """The CloudTrail ``eventSource`` of a botocore service model (from its metadata)."""
    if service in EVENT_SOURCE_OVERRIDES:
        return EVENT_SOURCE_OVERRIDES[service]
    prefix = metadata.get("signingName") or metadata.get("endpointPrefix") or service
    return f"{prefix}.amazonaws.com"


class ShapeIndex:
    """Raw shapes of one service model (``service-2.json``), walked without building botocore objects."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.shapes: dict[str, dict[str, Any]] = model.get("shapes", {})

    def enum_of(self, ref: dict[str, Any]) -> tuple[str, ...]:
        shape = self.shapes.get(ref.get("shape", ""), {})
        if shape.get("type") == "list":
            shape = self.shapes.get(shape.get("member", {}).get("shape", ""), {})
        if shape.get("type") != "string":
            return ()
        return tuple(str(v) for v in shape.get("enum", ()))

    def is_text(self, ref: dict[str, Any]) -> bool:
        """Whether the member is a string or a list of strings (the only shapes a type can take)."""
        shape = self.shapes.get(ref.get("shape", ""), {})
        if shape.get("type") == "list":
            shape = self.shapes.get(shape.get("member", {}).get("shape", ""), {})
        return shape.get("type") == "string"

    def is_value_wrapper(self, ref: dict[str, Any]) -> bool:
        """A structure whose only member is a string ``Value`` (EC2's ``AttributeValue``)."""
        shape = self.shapes.get(ref.get("shape", ""), {})
        members = shape.get("members", {})
        return (
            shape.get("type") == "structure" and list(members) == ["Value"] and self.is_text(members["Value"])
        )

    def walk(self, name: str, path: str, seen: frozenset[str], depth: int) -> Iterator[TypePath]:
        shape = self.shapes.get(name)
        if shape is None or depth > _MAX_DEPTH or name in seen:
            return
        kind = shape.get("type")
        if kind == "structure":
            seen = seen | {name}
            for mname, ref in shape.get("members", {}).items():
                p = f"{path}.{mname}" if path else mname
                enum = self.enum_of(ref)
                if TYPE_NAME.match(mname) and self.is_value_wrapper(ref):  # EC2 AttributeValue {Value}
                    yield TypePath(f"{p}.Value", _role(mname, ()))
                elif not self.is_text(ref):  # SpotOptions.SingleInstanceType is a boolean
                    yield from self.walk(ref["shape"], p, seen, depth + 1)
                elif TYPE_NAME.match(mname) or any(_ML_ENUM.match(v) for v in enum):
                    yield TypePath(p, _role(mname, enum), enum)
                else:
                    yield from self.walk(ref["shape"], p, seen, depth + 1)
        elif kind == "list":
            yield from self.walk(shape["member"]["shape"], f"{path}[]", seen, depth + 1)
        elif kind == "map":
            yield from self.walk(shape["value"]["shape"], f"{path}{{}}", seen, depth + 1)


def _role(name: str, enum: tuple[str, ...]) -> str:
    if METADATA_NAME.match(name):
        return "metadata"
    if enum and not any("." in v for v in enum):  # one-time|persistent, GRAPHICS ...: not a type
        return "metadata"
    return "launch"


def operation_paths(model: dict[str, Any], operation: str) -> list[TypePath]:
    """Every instance-type member of one operation's input (empty when none)."""
    op = model.get("operations", {}).get(operation, {})
    root = op.get("input", {}).get("shape")
    if root is None:
        return []
    return list(ShapeIndex(model).walk(root, "", frozenset(), 0))


@cache
def load_model(service: str) -> dict[str, Any]:
    """The raw ``service-2`` model of ``service`` from the installed botocore (cached; do not mutate)."""
    import botocore.loaders

    model: dict[str, Any] = botocore.loaders.create_loader().load_service_model(service, "service-2")
    return model


def walk_models(services: list[str] | None = None) -> list[TypeOperation]:
    """Every operation of the installed botocore service models that carries an instance type.

    Parameters
    ----------
    services
        Restrict the walk to these services (all installed models when None).

    Returns
    -------
    list of TypeOperation
        Sorted by service and operation.
    """
    import botocore.loaders

    loader = botocore.loaders.create_loader()
    names = services if services is not None else loader.list_available_services("service-2")
    out: list[TypeOperation] = []
    for service in sorted(names):
        model = loader.load_service_model(service, "service-2")
        index = ShapeIndex(model)
        md = model.get("metadata", {})
        source = event_source(service, md)
        for op in sorted(model.get("operations", {})):
            root = model["operations"][op].get("input", {}).get("shape")
            paths = list(index.walk(root, "", frozenset(), 0)) if root else []
            if paths:
                out.append(TypeOperation(service, op, source, str(md.get("protocol", "")), paths))
    return out
