"""Run the ``test_`` rules of ``*_test.rego`` files like ``opa test``: each rule is one query.

Compile and parse errors are found once, before any test runs, and reported once each (not once per
test). Exit codes follow the real ``opa test`` (checked against the binary by tests/test_opa_real_tools.py):
0 when every test passes (or there is none), 2 when a test fails, 1 when the policies do not load or
compile. ``--run`` filters tests by a regular expression over ``data.<package>.<name>``; ``--explain``
adds the failing expressions (``fails``), the ``print``/``trace`` notes (``notes``) or every evaluation
step (``full``) from the embedded engine's trace.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from enforcer.policy.loader import PolicyBundle

_PKG_RE = re.compile(r"^package\s+([\w.]+)", re.M)
_TEST_RE = re.compile(r"^(test_\w+)\b", re.M)
_ERROR_RE = re.compile(
    r"(?:^|\s)(?P<file>[^\s:]+):(?P<row>\d+): (?P<code>rego_\w+_error): (?P<message>[^\n]*)"
)
EXPLAIN_MODES = ("fails", "notes", "full")
#: Exit codes of ``opa test`` (OPA v1.22).
EXIT_PASS, EXIT_ERROR, EXIT_FAIL = 0, 1, 2
_MAX_TRACE = 400


@dataclass(slots=True)
class TestResult:
    package: str
    name: str
    passed: bool
    error: str = ""
    duration_ms: float = 0.0
    file: str = ""
    row: int = 0
    trace: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The shape of one entry of ``opa test --format json``."""
        d: dict[str, Any] = {
            "location": {"file": self.file, "row": self.row, "col": 1},
            "package": f"data.{self.package}",
            "name": self.name,
            "duration": int(self.duration_ms * 1e6),
        }
        if not self.passed:
            d["fail"] = True
        if self.error:
            d["error"] = {"message": self.error}
        if self.trace:
            d["trace"] = self.trace
        return d


@dataclass(frozen=True, slots=True)
class CompileError:
    """One parse/compile error, as OPA prints it (``file:row: code: message``)."""

    file: str
    row: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.code}: {self.message}"


def compile_errors(exc: BaseException) -> list[CompileError]:
    """The distinct ``rego_*_error`` lines in an engine error, in order (empty when there is none)."""
    seen: dict[tuple[str, int, str, str], None] = {}
    for m in _ERROR_RE.finditer(str(exc)):
        seen.setdefault((m["file"], int(m["row"]), m["code"], m["message"].strip()), None)
    return [CompileError(*k) for k in seen]


def discover(bundle: PolicyBundle) -> list[tuple[str, str, str, int]]:
    """Return ``(file, package, rule, row)`` for every ``test_`` rule, in file order, deduplicated."""
    found: list[tuple[str, str, str, int]] = []
    for path, src in sorted(bundle.tests.items()):
        pkg = _PKG_RE.search(src)
        if not pkg:
            continue
        seen: set[str] = set()
        for m in _TEST_RE.finditer(src):
            if m.group(1) not in seen:
                seen.add(m.group(1))
                found.append((path, pkg.group(1), m.group(1), src.count("\n", 0, m.start()) + 1))
    return found


def _explain(events: list[dict[str, Any]], mode: str) -> list[str]:
    lines: list[str] = []
    for ev in events:
        op, loc, node = ev.get("op", ""), str(ev.get("location", "")), str(ev.get("node", ""))
        if mode == "full":
            lines.append(f"{op:<6} {loc}: {node}")
        elif mode == "fails" and op == "Fail" and not loc.startswith("data."):
            lines.append(f"{loc}: {node}")
        elif mode == "notes" and op == "Note":
            lines.append(f"{loc}: {ev.get('message', node)}")
        if len(lines) >= _MAX_TRACE:
            lines.append("... (trace cut)")
            break
    return lines


def run_tests(
    bundle: PolicyBundle, engine: Any, run: re.Pattern[str] | None = None, explain: str | None = None
) -> list[TestResult]:
    """Evaluate every test rule on ``engine`` (anything with ``eval_path(dotted)``).

    A test passes when its document is ``true``; undefined, false or an error fails it.

    Parameters
    ----------
    run
        Only tests whose ``data.<package>.<name>`` this pattern matches (``re.search``).
    explain
        One of ``EXPLAIN_MODES``: attach a trace to each failed test (``full``: to every test).
        Needs an engine with ``trace_path`` (the embedded engine).
    """
    results: list[TestResult] = []
    for path, pkg, name, row in discover(bundle):
        if run is not None and not run.search(f"data.{pkg}.{name}"):
            continue
        start = time.perf_counter()
        events: list[dict[str, Any]] = []
        try:
            if explain:
                value, events = engine.trace_path(f"{pkg}.{name}")
            else:
                value = engine.eval_path(f"{pkg}.{name}")
            ok, err = value is True, "" if value is True or value is None else f"got {value!r}"
        except Exception as exc:
            ok, err = False, " ".join(str(exc).split())[:600]
            if "undefined" in err:  # a failed test is undefined: that is a FAIL, not an error
                err = ""
        result = TestResult(pkg, name, ok, err, (time.perf_counter() - start) * 1000, path, row)
        if explain and (not ok or explain == "full"):
            result.trace = _explain(events, explain)
        results.append(result)
    return results
