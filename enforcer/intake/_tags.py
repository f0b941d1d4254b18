"""Attestation ids carried in resource tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Tag keys whose value is an attestation id (jti); EC2 tag values hold at most 256 characters.
ATTESTATION_TAG_KEYS = frozenset({"gpu-attestation", "gpu:attestation-id"})
MAX_ATTESTATION_REF = 256
_MISSING: Any = object()
_TAG_SCAN_DEPTH = 8
_TAG_SCAN_NODES = 5_000


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
