"""The cleaning walk of an audit record: plain JSON, bounded depth, personal data masked, tokens erased.

``end_customer.name``, ``end_customer_name`` and ``end_use`` strings, and any string that looks like a
compact JWS, become ``{"sha256": HMAC-SHA256(salt, value)}``; any key named ``token`` is dropped
wherever it is. The walk also tells whether the result may take the fast canonical path
(:func:`enforcer.audit.jcs.canonical` with ``trusted=True``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

#: Deepest nesting kept (deeper values become a marker string).
MAX_DEPTH = 100
#: Keys dropped wherever they occur (the raw attestation token must never be logged).
ERASED_KEYS = frozenset({"token"})
#: Keys whose string value is free text about the end customer, masked wherever they occur.
MASKED_KEYS = frozenset({"end_use", "end_customer_name"})

_INT_LIMIT = 2**53 - 1


def mask_value(value: str, salt: bytes) -> dict[str, str]:
    """Return the masked form of a personal-data string.

    Parameters
    ----------
    value
        The clear text.
    salt
        Secret salt (HMAC key); the same salt gives the same digest, so masked values can be
        correlated without being revealed.

    Returns
    -------
    dict
        ``{"sha256": hex}`` where hex is HMAC-SHA256(salt, value).
    """
    return {"sha256": hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()}


def _encodable_key(key: str) -> str:
    """A key holding a lone surrogate (JSON allows ``"\\ud800"``; UTF-8 cannot carry it) written as its
    escape text, so the record can still be encoded and logged (a lost record is worse than a changed key)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return key


def _looks_like_jws(s: str) -> bool:
    return s.startswith("eyJ") and len(s) > 40 and s.count(".") == 2 and " " not in s


