"""Build the audit record of one decision, modelled on OPA's decision-log event.

A record is a plain JSON object::

    {decision_id, timestamp, path: "gpu/launch/decision", input, result: {effect, reasons},
     policy: {revision, engine, engine_version?}, metrics, trigger: {event_id, source, action, event_time?},
     account_id, region, instance_ids, chip_classes, attestation: {jti, kid, issuer, status}, action,
     mode, enforced, fail_open, masked, erased, seq, prev_hash, hash}

``masked`` and ``erased`` list the JSON pointers (into the record) that were masked or removed,
as OPA does. Personal data is never stored in clear (``enforcer.audit.clean`` masks and erases it);
the canonical bytes are ``enforcer.audit.jcs.canonical``'s (re-exported here with ``RecordError``).
The chain fields (``seq``, ``prev_hash``, ``hash``) are added by the stores (see ``chain``).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from enforcer.audit.clean import Cleaner, clean_value
from enforcer.audit.jcs import RecordError, canonical
from enforcer.model import CHIP_CLASSES, Decision
from enforcer.policy import DECISION_PATH

#: A record larger than this (canonical bytes) has its ``input`` replaced by a digest.
MAX_RECORD_BYTES = 256 * 1024
#: Longest trigger id (event id, source, action) kept.
MAX_ID_CHARS = 1024
_PROCESS_SALT = os.urandom(32)

__all__ = [
    "DECISION_PATH",
    "MAX_ID_CHARS",
    "MAX_RECORD_BYTES",
    "AuditRecord",
    "RecordError",
    "bound_record",
    "build_record",
    "canonical",
    "decision_from_record",
]


class AuditRecord(dict[str, Any]):
    """A record from ``build_record``: a plain dict that also knows whether it is JCS-fast-safe."""

    __slots__ = ("jcs_safe",)

    def __init__(self, *args: Any, jcs_safe: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jcs_safe = jcs_safe


def _plain_id(value: Any) -> str:
    s = str(value)[:MAX_ID_CHARS]
    if not s.isascii():
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def _policy(decision: Decision) -> dict[str, str]:
    out = {"revision": str(decision.policy_revision), "engine": str(decision.engine)}
    if decision.engine_version:  # the OPA server's version, when it reported one (export labels.version)
        out["engine_version"] = _plain_id(decision.engine_version)[:40]
    return out


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
    side = Cleaner(key, None)
    top = side.clean(
        {
            "decision_id": str(decision.decision_id),
            "timestamp": str(decision.timestamp),
            "path": DECISION_PATH,
            "result": {"effect": decision.effect, "reasons": [r.to_dict() for r in decision.reasons]},
            "policy": _policy(decision),
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
        engine_version=str(policy["engine_version"])
        if policy.get("engine_version")
        else fresh.engine_version,
        mode=mode,
        fail_open=bool(record.get("fail_open", False)),
        attestation=fresh.attestation,
        metrics=fresh.metrics,
        input=fresh.input,
    )
