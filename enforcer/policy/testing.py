"""Run the ``test_`` rules of ``*_test.rego`` files, like ``opa test``: each rule is one query."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from enforcer.policy.loader import PolicyBundle

_PKG_RE = re.compile(r"^package\s+([\w.]+)", re.M)
_TEST_RE = re.compile(r"^(test_\w+)\b", re.M)


@dataclass(slots=True)
class TestResult:
    package: str
    name: str
    passed: bool
    error: str = ""
    duration_ms: float = 0.0


def discover(bundle: PolicyBundle) -> list[tuple[str, str, str]]:
    """Return ``(file, package, rule)`` for every ``test_`` rule, in file order, deduplicated."""
    found: list[tuple[str, str, str]] = []
    for path, src in sorted(bundle.tests.items()):
        pkg = _PKG_RE.search(src)
        if not pkg:
            continue
        seen: set[str] = set()
        for name in _TEST_RE.findall(src):
            if name not in seen:
                seen.add(name)
                found.append((path, pkg.group(1), name))
    return found


def run_tests(bundle: PolicyBundle, engine: Any) -> list[TestResult]:
    """Evaluate every test rule on ``engine`` (anything with ``eval_path(dotted)``).

    A test passes when its document is ``true``; undefined, false or an error fails it.
    """
    results: list[TestResult] = []
    for _path, pkg, name in discover(bundle):
        start = time.perf_counter()
        try:
            value = engine.eval_path(f"{pkg}.{name}")
            ok, err = value is True, "" if value is True else f"got {value!r}"
        except Exception as exc:
            ok, err = False, " ".join(str(exc).split())[:600]
        results.append(TestResult(pkg, name, ok, err, (time.perf_counter() - start) * 1000))
    return results
