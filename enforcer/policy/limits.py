"""What every in-process engine refuses before evaluating: an input nested deeper than a fixed depth.

Python's JSON encoder stops at the recursion limit less the frames already on the stack, so how deep an
input could be depended on who called the engine, and the wasm and embedded engines, a few frames apart,
answered differently for a band of depths near it (red team round 23, finding 4). A fixed limit, far
above what the pipeline builds (recorded inputs are at most 6 levels deep) and checked without
recursion, gives every engine and caller the same answer: the Go evaluator's error, a deny.
"""

from __future__ import annotations

from typing import Any

from enforcer.ports import EngineError

#: objects and arrays nested deeper than this are refused (an EngineError: a fail-closed deny)
MAX_INPUT_DEPTH = 64
_CONTAINERS = (dict, list, tuple)
#: a level wider than this is deduplicated (by identity) before the next is walked: a container the
#: pipeline shares, or one that holds itself (a cycle, which JSON cannot carry but Python dicts can), is
#: walked once a level instead of doubling every level (two self-references: 2**64 entries by level 64)
_DEDUPE_WIDER = 4096


def nested_deeper(doc: Any, limit: int = MAX_INPUT_DEPTH) -> bool:
    """Whether ``doc`` holds objects or arrays nested more than ``limit`` levels deep.

    Parameters
    ----------
    doc
        An input document (dicts, lists, tuples and scalars).
    limit
        The deepest nesting allowed; ``doc`` itself, when a dict or list, is level 1.

    Returns
    -------
    bool
        True when some container sits deeper than ``limit`` (walked level by level, no recursion: any
        depth is safe; a walk stops at ``limit`` levels). A container that holds itself is nested
        deeper than any limit: True, after at most ``limit`` levels of distinct containers.
    """
    level = [doc] if isinstance(doc, _CONTAINERS) else []
    depth = 1
    while level:  # one level at a time: the containers at ``depth``
        if depth > limit:
            return True
        below: list[Any] = []
        for value in level:
            below += [
                c
                for c in (value.values() if isinstance(value, dict) else value)
                if isinstance(c, _CONTAINERS)
            ]
        if len(below) > _DEDUPE_WIDER:  # shared containers, once each (the deepest level is the same)
            below = list({id(c): c for c in below}.values())
        level = below
        depth += 1
    return False


def refuse_deep(doc: Any) -> None:
    """Raise the one error every engine gives for an input :func:`nested_deeper` than the limit.

    Raises
    ------
    EngineError
        When ``doc`` nests objects or arrays more than :data:`MAX_INPUT_DEPTH` levels deep.
    """
    if doc is not None and nested_deeper(doc):
        raise EngineError(f"input nested deeper than {MAX_INPUT_DEPTH} levels")
