"""Host built-ins for OPA's wasm target, answering exactly as OPA's Go evaluator (opa-golib, OPA v1.20).

OPA's wasm module leaves ``sprintf``, ``time.parse_rfc3339_ns`` and ``time.format`` to the host, which
dumps each argument with ``opa_json_dump`` and calls :func:`call` with that JSON text; the result is JSON
text for ``opa_json_parse``. What this module cannot answer exactly as Go does raises
:class:`BuiltinError`; the caller then re-decides with the Go evaluator, so raising is always safe.

Numbers keep their literal text: ``opa_json_dump`` gives a number from input or data as written (``5.0``,
``1e3``, ``1.50`` stay so; checked through the real wasm round trip) and Go's ``sprintf`` decides on the
text: ``util.Atoi64`` (at most 19 characters after the sign, an all-zero fraction allowed: ``5.0`` is int64)
gives an int64, else an integer literal a ``*big.Int``, else a literal with a ``.`` that parses as a float64
a float64 (``%v``: shortest ``%g``, exponent when < -4 or >= 6), else the text itself is a string argument
(``1e3``, ``1e21``, ``1.5e400`` print as written). So ``sprintf("%v", [1000000.0])`` is ``1000000``,
``1.0e6`` is ``1e+06``. Other values print as Rego text (``["a", 1]``, ``{"k": 1}``, keys sorted). Measured
against the embedded Go engine: ``tests/test_wasm_builtins.py``.

Unsupported (raises; Go answers): ``sprintf`` verbs other than ``%s %v %d %q %%``, any flag, width,
precision or argument index, and quoting a code point unassigned in Python's Unicode tables (Go's may be
newer); ``time.format`` with a time zone other than ``""``/``"UTC"``, a layout other than ``""``,
``RFC3339``, ``RFC3339Nano`` (by name or as layout text) and ``2006-01-02``, or nanoseconds that are not an
integer literal (an all-zero fraction allowed). JSON cannot tell a Rego set from an array, nor a non-string
object key from a string: callers must not pass either. Numbers the wasm module computed may dump with
another text than Go's (``1.5 * 1e18`` dumps ``1500000000000000000.0``, Go has ``1500000000000000000``;
``%v`` then gives ``1.5e+18``): format input numbers only.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import unicodedata
from typing import Any

NAMES: frozenset[str] = frozenset({"sprintf", "time.parse_rfc3339_ns", "time.format"})

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime.date(1970, 1, 1).toordinal()
_BIG_INT = re.compile(r"[+-]?[0-9]+\Z")
_ZERO_FRACTION_INT = re.compile(r"-?[0-9]+(\.0*)?\Z")
_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_LAYOUTS = {"": _RFC3339_NANO, "RFC3339": _RFC3339, "RFC3339Nano": _RFC3339_NANO}
# RFC3339 as Go's general parser reads it: a 1- or 2-digit hour, a "." or "," fraction; ranges checked later
_STAMP = re.compile(
    rb"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


class BuiltinError(Exception):
    """The built-in cannot be answered here exactly as Go would (or Go would fail): re-decide in Go."""


class _Num(str):
    """A JSON number, kept as its literal text."""


# NaN and Infinity (not JSON) become floats, which every built-in below rejects
_decode = json.JSONDecoder(parse_int=_Num, parse_float=_Num, parse_constant=float).decode


def call(name: str, args_json: list[str]) -> str:
    """Evaluate one built-in as OPA's Go evaluator does.

    Parameters
    ----------
    name
        The built-in's name (one of :data:`NAMES`).
    args_json
        Each argument's JSON text, as ``opa_json_dump`` gives it.

    Returns
    -------
    str
        The result's JSON text.

    Raises
    ------
    BuiltinError
        For an unknown built-in or arity, an input Go rejects, or one not supported here.
    """
    try:
        args = [_decode(a) for a in args_json]
        if name == "sprintf" and len(args) == 2:
            out = json.dumps(_sprintf(args[0], args[1]), ensure_ascii=False)
        elif name == "time.parse_rfc3339_ns" and len(args) == 1 and _is_str(args[0]):
            out = str(_parse_rfc3339_ns(args[0]))
        elif name == "time.format" and len(args) == 1:
            out = json.dumps(_time_format(args[0]), ensure_ascii=False)
        else:
            raise BuiltinError(f"unsupported built-in call or operand type: {name}/{len(args)}")
        out.encode("utf-8")  # a lone surrogate (Go's JSON decoder would have made it U+FFFD)
        return out
    except (ValueError, RecursionError) as exc:  # not JSON, too deep, a lone surrogate
        raise BuiltinError(f"{name}: {exc}") from exc


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and not isinstance(v, _Num)


def _quote(s: str, quote: str = '"') -> str:
    """Go's strconv.Quote (``'`` for a rune literal)."""
    if s.isascii() and s.isprintable() and quote not in s and "\\" not in s:
        return quote + s + quote
    out = [quote]
    for ch in s:
        c = ord(ch)
        cat = unicodedata.category(ch)
        noncharacter = 0xFDD0 <= c <= 0xFDEF or c & 0xFFFE == 0xFFFE  # Cn in every Unicode version
        if cat == "Cs" or (cat == "Cn" and not noncharacter):
            raise BuiltinError(f"U+{c:04X} is a lone surrogate or unassigned in Python's Unicode tables")
        if ch == quote or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable():  # Go's IsPrint: categories L, M, N, P, S and the ASCII space
            out.append(ch)
        elif c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\x{c:02x}")
        elif c < 0x10000:
            out.append(f"\\u{c:04x}")
        else:
            out.append(f"\\U{c:08x}")
    return "".join(out) + quote


def _rego_text(v: Any) -> str:
    """The Rego text of a JSON value (Go's ``ast.Term.String()``)."""
    if isinstance(v, _Num):
        return str(v)
    if isinstance(v, str):
        return _quote(v)
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_rego_text(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-8", "surrogatepass"))
        return "{" + ", ".join(_rego_text(k) + ": " + _rego_text(v[k]) for k in keys) + "}"
    raise BuiltinError(f"not a JSON value: {v!r}")  # NaN, Infinity


def _atoi64(s: str) -> int | None:
    """OPA's ``util.Atoi64``: an int64, allowing an all-zero fraction (``10.00``)."""
    body = s[1:] if s[:1] in ("-", "+") else s
    if not 0 < len(body) <= 19:
        return None
    whole, _, frac = body.partition(".")
    if not whole.isascii() or not whole.isdigit() or "." in frac or frac.strip("0"):
        return None
    n = int(whole) * (-1 if s[0] == "-" else 1)
    return n if _I64_MIN <= n <= _I64_MAX else None


def _go_arg(v: Any) -> tuple[str, Any]:
    """(Go type name, value) of one sprintf argument, as OPA converts it."""
    if isinstance(v, _Num):
        text = str(v)
        n = _atoi64(text)
        if n is not None:
            return "int64", n
        if _BIG_INT.match(text):
            return "*big.Int", int(text)
        if "." in text:
            f = float(text)
            if f not in (float("inf"), float("-inf")):
                return "float64", f
        return "string", text
    if isinstance(v, str):
        return "string", v
    return "string", _rego_text(v)


def _shortest_g(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'g', -1, 64)``."""
    sign = "-" if str(f).startswith("-") else ""
    mant, _, e = repr(abs(f)).partition("e")  # shortest round-trip digits, as Go's
    whole, _, frac = mant.partition(".")
    lead = len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = (whole + frac).strip("0")
    if not digits:
        return sign + "0"
    exp10 = int(e or 0) + len(whole) - 1 - lead  # the decimal exponent of the first significant digit
    if exp10 < -4 or exp10 >= 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return sign + "0." + "0" * (-exp10 - 1) + digits
    rest = digits[exp10 + 1 :]
    return sign + digits[: exp10 + 1].ljust(exp10 + 1, "0") + ("." + rest if rest else "")


def _print_arg(kind: str, v: Any, verb: str) -> str:
    if (kind, verb) in {("string", "s"), ("string", "v"), ("int64", "v"), ("int64", "d")}:
        return str(v)
    if kind == "string" and verb == "q":
        return _quote(str(v))
    if kind == "int64" and verb == "q":  # a quoted rune literal; invalid code points become U+FFFD
        return _quote(chr(v if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF else 0xFFFD), "'")
    if kind == "*big.Int":  # big.Int's own Format
        return str(v) if verb in "dsv" else f"%!{verb}(big.Int={v})"
    if kind == "float64" and verb == "v":
        return _shortest_g(v)
    return f"%!{verb}({kind}={_print_arg(kind, v, 'v')})"


@functools.lru_cache(maxsize=1024)
def _pieces(fmt: str) -> tuple[tuple[str, str], ...]:
    """``fmt`` as (literal text, verb) pairs, the last verb empty; ``%%`` and a trailing ``%`` resolved."""
    pieces, text, i = [], [], 0
    while (j := fmt.find("%", i)) >= 0:
        text.append(fmt[i:j])
        verb, i = fmt[j + 1 : j + 2], j + 2
        if verb == "%":
            text.append("%")
        elif not verb:
            text.append("%!(NOVERB)")
        elif verb in "svdq":
            pieces.append(("".join(text), verb))
            text = []
        else:
            raise BuiltinError(f"sprintf: unsupported verb or flag {verb!r}")
    return (*pieces, ("".join(text) + fmt[i:], ""))


def _sprintf(fmt: Any, arr: Any) -> str:
    """Go's ``fmt.Sprintf`` over OPA's conversion of ``arr`` (see the module docstring)."""
    if not _is_str(fmt):
        raise BuiltinError("sprintf: operand 1 must be a string")
    if not isinstance(arr, list):
        raise BuiltinError("sprintf: operand 2 must be an array")
    args = [_go_arg(v) for v in arr]
    out: list[str] = []
    used = 0
    for text, verb in _pieces(fmt):
        out.append(text)
        if verb and used < len(args):
            out.append(_print_arg(*args[used], verb))
            used += 1
        elif verb:
            out.append(f"%!{verb}(MISSING)")
    if used < len(args):
        extra = ", ".join(f"{k}={_print_arg(k, v, 'v')}" for k, v in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _parse_rfc3339_ns(s: str) -> int:
    """Go's ``time.Parse(time.RFC3339, s)`` (its general parser) then ``UnixNano``, range-checked."""
    m = _STAMP.fullmatch(s.encode("utf-8", "surrogatepass"))
    if m is None:
        raise BuiltinError(f"time.parse_rfc3339_ns: cannot parse {s!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or b"", m.group(8)
    oh, om = (int(zone[1:3]), int(zone[4:6])) if zone != b"Z" else (0, 0)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59 or oh > 24 or om > 60:
        raise BuiltinError(f"time.parse_rfc3339_ns: {s!r}: a field is out of range")
    nsec = int(frac[:9] or b"0") * 10 ** (9 - len(frac[:9]))  # Go keeps 9 digits, drops the rest
    offset = (oh * 60 + om) * 60 * (-1 if zone[:1] == b"-" else 1)
    try:  # year 0 (Python has none) is outside the int64 nanosecond range anyway
        days = datetime.date(year, month, day).toordinal() - _EPOCH
    except ValueError as exc:
        raise BuiltinError(f"time.parse_rfc3339_ns: {s!r}: day or year out of range") from exc
    ns: int = ((days * 86400 + hour * 3600 + minute * 60 + second - offset) * 10**9) + nsec
    if not _I64_MIN <= ns <= _I64_MAX:
        raise BuiltinError("time.parse_rfc3339_ns: time outside of valid range")
    return ns


def _time_format(x: Any) -> str:
    """OPA's ``time.format``: ns, ``[ns]``, ``[ns, tz]`` or ``[ns, tz, layout]`` (UTC, a few layouts)."""
    ns_v, tz, layout = x, "", ""
    if isinstance(x, list):
        ns_v, tz, layout = [*x, "", "", ""][:3]  # Go ignores any element after the third; [] fails below
        if not (_is_str(tz) and _is_str(layout)):
            raise BuiltinError("time.format: time zone and layout must be strings")
    if not isinstance(ns_v, _Num) or not _ZERO_FRACTION_INT.match(ns_v):
        raise BuiltinError("time.format: unsupported nanosecond value")
    ns = int(str(ns_v).partition(".")[0])
    if tz not in ("", "UTC"):
        raise BuiltinError(f"time.format: unsupported time zone {tz!r}")
    if not _I64_MIN <= ns <= _I64_MAX:
        raise BuiltinError("time.format: timestamp too big")
    layout = _LAYOUTS.get(layout, layout)
    secs, frac = divmod(ns, 10**9)
    days, secs = divmod(secs, 86400)
    d = datetime.date.fromordinal(_EPOCH + days)
    date = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    if layout == "2006-01-02":
        return date
    clock = f"{date}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    if layout == _RFC3339:
        return clock + "Z"
    if layout == _RFC3339_NANO:
        return clock + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"
    raise BuiltinError(f"time.format: unsupported layout {layout!r}")
