"""`make bench`: every speed and memory figure of the project in one run, each beside its comparison.

Prints a table and writes bench-results/bench.json. Pick sections: python scripts/bench.py decide replay
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

Row = dict[str, Any]


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]


def _decide_rows(n: int = 5000) -> list[Row]:
    """decide() in-process (warm, no AWS I/O) beside the bare engine evaluation of the same input."""
    from enforcer.accounts import StaticAccountDirectory
    from enforcer.chips import ChipCatalog
    from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
    from enforcer.pipeline import Enforcer
    from enforcer.policy.factory import make_engine

    kind = os.environ.get("ENFORCER_ENGINE", "embedded")
    engine = make_engine(kind, ROOT / "policies")
    assert engine.name == kind, f"asked for engine {kind}, got {engine.name}"
    enf = Enforcer(
        catalog=ChipCatalog(),
        engine=engine,
        accounts=StaticAccountDirectory([AccountOrigin("111122223333", "US", "US", "US", "verified")]),
    )

    def request() -> LaunchRequest:
        return LaunchRequest(
            "cloudtrail",
            "ec2:RunInstances",
            "111122223333",
            "us-east-1",
            "arn:aws:sts::1:x",
            [LaunchItem("p5.48xlarge", 2)],
            event_id="e1",
        )

    doc = enf.decide(request()).input
    assert doc is not None
    for _ in range(300):  # warm both paths
        enf.decide(request())
        engine.evaluate(doc)
    pipe: list[float] = []
    bare: list[float] = []
    for _ in range(n):  # interleaved, so both see the same machine state
        req = request()
        t = time.perf_counter_ns()
        enf.decide(req)
        pipe.append((time.perf_counter_ns() - t) / 1e3)
        t = time.perf_counter_ns()
        engine.evaluate(doc)
        bare.append((time.perf_counter_ns() - t) / 1e3)
    p99, b99 = pct(pipe, 0.99), pct(bare, 0.99)
    return [
        {
            "figure": "decide p50 (in-process, warm)",
            "value": f"{pct(pipe, 0.5):.0f} µs",
            "compare": f"bare engine p50 {pct(bare, 0.5):.0f} µs",
            "target": "",
            "met": None,
        },
        {
            "figure": "decide p99 (in-process, warm)",
            "value": f"{p99:.0f} µs",
            "compare": f"bare engine p99 {b99:.0f} µs",
            "target": "< 2000 µs and ≤ 2x bare",
            "met": p99 < 2000 and p99 <= 2 * b99,
        },
    ]


def _go_settings() -> list[tuple[str, dict[str, str]]]:
    """By label: the embedded Go evaluator under Go's defaults (GOGC=100, no limit) and under the
    template's Go settings (``go_env.DEPLOYED``), and the template's engine (``factory.DEPLOYED_ENGINE``:
    wasm, whose Go fallback runs with the same settings)."""
    from enforcer.policy.factory import DEPLOYED_ENGINE
    from enforcer.policy.go_env import DEPLOYED

    deployed = ", ".join(f"{k}={v}" for k, v in DEPLOYED.items())
    return [
        ("engine embedded, GOGC=100", {"GOGC": "100", "ENFORCER_ENGINE": "embedded"}),
        (f"engine embedded, {deployed}", {**DEPLOYED, "ENFORCER_ENGINE": "embedded"}),
        (f"engine {DEPLOYED_ENGINE} (template default)", {**DEPLOYED, "ENFORCER_ENGINE": DEPLOYED_ENGINE}),
    ]


def _go_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOGC", "GOMEMLIMIT", "ENFORCER_ENGINE")}
    return {**env, **settings}


def bench_decide() -> list[Row]:
    """decide() beside the bare engine: the embedded one under Go's default GC target and under the
    deployed Go settings (``go_env.DEPLOYED``), and the deployed engine (wasm).

    Go reads GOGC and GOMEMLIMIT when the OPA library loads, from the environment the process started
    with, so each setting runs in its own process.
    """
    rows: list[Row] = []
    for label, settings in _go_settings():
        out = subprocess.run(
            [sys.executable, __file__, "--decide-json"],
            env=_go_env(settings),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for r in json.loads(out.strip().splitlines()[-1]):
            r["figure"] += f", {label}"
            rows.append(r)
    return rows


def bench_guard_inprocess(n: int = 200) -> list[Row]:
    """Guard deny latency with moto in-process beside the plain boto3 control's, measured in this run
    (benchmarks/guard_warm.py: the same world state per event as the control, logs written to the null
    device, moto's transactions as shipped and with an item snapshot, interleaved)."""
    from benchmarks.cold_start import measure_warm_control, warm_row
    from benchmarks.guard_warm import measure, rows

    res = measure(n)
    return rows(res, measure_warm_control(n), warm_row)


def bench_cold() -> list[Row]:
    """Cold start to the first deny: guard, plain control and (when installed) Custodian, same rounds."""
    from benchmarks.cold_start import cold_rows, measure_cold

    return cold_rows(measure_cold(int(os.environ.get("BENCH_COLD_ROUNDS", "5"))))


def bench_replay() -> list[Row]:
    """Replay on the realistic mix: memo / no memo, one / two processes, launch decisions alone."""
    from benchmarks.replay_bench import measure, rows

    return rows(measure(int(os.environ.get("BENCH_REPLAY_EVENTS", "100000"))))


def _optional(name: str, fn: Callable[[], list[Row]]) -> list[Row]:
    try:
        return fn()
    except Exception as exc:
        return [
            {
                "figure": name,
                "value": f"failed: {type(exc).__name__}: {exc}"[:200],
                "compare": "",
                "target": "",
                "met": False,
            }
        ]


def bench_attestation() -> list[Row]:
    from benchmarks.attestation_bench import bench_attestation as run

    rows: list[Row] = []
    for alg, r in run()["algorithms"].items():
        cold, cached = r["cold_us"], r["cached_us"]
        rows.append(
            {
                "figure": f"attestation verify per decision, {alg}, cold",
                "value": f"p50 {cold['p50']:.0f} µs, p99 {cold['p99']:.0f} µs",
                "compare": f"cached p50 {cached['p50']:.0f} µs, p99 {cached['p99']:.0f} µs",
                "target": "",
                "met": None,
            }
        )
    return rows


def bench_audit() -> list[Row]:
    from benchmarks.audit_bench import bench_audit as run

    with tempfile.TemporaryDirectory() as d:
        r = run(100_000, Path(d))
    return [
        {
            "figure": "audit append, 100,000 records (local)",
            "value": f"{r['append_per_s']:,.0f} records/s",
            "compare": f"verify {r['verify_per_s']:,.0f} records/s",
            "target": "append ≥ 5,000/s, verify ≥ 50,000/s",
            "met": r["append_per_s"] >= 5000 and r["verify_per_s"] >= 50000,
        },
    ]


def bench_engines() -> list[Row]:
    from benchmarks.engines_bench import bench_engines as run

    r = run()
    rest, emb, real = r["rest_decide"], r["embedded_decide"], r["real_opa_decide"]
    embedded = f"embedded decide p50 {emb['p50_us']:.0f} µs, p99 {emb['p99_us']:.0f} µs"
    return [
        {
            "figure": f"decide via the real OPA server (opa run {r.get('real_opa_version', '')}, REST)",
            "value": real.get("skipped") or f"p50 {real['p50_us']:.0f} µs, p99 {real['p99_us']:.0f} µs",
            "compare": embedded,
            "target": "",
            "met": None,
        },
        {
            "figure": "decide via OPA REST (OPA Data API test server)",
            "value": f"p50 {rest['p50_us']:.0f} µs, p99 {rest['p99_us']:.0f} µs",
            "compare": f"embedded decide p50 {emb['p50_us']:.0f} µs, p99 {emb['p99_us']:.0f} µs",
            "target": "",
            "met": None,
        },
    ]


def bench_guard() -> list[Row]:
    from benchmarks.guard_bench import bench_guard as run

    r = run()
    warm, cold = r["warm_per_event"], r["cold_start_ms"]
    rows: list[Row] = [
        {
            "figure": f"guard handler per {effect} event (warm, moto server over HTTP)",
            "value": f"p50 {w['p50_ms']:.1f} ms, p95 {w['p95_ms']:.1f} ms",
            "compare": "",
            "target": "",
            "met": None,
        }
        for effect, w in warm.items()
    ]
    dp = r["deny_path"]
    rows.append(
        {
            "figure": "guard: deny decision -> StopInstances issued (moto server over HTTP)",
            "value": f"p50 {dp['decision_to_stop_p50_ms']:.1f} ms, "
            f"p95 {dp['decision_to_stop_p95_ms']:.1f} ms",
            "compare": "after the stop, concurrently: " + ", ".join(dp["after_stop_calls"]),
            "target": "",
            "met": None,
        }
    )
    rows.append(
        {
            "figure": "guard: serial AWS calls from deny decision to the stop (botocore hooks)",
            "value": f"{dp['serial_calls_max']} ({' -> '.join(dp['serial_calls'])})",
            "compare": "a describe only when the event does not name the instances",
            "target": f"<= {dp['target_serial_calls']}",
            "met": dp["serial_calls_max"] <= dp["target_serial_calls"],
        }
    )
    rows.append(
        {
            "figure": "guard init before any event (import + config + policy load; not the cold start)",
            "value": f"{cold['cold_start']:.0f} ms",
            "compare": "the cold start to the first deny is the `cold` section's row",
            "target": "",
            "met": None,
        }
    )
    return rows


def bench_evidence() -> list[Row]:
    """decide p99 with evidence, screening and ledger on, beside plain decide (bench_evidence.py).

    Like ``bench_decide``: the embedded engine under Go's default GC target and under the deployed Go
    settings, and the deployed engine (wasm), each in its own process.
    """
    rows: list[Row] = []
    for label, settings in _go_settings():
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "bench_evidence.py")],
            env=_go_env(settings),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for r in json.loads(out):
            r["figure"] += f", {label}"
            rows.append(r)
    return rows


