"""What every in-process engine refuses before evaluating: an input nested deeper than a fixed depth.

Python's JSON encoder stops at the recursion limit less the frames already on the stack, so how deep an
input could be depended on who called the engine, and the wasm and embedded engines, a few frames apart,
answered differently for a band of depths near it (red team round 23, finding 4). A fixed limit, far
above what the pipeline builds (recorded inputs are at most 6 levels deep) and checked without
recursion, gives every engine and caller the same answer: the Go evaluator's error, a deny.
"""

from __future__ import annotations

from typing import Any

#: objects and arrays nested deeper than this are refused (an EngineError: a fail-closed deny)
MAX_INPUT_DEPTH = 64


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
        True when some container sits deeper than ``limit`` (walked iteratively: any depth is safe).
    """
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list, tuple)))
    return False
