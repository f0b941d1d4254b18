"""Value-driven extraction: every instance type in a CloudTrail request, at any depth.

For an operation of the coverage table the walker knows the *names* of its instance-type members
(``InstanceType``, ``instanceTypes``, ``DeploymentInstanceType`` ...). CloudTrail spells them
lowerCamel or PascalCase, wraps EC2 lists in ``{"items": [...]}`` (``...Set``) and turns one-element
lists into objects, so matching is by name, case-insensitively, at any depth, and list wrappers
are looked through. Around each type the nearest count is taken (``instanceCount``,
``desiredCapacity``, ``targetCapacity`` ...); when the type's list carries weights (weighted fleet
capacity) the count is ``ceil(target / smallest weight)``. A count beyond :data:`MAX_INSTANCES` is
clamped and flagged (``extra["count_clamped"]``), never a reason to drop the launch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from enforcer.coverage.table import Entry
from enforcer.coverage.walker import METADATA_NAME, TYPE_NAME
from enforcer.intake.fields import Parsed, instance_type, kind
from enforcer.model import InputError, LaunchItem

#: Most instances one item may count; larger computed counts are clamped and flagged.
MAX_INSTANCES = 1_000_000
#: Bounds on the walk (CloudTrail caps requestParameters well below these).
MAX_NODES = 50_000
MAX_DEPTH = 48
#: Count-bearing members, nearest object first (lower-cased).
COUNT_KEYS = frozenset(
    {
        "instancecount",
        "count",
        "initialinstancecount",
        "maxinstancecount",
        "mincount",
        "maxcount",
        "desiredcapacity",
        "maxsize",
        "desiredsize",
        "targetcapacity",
        "totaltargetcapacity",
        "targetondemandcapacity",
        "targetspotcapacity",
        "quantity",
        "targetcount",
        "desiredinstancecount",
        "desiredec2instances",
        "maxcapacity",
        "maxworkercount",
        "numberofinstances",
        "desiredinstances",  # AppStream ComputeCapacity
        "desiredsessions",  # AppStream multi-session fleets: at most one instance a session
        "basecapacity",  # CodeBuild reserved-capacity fleets
        "incrementtargetcountby",  # SageMaker HyperPod BatchAddClusterNodes: nodes added to a group
    }
)
#: Child objects of an ancestor where its counts live (``scalingConfig``, ``targetCapacitySpecification``).
_COUNT_HOLDER = re.compile(r"(?i).*(capacity|scaling|count|size).*")
WEIGHT_KEYS = frozenset({"weightedcapacity", "weight"})
#: Lists whose elements are alternatives for one capacity (the launch gets one of them).
ALTERNATIVE_LISTS = frozenset(
    {
        "overrides",
        "instancepreferences",
        "instancepools",
        "instancetypeconfigs",
        "instancedefinitions",
        "launchspecifications",
        "launchtemplateconfigs",
        "instancetypespecifications",
        "allowedinstancetypes",
    }
)


#: Members holding free-form user data (tags, labels, hyperparameters): a key there that
#: looks like an instance-type member is the user's text, never a type AWS reads.
USER_DATA_KEYS = frozenset(
    {"tags", "tag", "tagset", "labels", "environmentvariables", "hyperparameters", "taints"}
)


def _norm(key: str) -> str:
    """Compare member names as CloudTrail varies them: case, EC2 ``...Set`` suffixes, plurals."""
    k = key.lower()
    k = k[:-3] if k.endswith("set") and len(k) > 3 else k
    return k[:-1] if k.endswith("s") and len(k) > 1 else k


_ALTERNATIVES = frozenset(_norm(k) for k in ALTERNATIVE_LISTS)


@lru_cache(maxsize=1024)
def leaf_names(paths: tuple[str, ...]) -> frozenset[str]:
    """Lower-cased member names at the end of coverage paths (``a.b[].InstanceType`` -> ``instancetype``)."""
    out = set()
    for p in paths:
        segs = p.replace("[]", "").replace("{}", "").split(".")
        leaf = segs[-2] if segs[-1] == "Value" and len(segs) > 1 else segs[-1]  # EC2 {"value": type}
        if leaf:
            out.add(_norm(leaf))
    return frozenset(out)


@dataclass(slots=True)
class _Found:
    value: Any  # a type string, or a requirements object (attribute-based selection)
    path: str
    chain: Any  # linked (holder, (parent, ...)) pairs: see ``Chain``
    group: str | None
    asks: bool = False  # a requirements object's accelerator member asks for them (``_selection``)


#: Attribute-based selection objects (``instanceRequirements``, Deadline's ``instanceCapabilities``).
_REQUIREMENTS = re.compile(r"(?i)^instance(requirements|capabilities)$")
#: Members of a requirements object that name its types (EC2/ECS/Lambda/Batch ``allowedInstanceTypes``,
#: SageMaker HyperPod's ``InstanceTypes``), normalised (``_norm``): read as types, not as a selection.
_ALLOWED = re.compile(r"^(allowed|desired|current)?instancetype$")
_EXCLUDED = re.compile(r"^excludedinstancetype$")
#: The path of a value listed by a requirements object's allowed-types member.
_ALLOWED_IN_REQUIREMENTS = re.compile(
    r"(?i)\.instance(requirements|capabilities)\.((allowed|desired|current)?instancetypes?(set)?)(\[\d+\])?$"
)


#: Characters of a type pattern (``m5.*``, ``p*``): AWS expands them, the resolver too (``known_types``).
_WILDCARD = re.compile(r"[*?\[]")


def _listed(req: Mapping[str, Any], pattern: re.Pattern[str], names: frozenset[str]) -> list[str]:
    """Non-empty strings of ``req``'s members in ``names`` whose normalised name matches ``pattern``
    (``[]``, ``{"items": []}``, ``[""]``, ``[null]`` hold none)."""
    return [
        t
        for k, v in req.items()
        if isinstance(k, str) and (n := _key(k)[1]) in names and pattern.match(n) is not None
        for t, _ in _type_values(v)
        if isinstance(t, str) and t
    ]


def _selection(req: Mapping[str, Any], capabilities: bool, names: frozenset[str]) -> bool | None:
    """Whether a requirements object may select accelerators without naming the allowed types.

    None when it cannot: it names its types (a member of ``names`` like ``_ALLOWED`` holding a type the
    walk reads), excludes accelerators (``acceleratorCount.max = 0``), or is Deadline's
    ``instanceCapabilities`` (``capabilities``) with no accelerator member and no type pattern (Deadline
    selects none unless asked). Otherwise whether it asks for them by an accelerator member (count, names,
    types, manufacturers, ``acceleratorCapabilities``): False for an EC2-style ``instanceRequirements`` of
    vCPU and memory only, which AWS's defaults let pick any accelerated type (EC2's own shapes read it so:
    ``fields.requirements_ref``), or one whose allowed types are patterns (``m5.*``: the resolver expands
    them as it does EC2's).
    """
    allowed = _listed(req, _ALLOWED, names)
    patterns = any(_WILDCARD.search(t) for t in allowed)
    if allowed and not patterns:
        return None
    asks = False
    for k, v in req.items():
        if not (isinstance(k, str) and k.lower().startswith("accelerator")) or v in (None, "", [], {}):
            continue
        if (
            isinstance(v, dict)
            and k.lower() == "acceleratorcount"
            and _number(v.get("max", v.get("Max"))) == 0
        ):
            return None
        asks = True
    return None if capabilities and not asks and not patterns else asks


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    if isinstance(value, str) and len(value) <= 24:
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) and f >= 0 else None
    return None


def _level_counts(d: Mapping[str, Any]) -> list[float]:
    found: dict[str, float] = {}
    children = [d] + [v for k, v in d.items() if isinstance(v, dict) and _COUNT_HOLDER.match(str(k))]
    for obj in children:
        for k, v in obj.items():
            if isinstance(k, str) and _key(k)[0] in COUNT_KEYS:
                n = _number(v)
                if n is not None:
                    found[k.lower()] = max(found.get(k.lower(), 0.0), n)
    if not found:
        return []
    split = found.pop("targetondemandcapacity", 0.0) + found.pop("targetspotcapacity", 0.0)
    return [*found.values(), split] if split else list(found.values())


def _count(chain: Any) -> float:
    while chain is not None:
        d, chain = chain
        counts = _level_counts(d)
        if counts:
            return max(counts)
    return 1.0


def _weight(holder: Mapping[str, Any]) -> float | None:
    for k, v in holder.items():
        if isinstance(k, str) and k.lower() in WEIGHT_KEYS:
            w = _number(v)
            if w is not None and w > 0:
                return w
    return None


def _type_values(value: Any) -> Iterable[tuple[Any, str]]:
    """Type strings held by a matched member: a string, ``{"value": s}``, or a (wrapped) list of those."""
    while isinstance(value, dict) and len(value) == 1:
        ((k, v),) = value.items()
        if not (isinstance(k, str) and k.lower() in ("items", "item", "value", "member")):
            break
        value = v
    if isinstance(value, list):
        for i, el in enumerate(value):
            if isinstance(el, dict) and len(el) == 1 and isinstance(next(iter(el.values())), str):
                el = next(iter(el.values()))
            yield el, f"[{i}]"
    else:
        yield value, ""


#: A chain of enclosing objects, nearest first, as a linked pair ``(object, parent chain)``.
Chain = tuple[Mapping[str, Any], Any] | None
_REQUIREMENTS_KEY = "instancerequirements"  # EC2's shape and its kin; the other is Deadline's capabilities
_REQ_KEYS = frozenset({_REQUIREMENTS_KEY, "instancecapabilities"})


@lru_cache(maxsize=8192)
def _key(key: str) -> tuple[str, str, str]:
    """``(lower-cased, normalised, as a path segment)`` spellings of a member name (cached: names repeat
    across events). The segment escapes what does not print (JSON's escapes): a key of the request is
    the sender's text, and a path goes into error messages and log lines whole, on one line."""
    return key.lower(), _norm(key), key if key.isprintable() else json.dumps(key)[1:-1]


#: A value that reads like an instance type (``p5.48xlarge``, ``ml.g5.xlarge``): what a member the
#: table does not list must hold before it is taken as one (``SpotInstanceType = one-time`` is not).
_TYPE_LIKE = re.compile(r"(ml\.)?[a-z][a-z0-9-]*\.[a-z0-9.-]+")


@lru_cache(maxsize=8192)
def _unlisted_type_member(key: str) -> bool:
    """A member named like an instance type (``...InstanceType``) that is not an exclusion or declaration."""
    return TYPE_NAME.match(key) is not None and METADATA_NAME.match(key) is None


def find_types(
    params: Mapping[str, Any], names: frozenset[str], at: str, skip: frozenset[str] = frozenset()
) -> list[_Found]:
    """Every value of a member named in ``names`` (normalised), at any depth of ``params``."""
    found: list[_Found] = []
    stack: list[tuple[Any, str, Chain, str | None, int]] = [(params, at, None, None, 0)]
    nodes = 0
    while stack:
        node, path, chain, group, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise InputError(f"{at}: request too large or too deep to read")
        if isinstance(node, list):
            for i in range(len(node) - 1, -1, -1):  # reversed: popped in document order
                if isinstance(node[i], (dict, list)):
                    stack.append((node[i], f"{path}[{i}]", chain, group, depth + 1))
            continue
        here: Chain = (node, chain)
        members = node.items() if type(node) is dict else list(node.items())  # a dict's view reverses
        for key, value in reversed(members):
            if not isinstance(key, str):
                continue
            low, k, seg = _key(key)
            if low in USER_DATA_KEYS:
                continue
            container = isinstance(value, (dict, list))
            if k in names and k not in skip and (not container or _is_type_list(value)):
                alt = f"{path}.{seg}" if container else group
                for v, suffix in _type_values(value):
                    found.append(_Found(v, f"{path}.{seg}{suffix}", here, alt if suffix else group))
                continue
            if not container:
                if (  # a member the table does not name (yet) that holds a type
                    isinstance(value, str)
                    and k not in skip
                    and _unlisted_type_member(key)
                    and _TYPE_LIKE.fullmatch(value.lower())
                ):
                    found.append(_Found(value, f"{path}.{seg}", here, group))
                continue
            kpath = f"{path}.{seg}"
            if low in _REQ_KEYS and isinstance(value, dict):
                asks = _selection(value, low != _REQUIREMENTS_KEY, names)
                if asks is not None:  # attribute-based selection: GPUs possible
                    found.append(_Found(value, kpath, here, group, asks))
            sub_group = group or kpath if k in _ALTERNATIVES else group
            stack.append((value, kpath, here, sub_group, depth + 1))
    return found


def _is_type_list(value: Any) -> bool:
    vals = list(_type_values(value))
    return bool(vals) and all(not isinstance(v, dict | list) for v, _ in vals)


def extract(
    params: Mapping[str, Any],
    entry: Entry,
    at: str = "requestParameters",
    known: frozenset[str] = frozenset(),
) -> Parsed:
    """Items for every instance type in ``params`` (a CloudTrail request of ``entry``'s operation).

    Parameters
    ----------
    params
        The request parameters (``<Action>Request`` wrapper already removed).
    entry
        The coverage-table entry of the call (its paths name the members to read).
    at
        Path prefix for item paths and error messages.
    known
        Types already read by a hand-written shape: left out unless weighted (no count is computed).

    Returns
    -------
    Parsed
        One item per type value (``ml.`` prefixes kept off the type, as the SageMaker shapes do);
        values in one list of choices share a ``group``.

    Raises
    ------
    InputError
        When a type member holds something that is not a type string.
    """
    names = leaf_names(tuple(entry.paths))
    skip = leaf_names(tuple(entry.ignored_paths)) - names
    out = Parsed()
    found = find_types(params, names, at, skip)
    weights: dict[str | None, float] = {}
    for f in found:
        w = _weight(f.chain[0])
        if w is not None and f.group is not None:
            weights[f.group] = min(weights.get(f.group, w), w)
    clamped: list[str] = []
    for f in found:
        if f.value is None or f.value == "":
            continue
        if isinstance(f.value, dict):  # accelerators chosen by attributes: may be controlled
            n = min(math.ceil(_count(f.chain)), MAX_INSTANCES)  # from its holder up, as a type's
            ref: dict[str, Any] = {
                "kind": "instance_requirements",
                "accelerators": True,
                "accelerators_requested": f.asks,
            }
            allowed = _listed(f.value, _ALLOWED, names)
            if allowed:  # patterns: expanded by the resolver, less the excluded ones
                ref["allowed_instance_types"] = allowed
                excluded = _listed(f.value, _EXCLUDED, names | skip)
                if excluded:
                    ref["excluded_instance_types"] = excluded
            out.items.append(LaunchItem(instance_type=None, count=n, ref=ref, path=f.path, group=f.group))
            continue
        if not isinstance(f.value, str):
            raise InputError(f"{f.path}: expected an instance type string, got {kind(f.value)}")
        if _WILDCARD.search(f.value) and _ALLOWED_IN_REQUIREMENTS.search(f.path):
            continue  # a type pattern: read with its requirements object (a selection, or none allowed)
        t = instance_type(f.value, f.path)
        smallest = weights.get(f.group) if f.group is not None else None
        if not smallest and t.removeprefix("ml.") in known:
            continue
        target = _count(f.chain)
        n = math.ceil(target / smallest) if smallest else math.ceil(target)
        if n > MAX_INSTANCES:
            n = MAX_INSTANCES
            clamped.append(f.path)
        short = t[3:] if t.startswith("ml.") and len(t) > 3 else t
        out.items.append(LaunchItem(instance_type=short, count=n, path=f.path, group=f.group))
        if short != t:
            out.extra.setdefault("original_instance_types", {})[f.path] = t
        if smallest:
            out.extra.setdefault("weighted_capacity", {})[f.path] = {
                "target": target,
                "smallest_weight": smallest,
            }
    if clamped:
        out.extra["count_clamped"] = clamped
    if any(i.group for i in out.items):
        out.extra["alternatives"] = True
    return out
