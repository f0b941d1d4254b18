"""The report's view of issue 14: the evidence and ledger figures behind each reason, and who held
how much compute (as the policy saw it when deciding, from each record's ``input``)."""

from __future__ import annotations

import html
from typing import Any

MAX_OWNERS = 50


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def evidence_summary(rec: dict[str, Any]) -> str:
    """One line: the observed signals, screening hits and ledger owners the decision rested on."""
    inp = _d(rec.get("input"))
    ev, parts = _d(inp.get("evidence")), []
    caller = _d(ev.get("caller"))
    if caller.get("country"):
        parts.append(f"caller {caller.get('ip')} {caller['country']} ({caller.get('source')})")
    contact = _d(ev.get("contact"))
    if contact.get("country"):
        parts.append(f"contact {contact['country']}")
    share = _d(ev.get("call_share"))
    shares = _d(share.get("shares"))
    if shares:
        top = sorted(shares.items(), key=lambda kv: -_num(kv[1]))[:3]
        parts.append("calls " + ", ".join(f"{c} {_num(s):.0%}" for c, s in top) + f" of {share.get('total')}")
    for hit in _d(inp.get("screening")).get("hits") or []:
        h = _d(hit)
        parts.append(f"screening {h.get('entry')} [{h.get('list')}] {h.get('score')}")
    tpp = _num(_d(inp.get("request")).get("total_tpp"))
    for owner in _d(inp.get("ledger")).get("owners") or []:
        o = _d(owner)
        if _num(o.get("running_tpp")) or tpp:
            after = _num(o.get("running_tpp")) + tpp
            parts.append(f"{o.get('kind')} {str(o.get('owner'))[:24]} {after:,.0f} TPP running")
    return "; ".join(parts)


def note_owners(owners: dict[str, dict[str, Any]], rec: dict[str, Any]) -> None:
    """Fold one record's ledger figures into ``owners`` (peak running TPP after each decision)."""
    inp = _d(rec.get("input"))
    tpp = _num(_d(inp.get("request")).get("total_tpp"))
    effect = _d(rec.get("result")).get("effect")
    for owner in _d(inp.get("ledger")).get("owners") or []:
        o = _d(owner)
        key = f"{o.get('kind')}:{o.get('owner')}"
        row = owners.setdefault(
            key,
            {
                "kind": o.get("kind"),
                "owner": o.get("owner"),
                "label": o.get("label") or "",
                "peak": 0.0,
                "tpp_hours": 0.0,
                "decisions": 0,
                "denied": 0,
            },
        )
        row["peak"] = max(row["peak"], _num(o.get("running_tpp")) + tpp)
        row["tpp_hours"] = max(row["tpp_hours"], _num(o.get("tpp_hours")))
        row["decisions"] += 1
        row["denied"] += effect == "deny"


def owners_html(owners: dict[str, dict[str, Any]]) -> str:
    """The "compute per beneficial owner" section (empty when no record carried ledger figures)."""
    if not owners:
        return ""
    rows = sorted(owners.values(), key=lambda r: (-r["peak"], str(r["kind"]), str(r["owner"])))[:MAX_OWNERS]
    out = [
        "<h2>Compute per beneficial owner (ledger figures the policy saw)</h2><div class='tablewrap'>",
        "<table class='counts'><thead><tr><th>kind</th><th>owner</th><th>label</th>"
        "<th>peak running TPP</th><th>TPP-hours</th><th>decisions</th><th>denied</th></tr></thead><tbody>",
    ]
    for r in rows:
        out.append(
            f"<tr><td>{_esc(r['kind'])}</td><td>{_esc(r['owner'])}</td><td>{_esc(r['label'])}</td>"
            f"<td class='num'>{r['peak']:,.0f}</td><td class='num'>{r['tpp_hours']:,.0f}</td>"
            f"<td class='num'>{r['decisions']}</td><td class='num'>{r['denied']}</td></tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)
