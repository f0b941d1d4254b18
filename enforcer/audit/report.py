"""Self-contained HTML report of the decision log (``enforcer audit report --html FILE``).

One file with inline CSS, inline SVG charts and a few lines of inline JavaScript (a filter
box); no external URL, and a Content-Security-Policy that forbids loading anything. Every
value taken from the log is HTML-escaped.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enforcer.audit.query import (
    LoggedRecord,
    parse_time,
    record_country,
    record_effect,
    record_instance_types,
    record_reasons,
)
from enforcer.audit.report_evidence import evidence_summary, note_owners, owners_html
from enforcer.audit.verify import VerifyReport

#: Most launches listed in the table (the counts always cover everything).
MAX_LISTED = 2000
EFFECT_COLORS = {"allow": "#2e7d32", "deny": "#c62828", "audit": "#ef8f00", "unknown": "#757575"}
_BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
_MAX_BARS = 60


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _short(value: str, n: int = 40) -> str:
    return value if len(value) <= n else value[: n - 1] + "…"


@dataclass(slots=True)
class ReportData:
    """Aggregates over the log."""

    total: int = 0
    effects: Counter[str] = field(default_factory=Counter)
    countries: Counter[str] = field(default_factory=Counter)
    chip_classes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    fail_open: int = 0
    dryrun: int = 0
    times: list[tuple[float, str]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)
    not_listed: int = 0
    #: Ledger figures per beneficial owner (issue 14, ``report_evidence``).
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)


def collect(records: Iterable[LoggedRecord]) -> ReportData:
    """Aggregate counts, the timeline points and the denied/audited launches."""
    data = ReportData()
    for lr in records:
        rec = lr.record
        data.total += 1
        effect = record_effect(rec)
        data.effects[effect] += 1
        country = record_country(rec)
        data.countries[country] += 1
        classes = rec.get("chip_classes")
        for c in classes if isinstance(classes, list) and classes else ["none"]:
            data.chip_classes[str(c)] += 1
        codes = record_reasons(rec)
        for code in codes:
            data.reasons[code] += 1
        if rec.get("fail_open") is True:
            data.fail_open += 1
        if rec.get("mode") == "dryrun":
            data.dryrun += 1
        t = parse_time(rec.get("timestamp"))
        if t is not None:
            data.times.append((t, effect))
        note_owners(data.owners, rec)
        if effect in ("deny", "audit"):
            if len(data.listed) >= MAX_LISTED:
                data.not_listed += 1
                continue
            trig = rec.get("trigger") if isinstance(rec.get("trigger"), dict) else {}
            assert isinstance(trig, dict)
            data.listed.append(
                {
                    "seq": rec.get("seq"),
                    "timestamp": rec.get("timestamp"),
                    "effect": effect,
                    "account": rec.get("account_id"),
                    "country": country,
                    "region": rec.get("region"),
                    "chips": ", ".join(str(c) for c in classes) if isinstance(classes, list) else "",
                    "types": ", ".join(record_instance_types(rec)),
                    "reasons": ", ".join(codes),
                    "evidence": evidence_summary(rec),
                    "action": rec.get("action") or "",
                    "mode": rec.get("mode"),
                    "source": trig.get("source"),
                    "decision_id": rec.get("decision_id"),
                    "where": f"{lr.file}:{lr.line}",
                }
            )
    return data


def _bar_chart(title: str, counts: list[tuple[str, int]], color: str | dict[str, str]) -> str:
    counts = counts[:20]
    row, label_w, bar_w = 24, 200, 280
    height = max(row * len(counts), row) + 8
    top = max((c for _, c in counts), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{label_w + bar_w + 70}" '
        f'height="{height}" viewBox="0 0 {label_w + bar_w + 70} {height}">'
    ]
    if not counts:
        parts.append(f'<text x="4" y="16" class="muted">{esc("no data")}</text>')
    for i, (label, count) in enumerate(counts):
        y = 4 + i * row
        w = max(1, round(bar_w * count / top))
        fill = color.get(label, "#546e7a") if isinstance(color, dict) else color
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{esc(_short(label, 24))}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 8}" fill="{esc(fill)}" rx="2">'
            f"<title>{esc(label)}: {count}</title></rect>"
            f'<text x="{label_w + w + 6}" y="{y + 15}">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fmt_time(t: float, bucket: int) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%d" if bucket >= 86400 else "%m-%d %H:%M")


def _span(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} day(s)"


def _timeline(times: list[tuple[float, str]]) -> str:
    width, height, left, bottom = 1080, 240, 50, 40
    if not times:
        return (
            f'<svg class="chart" width="{width}" height="40"><text x="4" y="20">{esc("no data")}</text></svg>'
        )
    lo = min(t for t, _ in times)
    hi = max(t for t, _ in times)
    span = max(hi - lo, 1.0)
    bucket = next((b for b in _BUCKETS if span / b <= _MAX_BARS), _BUCKETS[-1])
    start = lo - (lo % bucket)
    n = int((hi - start) // bucket) + 1
    bins: list[Counter[str]] = [Counter() for _ in range(n)]
    for t, effect in times:
        bins[min(n - 1, int((t - start) // bucket))][effect] += 1
    top = max(sum(b.values()) for b in bins) or 1
    plot_w, plot_h = width - left - 50, height - bottom - 10
    bw = plot_w / n
    parts = [
        f'<svg class="chart" role="img" aria-label="decisions over time" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{left + plot_w}" y2="{10 + plot_h}" stroke="#999"/>',
        f'<line x1="{left}" y1="10" x2="{left}" y2="{10 + plot_h}" stroke="#999"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end">{top}</text>',
        f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end">0</text>',
    ]
    for i, b in enumerate(bins):
        x = left + i * bw + 1
        y: float = 10 + plot_h
        label = _fmt_time(start + i * bucket, bucket)
        for effect in ("allow", "audit", "deny", "unknown"):
            c = b.get(effect, 0)
            if not c:
                continue
            h = plot_h * c / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{EFFECT_COLORS[effect]}"><title>{esc(label)} {esc(effect)}: {c}</title></rect>'
            )
    ticks = min(n, 8)
    for k in range(ticks):
        i = round(k * (n - 1) / max(ticks - 1, 1))
        x = left + i * bw + bw / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height - 18}" text-anchor="middle">'
            f"{esc(_fmt_time(start + i * bucket, bucket))}</text>"
        )
    parts.append(
        f'<text x="{width - 10}" y="{height - 2}" text-anchor="end" class="muted">'
        f"{esc('one bar = ' + _span(bucket))}"
        "</text></svg>"
    )
    return "".join(parts)


def _count_table(counts: Counter[str]) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td class='num'>{v}</td></tr>" for k, v in counts.most_common())
    return f"<table class='counts'><tbody>{rows or '<tr><td>none</td><td></td></tr>'}</tbody></table>"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1c2430;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#6b7785;fill:#6b7785}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:24px}.allow b{color:#2e7d32}.deny b{color:#c62828}.audit b{color:#ef8f00}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.panel{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:12px 16px}
svg.chart{display:block;font-size:12px;fill:#1c2430;max-width:100%;height:auto}svg.chart text{fill:#1c2430}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #e6eaef;
padding:5px 8px;text-align:left;vertical-align:top}th{background:#f0f3f6;position:sticky;top:0}
td.num{text-align:right}table.counts{width:auto;min-width:260px}
.status{padding:10px 14px;border-radius:8px;font-weight:600}.ok{background:#e8f5e9;color:#1b5e20}
.bad{background:#ffebee;color:#b71c1c}.tag{padding:1px 6px;border-radius:4px;color:#fff;font-size:12px}
.tablewrap{overflow-x:auto;max-width:100%}#launches{font-size:13px}#launches td{white-space:nowrap}
input#filter{padding:6px 8px;width:320px;margin:6px 0 10px;border:1px solid #c5ced8;border-radius:6px}
"""

