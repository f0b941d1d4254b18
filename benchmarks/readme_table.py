"""The README's benchmark table, generated from ``bench-results/bench.json`` (never typed by hand).

``python -m benchmarks.readme_table`` rewrites the part of README.md between the two markers below;
``--check`` exits 1 when the README differs from what this would write (tests/test_bench_table.py
runs the check against the checked-in bench json). ``make bench`` runs it after measuring.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_JSON = ROOT / "bench-results" / "bench.json"
README = ROOT / "README.md"
BEGIN = "<!-- bench-table:begin (python -m benchmarks.readme_table, from bench-results/bench.json) -->"
END = "<!-- bench-table:end -->"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def render(doc: dict[str, Any]) -> str:
    """The Markdown block (markers included) for a bench json document."""
    rows = doc.get("rows", [])
    machine = doc.get("machine", {})
    stamps = sorted({str(r.get("measured_at", "?")) for r in rows})
    loads = [float(r["load_before"][0]) for r in rows if r.get("load_before")]
    when = stamps[0] if len(stamps) == 1 else f"{stamps[0]} to {stamps[-1]}" if stamps else ""
    if loads:
        when += f" (1-minute load average {min(loads):.1f}-{max(loads):.1f} when sections started)"
    lines = [
        BEGIN,
        "",
        f"Measured by `make bench` on {machine.get('cores', '?')} cores, "
        f"Python {machine.get('python', '?')}: "
        f"{when or 'no run recorded'}. Ranges are [min-max] over repeated fresh processes; the "
        "machine is shared, so read the same-run comparison, not the absolute figure.",
        "",
        "| figure | measured | beside (same run) | target | met |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        met = "" if r.get("met") is None else ("yes" if r["met"] else "**no**")
        cells = (r.get("figure", ""), r.get("value", ""), r.get("compare", ""), r.get("target", ""), met)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def rewrite(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``.

    Raises
    ------
    ValueError
        When the markers are missing or out of order.
    """
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the bench table markers ({BEGIN!r} ... {END!r})")
    return readme[:start] + block + readme[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate the README benchmark table from bench json.")
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is not what would be written")
    ap.add_argument("--json", type=Path, default=BENCH_JSON)
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    doc = json.loads(args.json.read_text())
    current = args.readme.read_text()
    wanted = rewrite(current, render(doc))
    if args.check:
        if wanted != current:
            print(f"{args.readme}: the table differs from {args.json}: python -m benchmarks.readme_table")
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
