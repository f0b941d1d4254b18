"""Enforcement points generated from the coverage table: EventBridge patterns and the docs table.

One table drives every point (see also :mod:`enforcer.scp` for the SCP actions and
:mod:`enforcer.coverage.cfn_types` for the CloudFormation hook's resource types):

- :func:`event_patterns` packs the decided calls, one ``$or`` branch per CloudTrail ``eventSource``,
  into a fixed number of rule patterns, each under EventBridge's 2,048-character pattern limit;
- :func:`forward_pattern` is the member account's forwarding pattern (covered event sources and the
  verbs of their decided calls: the security account's rules pick the calls);
- :func:`markdown_table` is the README's "what is covered" table.
"""

from __future__ import annotations

import json
import re
from typing import Any

from enforcer.coverage.table import STATUSES, Entry, load_table

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
_VERB = re.compile(r"[A-Z][a-z0-9]+")
#: EventBridge's default limit on one rule's event pattern, in characters.
PATTERN_MAX_CHARS = 2048


def decided_calls(entries: tuple[Entry, ...] | None = None) -> dict[str, list[str]]:
    """CloudTrail ``eventSource`` -> sorted ``eventName`` of every decided call (types or references)."""
    out: dict[str, set[str]] = {}
    for e in entries if entries is not None else load_table():
        if e.status == "decided":
            out.setdefault(e.event_source, set()).add(e.operation)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _branch(source: str, names: list[str]) -> dict[str, Any]:
    return {
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {"eventSource": [source], "eventName": names, "errorCode": [{"exists": False}]},
    }


def _size(pattern: dict[str, Any]) -> int:
    return len(json.dumps(pattern, separators=(",", ":")))


def _pattern(branches: list[dict[str, Any]]) -> dict[str, Any]:
    return branches[0] if len(branches) == 1 else {"$or": branches}


def event_patterns(
    anchors: list[str], extra: dict[str, list[str]] | None = None, max_chars: int = PATTERN_MAX_CHARS
) -> list[dict[str, Any]]:
    """The decided calls packed into one EventBridge pattern per rule, each at most ``max_chars`` long.

    Parameters
    ----------
    anchors
        One event source per rule of the template (``ec2.amazonaws.com`` for the EC2 rule ...): each
        rule holds its anchor's calls; the other sources are packed, largest first, into the
        rule with the most room.
    extra
        Further ``eventSource -> eventName`` calls to route (hand-written shapes the table does not hold).
    max_chars
        Pattern size limit (minified JSON).

    Raises
    ------
    ValueError
        When the calls do not fit (add a rule to the template) or an anchor has no decided call.
    """
    calls = decided_calls()
    for source, names in (extra or {}).items():
        calls[source] = sorted(set(calls.get(source, [])) | set(names))
    bins: list[list[dict[str, Any]]] = []
    for anchor in anchors:
        if anchor not in calls:
            raise ValueError(f"{anchor}: no decided call to route")
        bins.append([_branch(anchor, calls.pop(anchor))])
    rest = sorted((_branch(s, n) for s, n in calls.items()), key=_size, reverse=True)
    for br in rest:
        for b in sorted(bins, key=lambda b: _size(_pattern(b))):
            if _size(_pattern([*b, br])) <= max_chars:
                b.append(br)
                break
        else:
            raise ValueError(f"{br['detail']['eventSource'][0]}: no rule has room; add a rule")
    return [_pattern(b) for b in bins]


def forward_pattern(extra: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Member-account forwarding: successful calls of every covered source whose name starts with a
    verb of a decided call (``Create``, ``Update``, ``Start`` ...; never ``Describe``/``List``).

    Every name would not fit EventBridge's pattern limit; the security account's rules pick the calls.
    """
    calls = decided_calls()
    for source, names in (extra or {}).items():
        calls[source] = sorted(set(calls.get(source, [])) | set(names))
    verbs = {m.group(0) for names in calls.values() for n in names if (m := _VERB.match(n)) is not None}
    return {
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": sorted(calls),
            "eventName": [{"prefix": v} for v in sorted(verbs)],
            "errorCode": [{"exists": False}],
        },
    }


def markdown_table(entries: tuple[Entry, ...] | None = None) -> str:
    """The README's "what is covered" table: one row per service, calls grouped by status."""
    rows = entries if entries is not None else load_table()
    by_service: dict[str, dict[str, list[str]]] = {}
    for e in rows:
        by_service.setdefault(e.service, {s: [] for s in STATUSES})[e.status].append(e.operation)
    lines = [
        "| service | decided when called | resolved at use | out of scope |",
        "|---|---|---|---|",
    ]
    for service, groups in sorted(by_service.items()):
        cells = [", ".join(sorted(groups[s])) or "-" for s in STATUSES]
        lines.append(f"| {service} | " + " | ".join(cells) + " |")
    counts = {s: sum(1 for e in rows if e.status == s) for s in STATUSES}
    lines.append("")
    lines.append(
        f"{len(rows)} operations in {len(by_service)} services: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + " (`enforcer coverage` gives the reason and the instance-type paths of each)."
    )
    return "\n".join(lines)


README_BEGIN = "<!-- coverage-table:begin (generated by scripts/gen_coverage.py) -->"
README_END = "<!-- coverage-table:end -->"


def readme_with_table(text: str) -> str:
    """``text`` (the README) with :func:`markdown_table` between the coverage-table markers.

    Raises
    ------
    ValueError
        When the markers are missing.
    """
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("README: coverage table markers missing")
    return text[: start + len(README_BEGIN)] + "\n" + markdown_table() + "\n" + text[end:]
