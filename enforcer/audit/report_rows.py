"""One listed decision of the report: what it says, as HTML cells and as a CSV row.

Each row carries why (every reason's code, severity and message: "account 5555…: parent_hq_country=CN"),
who (account, origin country, principal), when (decision time and the trigger's event time), under
which policy (revision, engine) and attestation (issuer, jti, status), what was done, the evidence and
ledger figures, and -- for a record that fails verification -- the verifier's finding, in place.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Iterable
from typing import Any, TextIO

from enforcer.audit.query import LoggedRecord, record_country, record_effect, record_instance_types
from enforcer.audit.report_evidence import evidence_summary

EFFECT_COLORS = {"allow": "#2e7d32", "deny": "#c62828", "audit": "#ef8f00", "unknown": "#757575"}
#: CSV columns (stable: reviewers load them into spreadsheets).
CSV_COLUMNS = (
    "verified",
    "verification_failure",
    "seq",
    "decision_time",
    "event_time",
    "effect",
    "account_id",
    "country",
    "principal",
    "region",
    "instance_types",
    "chip_classes",
    "reason_codes",
    "reason_messages",
    "policy_revision",
    "engine",
    "attestation_issuer",
    "attestation_jti",
    "attestation_status",
    "action",
    "mode",
    "source",
    "event_id",
    "decision_id",
    "evidence",
    "record",
)
#: A cell that starts like a formula is prefixed with ' so a spreadsheet shows it as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _esc(value: Any) -> str:
    return html.escape(_s(value), quote=True)


def reasons_of(rec: dict[str, Any]) -> list[dict[str, str]]:
    """Every reason of a record as ``{code, severity, message}`` strings (malformed entries kept as text)."""
    raw = _d(rec.get("result")).get("reasons")
    out = []
    for r in raw if isinstance(raw, list) else []:
        if isinstance(r, dict):
            out.append({k: _s(r.get(k)) for k in ("code", "severity", "message")})
        else:
            out.append({"code": _s(r), "severity": "", "message": ""})
    return out


def row_of(lr: LoggedRecord, failure: str | None = None) -> dict[str, Any]:
    """The fields the report lists for one record (``failure``: why it does not verify, None if it does)."""
    rec = lr.record
    inp = _d(rec.get("input"))
    req, trig, att, pol = (
        _d(inp.get("request")),
        _d(rec.get("trigger")),
        _d(rec.get("attestation")),
        _d(rec.get("policy")),
    )
    classes = rec.get("chip_classes")
    return {
        "failure": failure,
        "seq": rec.get("seq"),
        "decision_time": rec.get("timestamp"),
        "event_time": trig.get("event_time") or req.get("event_time"),
        "effect": record_effect(rec),
        "account_id": rec.get("account_id"),
        "country": record_country(rec),
        "principal": req.get("principal"),
        "region": rec.get("region"),
        "instance_types": ", ".join(record_instance_types(rec)),
        "chip_classes": ", ".join(_s(c) for c in classes) if isinstance(classes, list) else "",
        "reasons": reasons_of(rec),
        "policy_revision": pol.get("revision"),
        "engine": pol.get("engine"),
        "attestation_issuer": att.get("issuer"),
        "attestation_jti": att.get("jti"),
        "attestation_status": att.get("status"),
        "action": rec.get("action"),
        "mode": rec.get("mode"),
        "source": trig.get("source"),
        "event_id": trig.get("event_id"),
        "decision_id": rec.get("decision_id"),
        "evidence": evidence_summary(rec),
        "record": f"{lr.file}:{lr.line}",
    }


def _line(label: str, value: Any) -> str:
    v = _s(value)
    return f"<div><span class='k'>{_esc(label)}</span> {_esc(v)}</div>" if v else ""


def _time(label: str, value: Any) -> str:
    """A timestamp line that may break between date and time (``<wbr>`` after the ``T``), never inside."""
    v = _s(value)
    if not v:
        return ""
    if len(v) > 40 or " " in v:  # not a timestamp: may wrap anywhere like any other value
        return _line(label, v)
    date, sep, rest = v.partition("T")
    text = f"{_esc(date)}T<wbr>{_esc(rest)}" if sep else _esc(v)
    return f"<div class='t'><span class='k'>{_esc(label)}</span> {text}</div>"


#: Table header of the listed decisions (one column per group; details wrap inside their cell).
HEADERS = ("seq", "when", "effect", "who", "request", "why (reasons)", "policy and attestation", "details")


def row_html(row: dict[str, Any]) -> str:
    """One ``<tr>`` of the decisions table; a row that fails verification is marked in place."""
    color = EFFECT_COLORS.get(_s(row["effect"]), "#757575")
    failure = row.get("failure")
    mark = (
        f"<div class='tamper-note'><b>FAILED VERIFICATION</b> (not counted): {_esc(failure)}</div>"
        if failure
        else ""
    )
    effect = f"<span class='tag' style='background:{color}'>{_esc(row['effect'])}</span>"
    if failure:
        effect += "<div class='tamper-tag'>NOT VERIFIED</div>"
    reasons = "".join(
        f"<div class='reason'><b>{_esc(r['code'])}</b>"
        + (f" <span class='sev'>{_esc(r['severity'])}</span>" if r["severity"] else "")
        + (f"<div class='msg'>{_esc(r['message'])}</div>" if r["message"] else "")
        + "</div>"
        for r in row["reasons"]
    )
    cells = [
        _esc(row["seq"]),
        _time("decided", row["decision_time"]) + _time("event", row["event_time"]),
        effect,
        _line("account", row["account_id"])
        + _line("country", row["country"])
        + _line("principal", row["principal"])
        + _line("region", row["region"]),
        _line("types", row["instance_types"]) + _line("chip class", row["chip_classes"]),
        mark + (reasons or "<span class='muted'>no reason given</span>"),
        _line("revision", row["policy_revision"])
        + _line("engine", row["engine"])
        + _line("attestation issuer", row["attestation_issuer"])
        + _line("attestation jti", row["attestation_jti"])
        + _line("attestation", row["attestation_status"]),
        _line("action", row["action"])
        + _line("mode", row["mode"])
        + _line("source", row["source"])
        + _line("evidence", row["evidence"])
        + _line("decision", row["decision_id"])
        + _line("record", row["record"]),
    ]
    cls = " class='tampered'" if failure else ""
    return f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _cell(value: Any) -> str:
    s = _s(value)
    return "'" + s if s.startswith(_FORMULA_START) else s


def write_csv(fh: TextIO, records: Iterable[LoggedRecord], failures: dict[int, str] | None = None) -> int:
    """Write every record as one CSV row (RFC 4180 with a header line); return how many.

    Parameters
    ----------
    fh
        Text file opened with ``newline=""``.
    records
        The log's records in reading order (every effect, not only denials).
    failures
        ``row_check.check_rows`` of the same records: those rows say ``verified=no`` and why.

    A cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` ...) is prefixed with ``'``.
    """
    bad = failures or {}
    out = csv.writer(fh, lineterminator="\r\n")
    out.writerow(CSV_COLUMNS)
    n = 0
    for pos, lr in enumerate(records):
        row = row_of(lr, bad.get(pos))
        row["verified"] = "no" if row["failure"] else "yes"
        row["verification_failure"] = row["failure"] or ""
        row["reason_codes"] = "; ".join(r["code"] for r in row["reasons"])
        row["reason_messages"] = "; ".join(f"{r['code']}: {r['message']}" for r in row["reasons"])
        out.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        n += 1
    return n
