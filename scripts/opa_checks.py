"""Policy authors' checks with OPA's own tools: ``opa fmt``, ``opa check --strict``, ``opa test --coverage``.

Run by ``make opa-check`` (part of ``make test``) over ``policies/``. Exit 0 when every check passes, 1 when
one fails (each failure printed), 2 when the OPA binary is missing and ``CI=true`` (outside CI a missing
binary is reported and skipped: the embedded engine's ``enforcer policy test`` still runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPA = ROOT / ".tools" / "bin" / "opa"
#: Least share of policy lines (test modules excluded) the Rego tests must execute.
DEFAULT_FLOOR = 90.0


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def coverage_of(report: dict[str, object]) -> tuple[float, dict[str, float]]:
    """Coverage (percent) over non-test modules, and per file, from ``opa test --coverage`` JSON."""
    files = report.get("files")
    if not isinstance(files, dict):
        raise ValueError("coverage report has no files")
    covered = total = 0
    per_file: dict[str, float] = {}
    for name, entry in files.items():
        if name.endswith("_test.rego") or not isinstance(entry, dict):
            continue
        c = sum(r["end"]["row"] - r["start"]["row"] + 1 for r in entry.get("covered", []) or [])
        n = sum(r["end"]["row"] - r["start"]["row"] + 1 for r in entry.get("not_covered", []) or [])
        covered, total = covered + c, total + c + n
        per_file[name] = 100.0 * c / (c + n) if c + n else 100.0
    return (100.0 * covered / total if total else 100.0), per_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("policy_dir", nargs="?", default=str(ROOT / "policies"))
    ap.add_argument("--opa", default=os.environ.get("OPA_BIN", str(DEFAULT_OPA)))
    ap.add_argument("--floor", type=float, default=float(os.environ.get("OPA_COVERAGE_FLOOR", DEFAULT_FLOOR)))
    args = ap.parse_args(argv)
    opa = Path(args.opa)
    if not (opa.is_file() and os.access(opa, os.X_OK)):
        msg = f"opa-check: no OPA binary at {opa} (run `make tools`; needs Go)"
        if os.environ.get("CI") == "true":
            print(msg + ": required when CI=true", file=sys.stderr)
            return 2
        print(msg + ": skipped", file=sys.stderr)
        return 0
    failures: list[str] = []
    fmt = _run([str(opa), "fmt", "--list", "--fail", args.policy_dir])
    if fmt.returncode != 0:
        files = fmt.stdout.split() or [fmt.stderr.strip()]
        failures.append("opa fmt: not formatted (run `.tools/bin/opa fmt -w policies`): " + " ".join(files))
    check = _run([str(opa), "check", "--strict", args.policy_dir])
    if check.returncode != 0:
        failures.append("opa check --strict:\n" + (check.stderr or check.stdout).strip())
    test = _run([str(opa), "test", "--coverage", args.policy_dir])
    try:
        report = json.loads(test.stdout)
        pct, per_file = coverage_of(report)
    except ValueError:
        failures.append(
            "opa test --coverage: no coverage report\n" + (test.stderr or test.stdout).strip()[:2000]
        )
    else:
        print(f"opa test --coverage: {pct:.1f}% of policy lines (floor {args.floor:g}%)")
        if pct < args.floor:
            worst = ", ".join(f"{n} {p:.1f}%" for n, p in sorted(per_file.items(), key=lambda kv: kv[1])[:5])
            failures.append(f"opa test --coverage: {pct:.1f}% is under the floor {args.floor:g}% ({worst})")
    if test.returncode != 0:  # a failing or erroring test: rerun without coverage to name it
        verdict = _run([str(opa), "test", args.policy_dir])
        failures.append("opa test:\n" + (verdict.stdout + verdict.stderr).strip()[-3000:])
    for f in failures:
        print(f, file=sys.stderr)
    if not failures:
        print(f"opa-check: fmt, check --strict, test ({opa}) passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
