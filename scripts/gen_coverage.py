"""Regenerate enforcer/coverage/data/coverage.json from the installed botocore service models.

Usage: .venv/bin/python scripts/gen_coverage.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from enforcer.coverage.table import build_table, table_document

OUT = Path(__file__).resolve().parents[1] / "enforcer" / "coverage" / "data" / "coverage.json"


def main() -> int:
    text = json.dumps(table_document(build_table()), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        same = OUT.exists() and OUT.read_text("utf-8") == text
        print(
            "coverage.json is up to date" if same else "coverage.json is stale: run scripts/gen_coverage.py"
        )
        return 0 if same else 1
    OUT.write_text(text, "utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
