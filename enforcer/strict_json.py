"""Strict JSON for signed documents: UTF-8, no repeated member, no NaN/Infinity.

Signed JSON (attestation tokens, policy signatures) must mean one thing to every reader: Python's
``json`` keeps the last of two repeated members while other parsers keep the first, so a repeated
member is refused rather than resolved. Callers map ``ValueError`` to their own error.
"""

from __future__ import annotations

import json
import math
from typing import Any


class DuplicateMember(ValueError):
    """A JSON object repeats a member; ``name`` is the first repeated one (cut to 64 characters)."""

    def __init__(self, name: str) -> None:
        self.name = name[:64]
        super().__init__(f"duplicate member {self.name!r}")


def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses an object repeating a member.

    Raises
    ------
    DuplicateMember
        A ``ValueError`` naming the first repeated member (cut to 64 characters).
    """
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateMember(k)
            seen.add(k)
    return out


def reject_constant(name: str) -> Any:
    """``parse_constant`` hook that refuses ``NaN``, ``Infinity`` and ``-Infinity``.

    Raises
    ------
    ValueError
        Always.
    """
    raise ValueError(f"non-finite number {name}")


def loads_strict(data: bytes | str) -> Any:
    """Parse ``data`` strictly: UTF-8, no repeated member, no NaN/Infinity.

    Parameters
    ----------
    data
        The document (bytes are decoded as UTF-8).

    Returns
    -------
    Any
        The parsed value.

    Raises
    ------
    ValueError
        On invalid UTF-8 (``UnicodeDecodeError`` is a ``ValueError``), invalid JSON, a repeated member,
        a non-finite number or a document nested deeper than the decoder's recursion limit.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        return json.loads(
            text,
            object_pairs_hook=reject_duplicates,
            parse_constant=reject_constant,
            parse_float=_finite_float,
        )
    except RecursionError:  # "[[[[...]]]]" past the decoder's recursion limit: invalid here, as documented
        raise ValueError("JSON nested too deeply") from None


def _finite_float(literal: str) -> float:
    # a literal beyond a double (1e999) would be inf: as non-finite as the Infinity constant
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"non-finite number {literal[:32]}")
    return value
