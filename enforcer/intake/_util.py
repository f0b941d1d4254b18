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
#: Tag keys whose value is an attestation id (jti); EC2 tag values hold at most 256 characters.
ATTESTATION_TAG_KEYS = frozenset({"gpu-attestation", "gpu:attestation-id"})
MAX_ATTESTATION_REF = 256

_MISSING: Any = object()
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_TEXT_MAX = 512
_TAG_SCAN_DEPTH = 8
_TAG_SCAN_NODES = 5_000


@dataclass(slots=True)
class Parsed:
    """What a shape extractor found in one request body."""

    items: list[LaunchItem] = field(default_factory=list)
    instance_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


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
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def get(d: Mapping[str, Any], key: str) -> Any:
    """Look ``key`` up in ``d`` ignoring case (``instanceType`` = ``InstanceType``); None when absent."""
    v = d.get(key, _MISSING)
    if v is not _MISSING:
        return v
    v = d.get(key[0].swapcase() + key[1:], _MISSING)
    if v is not _MISSING:
        return v
    low = key.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def first(d: Mapping[str, Any], *keys: str) -> tuple[str, Any]:
    """Return ``(key, value)`` for the first of ``keys`` present and not null in ``d``."""
    for key in keys:
        v = get(d, key)
        if v is not None:
            return key, v
    return keys[0], None


def as_list(x: Any) -> list[Any]:
    """Normalise CloudTrail list spellings into a Python list.

    ``None``/``""`` -> ``[]``; a list -> itself; ``{"items": [...]}`` or ``{"item": ...}`` -> the
    wrapped list; any other object (a one-element list emitted as an object) -> ``[obj]``;
    any other scalar -> ``[scalar]`` (callers validate element types).
    """
    if x is None or x == "":
        return []
    if isinstance(x, list):
        return x
    if isinstance(x, Mapping):
        if len(x) == 1:
            ((k, v),) = x.items()
            if isinstance(k, str) and k.lower() in ("items", "item"):
                return as_list(v)
        return [x]
    return [x]


def obj(d: Mapping[str, Any], key: str, at: str) -> Mapping[str, Any] | None:
    """Return the object under ``key`` (None when absent); InputError when it is not an object."""
    v = get(d, key)
    if v is None or v == "":
        return None
    if not isinstance(v, Mapping):
        raise InputError(f"{at}.{key}: expected an object, got {kind(v)}")
    return v


def objects(x: Any, at: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Yield ``(path, object)`` for each element of a CloudTrail list that must hold objects."""
    for i, el in enumerate(as_list(x)):
        if not isinstance(el, Mapping):
            raise InputError(f"{at}[{i}]: expected an object, got {kind(el)}")
        yield f"{at}[{i}]", el


def text(value: Any, at: str, max_len: int = _TEXT_MAX) -> str:
    """Validate a non-empty string of bounded length."""
    if not isinstance(value, str):
        raise InputError(f"{at}: expected a string, got {kind(value)}")
    if not value or len(value) > max_len:
        raise InputError(f"{at}: expected 1..{max_len} characters, got {len(value)}")
    return value


def opt_text(d: Mapping[str, Any], key: str, at: str, max_len: int = _TEXT_MAX) -> str | None:
    """Optional string field (None when absent or empty)."""
    v = get(d, key)
    if v is None or v == "":
        return None
    return text(v, f"{at}.{key}", max_len)


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
    v = get(d, key)
    if v is None or v == "":
        return None
    return count(v, f"{at}.{key}")


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
    _, tid = first(spec, "launchTemplateId", "id")
    _, name = first(spec, "launchTemplateName", "name")
    if tid is None and name is None:
        raise InputError(f"{at}: launch template needs an id or a name")
    ref: dict[str, Any] = {"kind": "launch_template"}
    if tid is not None:
        ref["id"] = text(tid, f"{at}.launchTemplateId", 128)
    if name is not None:
        ref["name"] = text(name, f"{at}.launchTemplateName", 128)
    version = get(spec, "version")
    if version is None or version == "":
        ref["version"] = "$Default"
    elif isinstance(version, int) and not isinstance(version, bool):
        ref["version"] = str(version)
    else:
        ref["version"] = text(version, f"{at}.version", 32)
    return ref


def _range(spec: Mapping[str, Any], key: str, at: str) -> dict[str, int] | None:
    r = obj(spec, key, at)
    if r is None:
        return None
    out = {}
    for bound in ("min", "max"):
        n = opt_count(r, bound, f"{at}.{key}")
        if n is not None:
            out[bound] = n
    return out


def _strings(spec: Mapping[str, Any], keys: tuple[str, ...], at: str) -> list[str]:
    key, raw = first(spec, *keys)
    out = []
    for i, el in enumerate(as_list(raw)):
        if isinstance(el, Mapping):  # {"content": "gpu", "tag": 1}
            el = get(el, "content") if get(el, "content") is not None else get(el, "value")
        out.append(text(el, f"{at}.{key}[{i}]", 128).lower())
    return out[:64]


def requirements_ref(spec: Any, at: str) -> dict[str, Any]:
    """Turn attribute-based selection (``InstanceRequirements``) into an ``instance_requirements`` ref.

    ``accelerators`` is True unless the request excludes accelerators (``AcceleratorCount.Max = 0``):
    AWS's defaults allow any accelerator, so plain vCPU/memory ranges can still pick a GPU type.
    ``accelerators_requested`` says whether the request asks for accelerators explicitly.
    """
    if not isinstance(spec, Mapping):
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


def find_attestation_ref(root: Any) -> tuple[str | None, str | None]:
    """Find an attestation id carried in a tag anywhere under ``root``.

    Recognises ``{"key"|"Key": K, "value"|"Value": V}`` pairs and ``{K: V}`` tag maps where K is
    one of :data:`ATTESTATION_TAG_KEYS`. Returns ``(ref, problem)``: ``ref`` when a usable value
    was found, ``problem`` when a value was found but rejected (not a string, > 256 characters).
    The walk is bounded in depth and nodes.
    """
    stack: list[tuple[Any, int]] = [(root, 0)]
    seen = 0
    while stack and seen < _TAG_SCAN_NODES:
        node, depth = stack.pop()
        seen += 1
        if isinstance(node, Mapping):
            key = node.get("key", node.get("Key"))
            found: Any = _MISSING
            if isinstance(key, str) and key.lower() in ATTESTATION_TAG_KEYS:
                found = node.get("value", node.get("Value"))
            else:
                for k in ATTESTATION_TAG_KEYS:
                    if k in node:
                        found = node[k]
                        break
            if found is not _MISSING:
                if not isinstance(found, str) or not found:
                    return None, "attestation tag value is not a string"
                if len(found) > MAX_ATTESTATION_REF:
                    return None, f"attestation tag value longer than {MAX_ATTESTATION_REF} characters"
                return found, None
            if depth < _TAG_SCAN_DEPTH:
                stack.extend((v, depth + 1) for v in node.values() if isinstance(v, Mapping | list))
        elif isinstance(node, list) and depth < _TAG_SCAN_DEPTH:
            stack.extend((v, depth + 1) for v in node if isinstance(v, Mapping | list))
    return None, None