SECTIONS: dict[str, Callable[[], list[Row]]] = {
    "cold": bench_cold,
    "decide": bench_decide,
    "evidence": bench_evidence,
    "attestation": bench_attestation,
    "audit": bench_audit,
    "engines": bench_engines,
    "guard": bench_guard,
    "guard-inprocess": bench_guard_inprocess,
    "replay": bench_replay,
}


def _parse(argv: list[str]) -> Any:
    import argparse

    ap = argparse.ArgumentParser(
        prog="bench.py",
        description="Every speed and memory figure of the project (make bench): prints a table, writes "
        "bench-results/bench.json and the README table.",
    )
    ap.add_argument("sections", nargs="*", metavar="SECTION",
                    help=f"only these sections ({', '.join(SECTIONS)}; default: all)")  # fmt: skip
    ap.add_argument("--decide-json", action="store_true", help="print the decide rows as JSON and exit")
    args = ap.parse_args(argv)
    if unknown := [s for s in args.sections if s not in SECTIONS]:
        ap.error(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    return args


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args.decide_json:
        print(json.dumps(_decide_rows()))
        return 0
    argv = list(args.sections)
    from rich.console import Console
    from rich.table import Table

    names = argv or list(SECTIONS)
    rows: list[Row] = []
    for name in names:
        t = time.perf_counter()
        load = [round(x, 2) for x in os.getloadavg()]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
        for r in _optional(name, SECTIONS[name]):
            rows.append({**r, "section": name, "measured_at": stamp, "load_before": load})
        print(f"[bench] {name}: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    table = Table(title=f"make bench ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    for col in ("figure", "value", "measured beside", "target", "met"):
        table.add_column(col)
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        table.add_row(r["figure"], r["value"], r["compare"], r["target"], met)
    console = Console()
    (console if console.is_terminal else Console(width=170)).print(table)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    path = out / "bench.json"
    kept: list[Row] = []
    if argv and path.exists():  # a partial run replaces its own sections' rows and keeps the others
        kept = [r for r in json.loads(path.read_text()).get("rows", []) if r.get("section") not in names]
    order = list(SECTIONS)
    merged = sorted(kept + rows, key=lambda r: order.index(r["section"]) if r.get("section") in order else 99)
    doc = {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
        "rows": merged,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    from benchmarks.readme_table import main as write_readme_table

    return write_readme_table([])  # the README table always follows bench.json


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
