"""Regenerate the generated policy data files from their maintained sources.

* ``policies/gpu/countries/data.json``: ISO 3166-1 alpha-2 codes from the ``iso3166`` package.
* ``policies/gpu/regions/data.json``: every region botocore's ``endpoints.json`` knows, with the
  ISO country it is located in (the mapping below, keyed by botocore's region description).

``enforcer policy check`` fails when either file differs from what this script would write.
Run: ``.venv/bin/python scripts/build_policy_data.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from enforcer.policy.datafiles import countries_document, regions_document  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    import argparse

    argparse.ArgumentParser(
        prog="build_policy_data.py",
        description="Regenerate policies/gpu/countries/data.json and policies/gpu/regions/data.json.",
    ).parse_args(argv)
    for rel, doc in (
        ("policies/gpu/countries/data.json", countries_document()),
        ("policies/gpu/regions/data.json", regions_document()),
    ):
        (ROOT / rel).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {rel}")


if __name__ == "__main__":
    main()
