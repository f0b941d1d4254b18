"""Attestation ids carried in resource tags."""

from __future__ import annotations

from typing import Any

#: Tag keys whose value is an attestation id (jti); EC2 tag values hold at most 256 characters.
ATTESTATION_TAG_KEYS = frozenset({"gpu-attestation", "gpu:attestation-id"})
MAX_ATTESTATION_REF = 256
_MISSING: Any = object()
_TAG_SCAN_DEPTH = 8
_TAG_SCAN_NODES = 5_000


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _TAG_SCAN_NODES


def _scan(node: Any, depth: int, budget: _Budget) -> Any:
    """Depth-first search for an attestation tag value; ``_MISSING`` when none."""
    budget.left -= 1
    if budget.left < 0:
        return _MISSING
    if type(node) is dict:
        key = node.get("key", node.get("Key"))
        if type(key) is str and key.lower() in ATTESTATION_TAG_KEYS:
            return node.get("value", node.get("Value"))
        for k in ATTESTATION_TAG_KEYS:
            if k in node:
                return node[k]
        children: Any = node.values()
    elif type(node) is list:
        children = node
    else:
        return _MISSING
    if depth > 0:
        for child in children:
            if type(child) is dict or type(child) is list:
                found = _scan(child, depth - 1, budget)
                if found is not _MISSING:
                    return found
    return _MISSING


def find_attestation_ref(root: Any) -> tuple[str | None, str | None]:
    """Find an attestation id carried in a tag anywhere under ``root``.

    Recognises ``{"key"|"Key": K, "value"|"Value": V}`` pairs and ``{K: V}`` tag maps where K is
    one of :data:`ATTESTATION_TAG_KEYS`. Returns ``(ref, problem)``: ``ref`` when a usable value
    was found, ``problem`` when a value was found but rejected (not a string, > 256 characters).
    The walk is bounded in depth and in nodes visited.
    """
    found = _scan(root, _TAG_SCAN_DEPTH, _Budget())
    if found is _MISSING:
        return None, None
    if type(found) is not str or not found:
        return None, "attestation tag value is not a string"
    if len(found) > MAX_ATTESTATION_REF:
        return None, f"attestation tag value longer than {MAX_ATTESTATION_REF} characters"
    return found, None
