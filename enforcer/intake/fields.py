"""Helpers shared by the intake modules.

CloudTrail spells one request three ways (camelCase query APIs with ``xxxSet.items`` lists,
PascalCase ``<Action>Request`` wrappers whose one-element lists arrive as objects with ``tag``
index fields, lowerCamelCase JSON APIs) and CloudFormation spells it in PascalCase with numbers
as strings. Everything here is tolerant of those spellings and strict about types: a value of
the wrong type raises :class:`~enforcer.model.InputError` naming the field path, never a
``TypeError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from enforcer.model import InputError, LaunchItem

#: Upper bound on any count taken from an event (instances, hosts, target capacity).
MAX_COUNT = 1_000_000

_MISSING: Any = object()
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_TEXT_MAX = 512


@dataclass(slots=True)
class Parsed:
    """What a shape extractor found in one request body."""

    items: list[LaunchItem] = field(default_factory=list)
    instance_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def alternatives(out: Parsed, items: list[LaunchItem], group: str) -> Parsed:
    """Mark ``items`` as alternatives for one capacity (``LaunchItem.group``) when there are several."""
    if len(items) > 1:
        for item in items:
            item.group = group
        out.extra["alternatives"] = True
    return out


def kind(value: Any) -> str:
    """Name the JSON type of ``value`` for error messages (never echoes the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _lookup(d: Mapping[str, Any], key: str) -> tuple[str, Any]:
    v = d.get(key, _MISSING)
    if v is not _MISSING:
        return key, v
    alt = key[0].swapcase() + key[1:]
    v = d.get(alt, _MISSING)
    if v is not _MISSING:
        return alt, v
    low = key.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return k, v
    return key, None


def get(d: Mapping[str, Any], key: str) -> Any:
    """Look ``key`` up in ``d`` ignoring case (``instanceType`` = ``InstanceType``); None when absent."""
    return _lookup(d, key)[1]


def locate(d: Mapping[str, Any], key: str, at: str) -> tuple[Any, str]:
    """Return ``(value, path)`` for ``key`` in ``d``, the path spelling the key as the event does."""
    real, v = _lookup(d, key)
    return v, f"{at}.{real}"


def first(d: Mapping[str, Any], *keys: str) -> tuple[str, Any]:
    """Return ``(key, value)`` for the first of ``keys`` present and not null in ``d`` (key as spelled)."""
    for key in keys:
        real, v = _lookup(d, key)
        if v is not None:
            return real, v
    return keys[0], None


def as_list(x: Any) -> list[Any]:
    """Normalise CloudTrail list spellings into a Python list.

    ``None``/``""`` -> ``[]``; a list -> itself; ``{"items": [...]}`` or ``{"item": ...}`` -> the
    wrapped list; any other object (a one-element list emitted as an object) -> ``[obj]``;
    any other scalar -> ``[scalar]`` (callers validate element types).
    """
    while isinstance(x, dict) and len(x) == 1:  # unwrap {"items": ...} (iteratively: no recursion)
        ((k, v),) = x.items()
        if not (isinstance(k, str) and k.lower() in ("items", "item")):
            break
        x = v
    if x is None or x == "":
        return []
    if isinstance(x, list):
        return x
    return [x]


def objp(d: Mapping[str, Any], key: str, at: str) -> tuple[Mapping[str, Any] | None, str]:
    """Return ``(object, path)`` for ``key`` (object None when absent); InputError for a non-object."""
    real, v = _lookup(d, key)
    path = f"{at}.{real}"
    if v is None or v == "":
        return None, path
    if not isinstance(v, dict):
        raise InputError(f"{path}: expected an object, got {kind(v)}")
    return v, path


def objects(x: Any, at: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Yield ``(path, object)`` for each element of a CloudTrail list that must hold objects."""
    for i, el in enumerate(as_list(x)):
        if not isinstance(el, dict):
            raise InputError(f"{at}[{i}]: expected an object, got {kind(el)}")
        yield f"{at}[{i}]", el


def text(value: Any, at: str, max_len: int = _TEXT_MAX) -> str:
    """Validate a non-empty string of bounded length."""
    if not isinstance(value, str):
        raise InputError(f"{at}: expected a string, got {kind(value)}")
    if not value or len(value) > max_len:
        raise InputError(f"{at}: expected 1..{max_len} characters, got {len(value)}")
    if not value.isprintable():
        raise InputError(f"{at}: contains control characters")
    return value


def opt_text(d: Mapping[str, Any], key: str, at: str, max_len: int = _TEXT_MAX) -> str | None:
    """Optional string field (None when absent or empty)."""
    real, v = _lookup(d, key)
    if v is None or v == "":
        return None
    return text(v, f"{at}.{real}", max_len)


def count(value: Any, at: str) -> int:
    """Validate a count: a non-negative integer, or a decimal string (CloudFormation)."""
    if isinstance(value, bool):
        raise InputError(f"{at}: expected an integer, got boolean")
    if isinstance(value, int):
        n = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.isascii() and value.strip().isdigit() and len(value) <= 12
    ):
        n = int(value)
    else:
        raise InputError(f"{at}: expected an integer, got {kind(value)}")
    if not 0 <= n <= MAX_COUNT:
        raise InputError(f"{at}: count out of range 0..{MAX_COUNT}")
    return n


def opt_count(d: Mapping[str, Any], key: str, at: str) -> int | None:
    """Optional count field (None when absent)."""
    real, v = _lookup(d, key)
    if v is None or v == "":
        return None
    return count(v, f"{at}.{real}")


def largest(*values: int | None, default: int = 1) -> int:
    """The largest of the counts present (the capacity a request can reach), else ``default``."""
    present = [v for v in values if v is not None]
    return max(present) if present else default


def instance_type(value: Any, at: str) -> str:
    """Validate an instance type string (lower-cased; ``p5.48xlarge``, ``ml.p5.48xlarge``, ``p4d``)."""
    if not isinstance(value, str):
        raise InputError(f"{at}: expected an instance type string, got {kind(value)}")
    t = value.lower()
    if _TYPE_RE.fullmatch(t) is None:
        raise InputError(f"{at}: not a valid instance type")
    return t


def type_item(value: Any, at: str, n: int = 1) -> LaunchItem:
    """Build a resolved item from an instance type field."""
    return LaunchItem(instance_type=instance_type(value, at), count=n, path=at)


def ref_item(ref: dict[str, Any], at: str, n: int = 1) -> LaunchItem:
    """Build an unresolved item carrying ``ref`` for the resolver."""
    return LaunchItem(instance_type=None, count=n, ref=ref, path=at)


def template_ref(spec: Mapping[str, Any], at: str) -> dict[str, Any]:
    """Turn a launch template specification (any spelling) into a ``launch_template`` ref."""
    id_key, tid = first(spec, "launchTemplateId", "id")
    name_key, name = first(spec, "launchTemplateName", "name")
    if tid is None and name is None:
        raise InputError(f"{at}: launch template needs an id or a name")
    ref: dict[str, Any] = {"kind": "launch_template"}
    if tid is not None:
        ref["id"] = text(tid, f"{at}.{id_key}", 128)
    if name is not None:
        ref["name"] = text(name, f"{at}.{name_key}", 128)
    version, vpath = locate(spec, "version", at)
    if version is None or version == "":
        ref["version"] = "$Default"
    elif isinstance(version, int) and not isinstance(version, bool):
        ref["version"] = str(version)
    else:
        ref["version"] = text(version, vpath, 32)
    return ref


def _range(spec: Mapping[str, Any], key: str, at: str) -> dict[str, int] | None:
    r, path = objp(spec, key, at)
    if r is None:
        return None
    out = {}
    for bound in ("min", "max"):
        n = opt_count(r, bound, path)
        if n is not None:
            out[bound] = n
    return out


def _strings(spec: Mapping[str, Any], keys: tuple[str, ...], at: str) -> list[str]:
    key, raw = first(spec, *keys)
    out = []
    for i, el in enumerate(as_list(raw)):
        if isinstance(el, dict):  # {"content": "gpu", "tag": 1}
            el = get(el, "content") if get(el, "content") is not None else get(el, "value")
        out.append(text(el, f"{at}.{key}[{i}]", 128).lower())
    return out[:64]


def requirements_ref(spec: Any, at: str) -> dict[str, Any]:
    """Turn attribute-based selection (``InstanceRequirements``) into an ``instance_requirements`` ref.

    ``accelerators`` is True unless the request excludes accelerators (``AcceleratorCount.Max = 0``):
    AWS's defaults allow any accelerator, so plain vCPU/memory ranges can still pick a GPU type.
    ``accelerators_requested`` says whether the request asks for accelerators explicitly.
    """
    if not isinstance(spec, dict):
        raise InputError(f"{at}: expected an object, got {kind(spec)}")
    ref: dict[str, Any] = {"kind": "instance_requirements"}
    types = _strings(spec, ("AcceleratorTypes", "AcceleratorType", "AcceleratorTypeSet"), at)
    makers = _strings(spec, ("AcceleratorManufacturers", "AcceleratorManufacturer"), at)
    names = _strings(spec, ("AcceleratorNames", "AcceleratorName"), at)
    acc_count = _range(spec, "AcceleratorCount", at)
    allowed = _strings(spec, ("AllowedInstanceTypes", "AllowedInstanceType"), at)
    excluded = _strings(spec, ("ExcludedInstanceTypes", "ExcludedInstanceType"), at)
    requested = bool(types or makers or names or (acc_count or {}).get("min", 0) > 0)
    ref["accelerators"] = (acc_count or {}).get("max", 1) != 0
    ref["accelerators_requested"] = requested and ref["accelerators"]
    for k, v in (
        ("accelerator_types", types),
        ("accelerator_manufacturers", makers),
        ("accelerator_names", names),
        ("accelerator_count", acc_count),
        ("allowed_instance_types", allowed),
        ("excluded_instance_types", excluded),
        ("vcpu_count", _range(spec, "VCpuCount", at)),
        ("memory_mib", _range(spec, "MemoryMiB", at)),
    ):
        if v:
            ref[k] = v
    return ref
