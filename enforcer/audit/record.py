"""Build the audit record of one decision, modelled on OPA's decision-log event.

A record is a plain JSON object::

    {decision_id, timestamp, path: "gpu/launch/decision", input, result: {effect, reasons},
     policy: {revision, engine}, metrics, trigger: {event_id, source, action, event_time?},
     account_id, region, instance_ids, chip_classes, attestation: {jti, kid, issuer, status}, action,
     mode, enforced, fail_open, masked, erased, seq, prev_hash, hash}

``masked`` and ``erased`` list the JSON pointers (into the record) that were masked or removed,
as OPA does. Personal data is never stored in clear: ``end_customer.name``, ``end_customer_name``
and ``end_use`` strings, and any string that looks like a compact JWS, become
``{"sha256": HMAC-SHA256(salt, value)}``; any key named ``token`` is dropped wherever it is.
The chain fields (``seq``, ``prev_hash``, ``hash``) are added by the stores (see ``chain``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from typing import Any

import rfc8785

from enforcer.model import CHIP_CLASSES, Decision
from enforcer.policy import DECISION_PATH

#: A record larger than this (canonical bytes) has its ``input`` replaced by a digest.
MAX_RECORD_BYTES = 256 * 1024
#: Longest trigger id (event id, source, action) kept.
MAX_ID_CHARS = 1024
#: Deepest nesting kept (deeper values become a marker string).
MAX_DEPTH = 100
#: Keys dropped wherever they occur (the raw attestation token must never be logged).
ERASED_KEYS = frozenset({"token"})
#: Keys whose string value is free text about the end customer, masked wherever they occur.
MASKED_KEYS = frozenset({"end_use", "end_customer_name"})

_INT_LIMIT = 2**53 - 1
_PROCESS_SALT = os.urandom(32)


class RecordError(ValueError):
    """The decision cannot be turned into a record (e.g. a value that cannot be canonicalised)."""


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


def _looks_like_jws(s: str) -> bool:
    return s.startswith("eyJ") and len(s) > 40 and s.count(".") == 2 and " " not in s


class _Cleaner:
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

# RFC 8785 canonical form, fast path. ``json.dumps`` with sorted keys, no spaces and no ASCII
# escaping gives the same bytes as RFC 8785 for strings (same escapes), ints within 2**53,
# true/false/null, floats whose repr has neither an exponent nor a trailing ".0", and keys
# whose code-point order equals their UTF-16 order (true below U+D800). Records made by
# ``build_record`` are known to stay in those cases (``AuditRecord.jcs_safe``); for any other
# value the output is checked (false positives only cost time) and, when it might differ,
# redone by the ``rfc8785`` package, the reference implementation.
_NUMBER_RISK = re.compile(r"(?:^|[:,\[])-?(?:[0-9]+\.0(?=[,\]}]|$)|[0-9.]+[eE]|[0-9]{16,})")
_HIGH_CHAR = re.compile(r"[\ud800-\U0010ffff]")


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
    slow = _Cleaner(salt, root)
    out = slow.clean(value)
    return out, sorted(slow.masked), sorted(slow.erased), not slow.exotic


class AuditRecord(dict[str, Any]):
    """A record from ``build_record``: a plain dict that also knows whether it is JCS-fast-safe."""

    __slots__ = ("jcs_safe",)

    def __init__(self, *args: Any, jcs_safe: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jcs_safe = jcs_safe


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


def _plain_id(value: Any) -> str:
    s = str(value)[:MAX_ID_CHARS]
    if not s.isascii():
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def _chip_classes(decision: Decision) -> list[str]:
    seen = {i.chip_class for i in decision.request.items if i.chip_class}
    ordered = [c for c in CHIP_CLASSES if c in seen]
    ordered.extend(sorted(seen.difference(CHIP_CLASSES)))
    return ordered


def _attestation_summary(decision: Decision, input_doc: dict[str, Any] | None) -> dict[str, Any]:
    src: Any = decision.attestation
    if src is None and input_doc is not None:
        src = input_doc.get("attestation")
    if not isinstance(src, dict):
        src = {}
    out: dict[str, Any] = {}
    for key in ("jti", "kid", "issuer", "status"):
        v = src.get(key)
        out[key] = v if v is None or isinstance(v, str) else str(v)
    return out


def build_record(
    decision: Decision, action: str | None = None, *, salt: bytes | None = None
) -> dict[str, Any]:
    """Build the audit record of ``decision`` (without the chain fields).

    Parameters
    ----------
    decision
        The decision to log.
    action
        What was done about it (e.g. ``"respond"``, ``"stop"``, ``"tag"``), None when nothing.
    salt
        Secret salt for masking personal data; None uses a random per-process salt (masked
        values then cannot be correlated across processes).

    Returns
    -------
    dict
        A JSON-ready record; ``seq``, ``prev_hash`` and ``hash`` are not set.
    """
    key = _PROCESS_SALT if salt is None else salt
    req = decision.request
    raw_input: Any = decision.input if decision.input is not None else {"request": req.to_dict()}
    clean_input, masked, erased, input_safe = clean_value(raw_input, key, "input")
    side = _Cleaner(key, None)
    top = side.clean(
        {
            "decision_id": str(decision.decision_id),
            "timestamp": str(decision.timestamp),
            "path": DECISION_PATH,
            "result": {"effect": decision.effect, "reasons": [r.to_dict() for r in decision.reasons]},
            "policy": {"revision": str(decision.policy_revision), "engine": str(decision.engine)},
            "metrics": dict(decision.metrics),
            "account_id": str(req.account_id),
            "region": str(req.region),
            "instance_ids": [str(i) for i in req.instance_ids],
            "chip_classes": _chip_classes(decision),
            "attestation": _attestation_summary(decision, decision.input),
            "action": None if action is None else str(action),
            "mode": str(decision.mode),
            "enforced": bool(decision.enforced),
            "fail_open": bool(decision.fail_open),
        }
    )
    record = AuditRecord(top, jcs_safe=input_safe and not side.exotic)
    # The trigger ids are the idempotency key: kept verbatim (never masked), only made encodable.
    record["trigger"] = {
        "event_id": None if req.event_id is None else _plain_id(req.event_id),
        "source": _plain_id(req.source),
        "action": _plain_id(req.action),
    }
    if req.event_time:  # when the launch happened (CloudTrail eventTime), beside when it was decided
        record["trigger"]["event_time"] = _plain_id(req.event_time)
    record["input"] = clean_input
    record["masked"] = masked + sorted(side.masked)
    record["erased"] = erased + sorted(side.erased)
    return record


def bound_record(record: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
    """Replace an oversized ``input`` by its digest so the record fits MAX_RECORD_BYTES.

    Parameters
    ----------
    record
        The record (with chain fields except ``hash``).
    body
        Its canonical bytes.

    Returns
    -------
    tuple
        The (possibly reduced) record and its canonical bytes.
    """
    if len(body) <= MAX_RECORD_BYTES:
        return record, body
    input_bytes = canonical(record.get("input"))
    reduced = dict(record)
    reduced["input"] = {
        "omitted": "input too large for the audit log",
        "bytes": len(input_bytes),
        "sha256": hashlib.sha256(input_bytes).hexdigest(),
    }
    new_body = canonical(reduced)
    if len(new_body) > MAX_RECORD_BYTES:
        raise RecordError(f"audit record too large ({len(new_body)} bytes) even without its input")
    return reduced, new_body


def decision_from_record(fresh: Decision, record: dict[str, Any]) -> Decision:
    """The decision a logged ``record`` holds, for the same trigger event as ``fresh``.

    A redelivered event must be answered and acted on as it was logged, never re-decided: the
    decision id, time, effect, reasons, mode and policy come from the record; the request (the
    same event, normalised again) comes from ``fresh``. A record whose result cannot be read is
    taken as a deny (fail closed).
    """
    from enforcer.model import Effect, Mode, Reason

    res = record.get("result")
    result: dict[str, Any] = res if isinstance(res, dict) else {}
    effect: Effect = "deny"  # unreadable: fail closed
    if result.get("effect") == "allow":
        effect = "allow"
    elif result.get("effect") == "audit":
        effect = "audit"
    reasons: list[Reason] = []
    raw = result.get("reasons")
    for r in raw if isinstance(raw, list) else []:
        if isinstance(r, dict) and isinstance(r.get("code"), str):
            reasons.append(Reason(r["code"], str(r.get("message", "")), str(r.get("severity") or "medium")))
    if effect == "deny" and not reasons:
        reasons.append(
            Reason("POLICY_ENGINE_UNAVAILABLE", "logged record unreadable; failing closed", "critical")
        )
    pol = record.get("policy")
    policy: dict[str, Any] = pol if isinstance(pol, dict) else {}
    mode: Mode = fresh.mode
    if record.get("mode") == "enforce":
        mode = "enforce"
    elif record.get("mode") == "dryrun":
        mode = "dryrun"
    return Decision(
        decision_id=str(record.get("decision_id") or fresh.decision_id),
        timestamp=str(record.get("timestamp") or fresh.timestamp),
        effect=effect,
        enforced=bool(record.get("enforced", fresh.enforced)),
        reasons=reasons,
        request=fresh.request,
        policy_revision=str(policy.get("revision", fresh.policy_revision)),
        engine=str(policy.get("engine", fresh.engine)),
        mode=mode,
        fail_open=bool(record.get("fail_open", False)),
        attestation=fresh.attestation,
        metrics=fresh.metrics,
        input=fresh.input,
    )
