"""Self-contained HTML report of the decision log (``enforcer audit report --html FILE``).

One file with inline CSS, inline SVG charts and a few lines of inline JavaScript (a filter
box); no external URL, and a Content-Security-Policy that forbids loading anything. Every
value taken from the log is HTML-escaped.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enforcer.audit.query import LoggedRecord, parse_time, record_country, record_effect, record_reasons
from enforcer.audit.report_evidence import note_owners, owners_html
from enforcer.audit.report_rows import EFFECT_COLORS, HEADERS, row_html, row_of
from enforcer.audit.row_check import check_rows
from enforcer.audit.verify import VerifyReport

#: Most launches listed in the table (the counts always cover everything).
MAX_LISTED = 2000
#: Most records that fail verification listed (beside MAX_LISTED: a forged row is never crowded out).
MAX_FAILED_LISTED = 2000
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
    #: Records that fail verification: listed and marked, counted nowhere else.
    failed: int = 0
    #: Ledger figures per beneficial owner (issue 14, ``report_evidence``).
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)


def collect(records: Iterable[LoggedRecord], failures: dict[int, str] | None = None) -> ReportData:
    """Aggregate counts, the timeline points and the listed launches.

    ``failures`` (``row_check.check_rows``: position -> why) are listed, marked, and left out of
    every count, chart and total.
    """
    data = ReportData()
    bad = failures or {}
    for pos, lr in enumerate(records):
        rec = lr.record
        failure = bad.get(pos)
        effect = record_effect(rec)
        if failure is None:
            _count(data, rec, effect)
        else:
            data.failed += 1
        if failure is not None:
            if data.failed > MAX_FAILED_LISTED:
                data.not_listed += 1
                continue
            data.listed.append(row_of(lr, failure))
        elif effect in ("deny", "audit"):
            if len(data.listed) - min(data.failed, MAX_FAILED_LISTED) >= MAX_LISTED:
                data.not_listed += 1
                continue
            data.listed.append(row_of(lr, failure))
    return data


def _count(data: ReportData, rec: dict[str, Any], effect: str) -> None:
    data.total += 1
    data.effects[effect] += 1
    data.countries[record_country(rec)] += 1
    classes = rec.get("chip_classes")
    for c in classes if isinstance(classes, list) and classes else ["none"]:
        data.chip_classes[str(c)] += 1
    for code in record_reasons(rec):
        data.reasons[code] += 1
    if rec.get("fail_open") is True:
        data.fail_open += 1
    if rec.get("mode") == "dryrun":
        data.dryrun += 1
    t = parse_time(rec.get("timestamp"))
    if t is not None:
        data.times.append((t, effect))
    note_owners(data.owners, rec)


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
.tablewrap{overflow-x:auto;max-width:100%}td{overflow-wrap:anywhere}
#launches{font-size:13px;table-layout:fixed;width:100%}#launches td{white-space:normal;word-break:break-word}
#launches .k{color:#6b7785}
#launches .msg{color:#37474f}#launches .sev{color:#6b7785;font-size:12px}
#launches .reason+.reason{margin-top:4px}tr.tampered td{background:#ffebee;border-top:2px solid #b71c1c;
border-bottom:2px solid #b71c1c}tr.tampered td:first-child{border-left:6px solid #b71c1c}
.tamper-tag{margin-top:4px;padding:1px 4px;border-radius:4px;background:#b71c1c;color:#fff;font-size:11px;
font-weight:700;display:inline-block}.tamper-note{color:#b71c1c;margin-bottom:4px}
.card.failed b{color:#b71c1c}
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
    failures: dict[int, str] | None = None,
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
    failures
        ``row_check.check_rows`` of the same records (position -> why); None checks the hash chain
        here (reading ``records`` into memory when it is a one-shot iterator).

    Returns
    -------
    str
        A complete HTML document.
    """
    if failures is None:
        records = records if isinstance(records, Sequence) else list(records)
        failures = check_rows(records, verification=verification)
    data = collect(records, failures)
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
    if data.failed:
        out.append(
            f"<p class='status bad' id='failed-note'>{data.failed} record(s) fail verification: they are "
            "listed below, marked NOT VERIFIED, and left out of every count and chart.</p>"
        )
    out.append("<div class='cards'>")
    out.append(f"<div class='card'><span>decisions</span><b>{data.total}</b></div>")
    for effect in ("allow", "deny", "audit"):
        out.append(
            f"<div class='card {effect}'><span>{effect}</span><b>{data.effects.get(effect, 0)}</b></div>"
        )
    out.append(f"<div class='card'><span>fail-open</span><b>{data.fail_open}</b></div>")
    out.append(f"<div class='card'><span>dry-run</span><b>{data.dryrun}</b></div>")
    out.append(f"<div class='card failed'><span>failed verification</span><b>{data.failed}</b></div></div>")
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
    out.append(
        "<h2>Denied and audited launches, and records that fail verification "
        f"(<span id='shown'>{len(data.listed)}</span> shown)</h2>"
    )
    if data.not_listed:
        out.append(
            f"<p class='muted'>{data.not_listed} more not listed (at most {MAX_LISTED} denied or audited "
            f"and {MAX_FAILED_LISTED} failing rows are shown; the counts cover every record).</p>"
        )
    out.append("<input id='filter' type='search' placeholder='filter rows…' aria-label='filter rows'>")
    widths = (4, 14, 7, 15, 10, 20, 14, 16)
    out.append("<div class='tablewrap'><table id='launches'><colgroup>")
    out.append("".join(f"<col style='width:{w}%'>" for w in widths))
    out.append("</colgroup><thead><tr>")
    out.append("".join(f"<th>{esc(label)}</th>" for label in HEADERS))
    out.append("</tr></thead><tbody>")
    out.extend(row_html(row) for row in data.listed)
    out.append("</tbody></table></div>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "".join(out)