_JS = """
(function(){
  document.documentElement.className='js-ready';
  var box=document.getElementById('filter');
  if(!box){return;}
  var rows=document.querySelectorAll('#launches tbody tr');
  var shown=document.getElementById('shown');
  shown.textContent=String(rows.length);
  box.addEventListener('input',function(){
    var q=box.value.toLowerCase(),n=0;
    for(var i=0;i<rows.length;i++){
      var hit=rows[i].textContent.toLowerCase().indexOf(q)!==-1;
      rows[i].style.display=hit?'':'none'; if(hit){n++;}
    }
    shown.textContent=String(n);
  });
})();
"""


def render_html(
    records: Iterable[LoggedRecord],
    *,
    title: str = "GPU launch decisions",
    source: str = "",
    verification: VerifyReport | None = None,
    generated_at: str | None = None,
) -> str:
    """Render the report.

    Parameters
    ----------
    records
        The log records (e.g. ``iter_records(dir)``).
    title
        Page title.
    source
        Where the log came from (shown in the header).
    verification
        Result of verifying the log, shown at the top when given.
    generated_at
        Time shown as generation time (default: now).

    Returns
    -------
    str
        A complete HTML document.
    """
    data = collect(records)
    when = generated_at or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<div class='muted'>log: {esc(source)} · generated {esc(when)}</div>",
    ]
    if verification is not None:
        cls = "ok" if verification.ok else "bad"
        line = verification.summary()
        if verification.ok and not verification.signatures_verified and verification.checkpoints:
            line += " (checkpoint signatures not verified: no public key)"
        out.append(f"<p class='status {cls}'>Integrity: {esc(line)}</p>")
    out.append("<div class='cards'>")
    out.append(f"<div class='card'><span>decisions</span><b>{data.total}</b></div>")
    for effect in ("allow", "deny", "audit"):
        out.append(
            f"<div class='card {effect}'><span>{effect}</span><b>{data.effects.get(effect, 0)}</b></div>"
        )
    out.append(f"<div class='card'><span>fail-open</span><b>{data.fail_open}</b></div>")
    out.append(f"<div class='card'><span>dry-run</span><b>{data.dryrun}</b></div></div>")
    out.append("<h2>Decisions over time</h2><div class='panel'>")
    out.append(_timeline(data.times))
    legend = " ".join(
        f"<span class='tag' style='background:{c}'>{esc(e)}</span>"
        for e, c in EFFECT_COLORS.items()
        if e != "unknown"
    )
    out.append(f"<div>{legend}</div></div><div class='grid'>")
    for heading, counts, color in (
        ("By effect", data.effects, EFFECT_COLORS),
        ("By account origin country", data.countries, "#3f51b5"),
        ("By chip class", data.chip_classes, "#00838f"),
        ("By reason", data.reasons, "#6d4c41"),
    ):
        out.append(f"<div class='panel'><h2>{esc(heading)}</h2>")
        out.append(_bar_chart(heading, counts.most_common(), color))
        out.append(_count_table(counts))
        out.append("</div>")
    out.append("</div>")
    out.append(owners_html(data.owners))
    out.append(f"<h2>Denied and audited launches (<span id='shown'>{len(data.listed)}</span> shown)</h2>")
    if data.not_listed:
        out.append(f"<p class='muted'>{data.not_listed} more not listed (first {MAX_LISTED} shown).</p>")
    out.append("<input id='filter' type='search' placeholder='filter rows…' aria-label='filter rows'>")
    cols = (
        ("seq", "seq"),
        ("timestamp", "time"),
        ("effect", "effect"),
        ("account", "account"),
        ("country", "country"),
        ("region", "region"),
        ("types", "instance types"),
        ("chips", "chip class"),
        ("reasons", "reasons"),
        ("evidence", "evidence and ledger"),
        ("action", "action"),
        ("mode", "mode"),
        ("source", "source"),
        ("decision_id", "decision id"),
        ("where", "record"),
    )
    out.append("<div class='tablewrap'><table id='launches'><thead><tr>")
    out.append("".join(f"<th>{esc(label)}</th>" for _k, label in cols))
    out.append("</tr></thead><tbody>")
    for row in data.listed:
        cells = []
        for key, _label in cols:
            v = row.get(key)
            if key == "effect":
                color = EFFECT_COLORS.get(str(v), "#757575")
                cells.append(f"<td><span class='tag' style='background:{color}'>{esc(v)}</span></td>")
            else:
                cells.append(f"<td>{esc(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "".join(out)