class Cleaner:
    """One pass over a JSON-like value: plain JSON types, bounded, personal data masked.

    Plain ASCII strings, booleans and None are handled inline in the container loops (the
    hot path); everything else goes through ``_scalar``/``clean``/``_odd``.
    """

    __slots__ = ("erased", "exotic", "masked", "path", "salt")

    def __init__(self, salt: bytes, root: str | None) -> None:
        self.salt = salt
        self.exotic = False  # True when the fast canonical path cannot be trusted
        self.path: list[str] = [] if root is None else [root]
        self.masked: list[str] = []
        self.erased: list[str] = []

    def _pointer(self, key: str | None = None) -> str:
        parts = self.path if key is None else [*self.path, key]
        return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)

    def _mask(self, value: str, key: str | None = None) -> dict[str, str]:
        self.masked.append(self._pointer(key))
        return mask_value(value, self.salt)

    def _str(self, value: str, key: str | None = None) -> Any:
        if _looks_like_jws(value):
            return self._mask(value, key)
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                value = value.encode("utf-8", "replace").decode("utf-8")
        return value

    def _float(self, value: float) -> Any:
        if not math.isfinite(value):
            return str(value)
        if value.is_integer():
            if -_INT_LIMIT <= value <= _INT_LIMIT:
                return int(value)  # same canonical bytes as the float (RFC 8785 prints 2.0 as 2)
            self.exotic = True  # repr() would print a trailing ".0" or an exponent
        elif not _FLOAT_SAFE_MIN <= abs(value) < _FLOAT_SAFE_MAX:
            self.exotic = True
        return value

    def _scalar(self, value: Any, key: str | None = None) -> Any:
        t = type(value)
        if t is str:
            return self._str(value, key)
        if t is int:
            return value if -_INT_LIMIT <= value <= _INT_LIMIT else str(value)
        if t is float:
            return self._float(value)
        return value  # bool, None

    def clean(self, value: Any, depth: int = 0) -> Any:
        t = type(value)
        if t is dict:
            return self._dict(value, depth) if depth < MAX_DEPTH else _TOO_DEEP
        if t is list or t is tuple:
            return self._list(value, depth) if depth < MAX_DEPTH else _TOO_DEEP
        if t in _SCALARS:
            return self._scalar(value)
        return self._odd(value, depth)

    def _odd(self, value: Any, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            return _TOO_DEEP
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self._scalar(int(value))
        if isinstance(value, float):
            return self._scalar(float(value))
        if isinstance(value, str):
            return self._scalar(str(value))
        if isinstance(value, dict):
            return self._dict(dict(value), depth)
        if isinstance(value, (list, tuple)):
            return self._list(list(value), depth)
        if isinstance(value, (set, frozenset)):
            return sorted(str(v) for v in value)
        if isinstance(value, (bytes, bytearray)):
            return {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value)}
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return self.clean(to_dict(), depth)
        return str(value)

    def _list(self, value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        out: list[Any] = []
        path = self.path
        for i, v in enumerate(value):
            t = type(v)
            if t is str:
                out.append(v if v.isascii() and not v.startswith("eyJ") else self._str(v, str(i)))
            elif t is int:
                out.append(v if -_INT_LIMIT <= v <= _INT_LIMIT else str(v))
            elif t is bool or v is None:
                out.append(v)
            elif t is float:
                out.append(self._float(v))
            else:
                path.append(str(i))
                out.append(self.clean(v, depth + 1))
                path.pop()
        return out

    def _dict(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        path = self.path
        for k, v in value.items():
            key = k if type(k) is str else str(k)
            if key in _SPECIAL_KEYS:
                self._special(out, key, v, depth)
                continue
            if not key.isascii() and max(key) >= "\ud800":
                self.exotic = True
                key = _encodable_key(key)
            t = type(v)
            if t is str:
                out[key] = v if v.isascii() and not v.startswith("eyJ") else self._str(v, key)
            elif t is int:
                out[key] = v if -_INT_LIMIT <= v <= _INT_LIMIT else str(v)
            elif t is bool or v is None:
                out[key] = v
            elif t is float:
                out[key] = self._float(v)
            else:
                path.append(key)
                out[key] = self.clean(v, depth + 1)
                path.pop()
        return out

    def _special(self, out: dict[str, Any], key: str, v: Any, depth: int) -> None:
        if key in ERASED_KEYS:
            self.erased.append(self._pointer(key))
            return
        if key in MASKED_KEYS and isinstance(v, str):
            out[key] = self._mask(v, key)
            return
        self.path.append(key)
        if key == "end_customer" and isinstance(v, dict) and isinstance(v.get("name"), str):
            rest = dict(v)
            name = rest.pop("name")
            cleaned = self._dict(rest, depth + 1) if depth + 1 < MAX_DEPTH else {}
            cleaned["name"] = self._mask(name, "name")
            out[key] = cleaned
        else:
            out[key] = self.clean(v, depth + 1)
        self.path.pop()


_FLOAT_SAFE_MIN = 1e-4  # repr() of floats in [1e-4, 1e16) has no exponent
_FLOAT_SAFE_MAX = 1e16
_SCALARS = frozenset({str, int, float, bool, type(None)})
_TOO_DEEP = "[truncated: nested too deep]"
_SPECIAL_KEYS = ERASED_KEYS | MASKED_KEYS | {"end_customer"}


def clean_value(value: Any, salt: bytes, root: str) -> tuple[Any, list[str], list[str], bool]:
    """Return ``value`` as plain JSON with personal data masked and tokens erased.

    Parameters
    ----------
    value
        Any JSON-like value (dicts, lists, scalars; other objects are converted).
    salt
        Masking salt.
    root
        JSON-pointer segment of ``value`` inside the record (e.g. ``"input"``).

    Returns
    -------
    tuple
        ``(clean, masked_pointers, erased_pointers, jcs_safe)``; pointers are sorted.
    """
    slow = Cleaner(salt, root)
    out = slow.clean(value)
    return out, sorted(slow.masked), sorted(slow.erased), not slow.exotic
