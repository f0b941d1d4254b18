"""RFC 8785 (JCS) canonical bytes of a JSON value: what every record hash and checkpoint signs."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import rfc8785


class RecordError(ValueError):
    """The decision cannot be turned into a record (e.g. a value that cannot be canonicalised)."""


# RFC 8785 canonical form, fast paths. Values known to be safe (``trusted``: records from
# ``build_record``, see ``AuditRecord.jcs_safe``) are written by orjson with sorted keys: for those
# values (str keys below U+D800, ints within 2**53, finite floats in [1e-4, 1e16) that are not
# integers, strings without lone surrogates) its bytes are RFC 8785's (the test suite compares them
# with the reference implementation). Otherwise ``json.dumps`` with sorted keys, no spaces and no ASCII
# escaping gives the same bytes as RFC 8785 for strings (same escapes), ints within 2**53,
# true/false/null, floats whose repr has neither an exponent nor a trailing ".0", and keys
# whose code-point order equals their UTF-16 order (true below U+D800). Records made by
# ``build_record`` are known to stay in those cases (``AuditRecord.jcs_safe``); for any other
# value the output is checked (false positives only cost time) and, when it might differ,
# redone by the ``rfc8785`` package, the reference implementation.
_NUMBER_RISK = re.compile(r"(?:^|[:,\[])-?(?:[0-9]+\.0(?=[,\]}]|$)|[0-9.]+[eE]|[0-9]{16,})")
_HIGH_CHAR = re.compile(r"[\ud800-\U0010ffff]")
#: Anything but plain dict/list/str/int/float/bool/None makes orjson raise (then the checked path runs).
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def canonical(value: Any, *, trusted: bool = False) -> bytes:
    """Return the RFC 8785 (JCS) canonical bytes of a JSON value.

    The result is byte-identical to ``rfc8785.dumps(value)`` (the test suite checks it); a
    C-speed fast path is used where it provably gives the same bytes.

    Parameters
    ----------
    value
        A JSON value (dict, list, str, int, float, bool, None).
    trusted
        True only for values known to be fast-path safe (see ``AuditRecord.jcs_safe``).

    Raises
    ------
    RecordError
        When the value holds something JCS cannot represent.
    """
    if trusted:
        try:
            return orjson.dumps(value, option=_ORJSON_OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            pass  # e.g. a lone surrogate: the checked path below decides
    try:
        text: str | None = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and (
        trusted or (_NUMBER_RISK.search(text) is None and (text.isascii() or _HIGH_CHAR.search(text) is None))
    ):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            pass
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise RecordError(f"cannot canonicalise audit record: {exc}") from exc
