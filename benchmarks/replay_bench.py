"""Replay figures on the realistic mix (scripts/synth_cloudtrail.py): memo and no memo, one and two
processes, launch decisions alone, and the gunzip + orjson floor of the same files.

Every run is ``enforcer replay ... --out FILE`` in a fresh process. Rates are given per CPU second of
the replaying processes (what one core does, whatever else the machine is running) and per wall
second (what the run took here, under the load printed beside it).
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

EVENTS_PER_S = 100_000
DECISIONS_PER_S = 3_000
RSS_MB = 300
SCALING = 1.8  # two processes: at least this many times one process's events per wall second

Row = dict[str, Any]
#: the template's engine first, then OPA's Go evaluator (the CLI default) for comparison
ENGINES = ("wasm", "embedded")
_LINE = re.compile(
    r"Replayed (\d+) events.*?(\d+) decided.*?([\d.]+) CPU s in the workers.*?peak RSS (\d+) MB", re.S
)


def run(src: Path, state: Path, out: Path, *args: str) -> dict[str, float]:
    """One ``enforcer replay`` in a fresh process: events, decided, CPU s, wall s, peak RSS."""
    exe = str(Path(sys.executable).with_name("enforcer"))
    t = time.perf_counter()
    p = subprocess.run(
        [exe, "--state", str(state), "replay", str(src), "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="400"),
        check=False,
    )
    wall = time.perf_counter() - t
    text = " ".join((p.stdout + p.stderr).split())
    m = _LINE.search(text)
    if p.returncode != 0 or m is None:
        raise RuntimeError(f"replay {args} failed (rc={p.returncode}): {text[-800:]}")
    out.unlink(missing_ok=True)
    events, decided, cpu, rss = int(m[1]), int(m[2]), float(m[3]), float(m[4])
    return {"events": events, "decided": decided, "cpu_s": cpu, "wall_s": wall, "rss_mb": rss}


def parse_floor(src: Path) -> dict[str, float]:
    """gunzip + orjson of every file, in this process (the floor under any replay)."""
    cpu, t, n = time.process_time(), time.perf_counter(), 0
    for f in sorted(src.rglob("*.json.gz")):
        with gzip.open(f) as fh:
            n += len(orjson.loads(fh.read())["Records"])
    return {"events": n, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - t}


def split_decisions(src: Path, state: Path, engine_kind: str = "embedded") -> dict[str, float]:
    """Replay ``src`` in this process, timing the engine evaluation apart from everything else (CPU s).

    The code path of ``enforcer replay --out`` on one process (each file through the worker's
    ``_one``: read, pre-filter, normalise, decide, book, write its part), memo off; the engine's share
    is the CPU time inside ``engine.evaluate`` (its JSON encoding, the native evaluation, the result
    decoding).
    """
    import enforcer.replay_run as rr

    rr._init(rr.RunConfig(str(state), engine_kind, None, None, None, False, None))
    engine = rr._worker["enf"].engine
    assert engine.name == engine_kind, f"asked for engine {engine_kind}, got {engine.name}"
    inner = engine.evaluate
    acc = [0.0, 0]

    def evaluate(doc: dict[str, Any]) -> Any:
        t = time.process_time()
        try:
            return inner(doc)
        finally:
            acc[0] += time.process_time() - t
            acc[1] += 1

    engine.evaluate = evaluate
    parts = Path(tempfile.mkdtemp(prefix="split-", dir=src.parent))
    files = sorted(src.rglob("*.json.gz"))
    cpu = time.process_time()
    decided = sum(rr._one((i, str(f), str(parts)))["summary"]["decided"] for i, f in enumerate(files))
    cpu = time.process_time() - cpu
    return {"decided": decided, "evals": acc[1], "engine_s": acc[0], "cpu_s": cpu}


def measure(n: int = 100_000, launches: int = 3_000, scale_n: int | None = None) -> dict[str, Any]:
    """Write the mix and a launch-only stream, replay them, return the raw figures.

    ``scale_n`` (default ``4 * n``): events of the larger mix the one- and two-process runs are compared on.
    """
    import shutil

    from synth_cloudtrail import write_mix

    scale_n = scale_n or 4 * n
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    state = tmp / "state"
    write_mix(tmp / "mix", n, per_file=2000, accounts=3000, launch_share=0.02, state=state)
    write_mix(tmp / "launch", launches, per_file=500, accounts=3000, launch_share=1.0, seed=17)
    out = tmp / "out.jsonl"
    res: dict[str, Any] = {"n": n, "load_before": os.getloadavg(), "floor": parse_floor(tmp / "mix")}
    # every figure with the wasm engine (the template's); the embedded Go evaluator's beside the ones
    # its evaluation dominates, same files, same run
    for kind in ENGINES:
        eng = ("--engine", kind)
        res[kind] = r = {"nomemo_1": run(tmp / "mix", state, out, "--no-memo", *eng)}
        if kind == "wasm":
            r["memo_1"] = run(tmp / "mix", state, out, *eng)
            r["nomemo_2"] = run(tmp / "mix", state, out, "--no-memo", "--jobs", "2", *eng)
            # scaling where a run's fixed start-up (interpreter, imports, the policy's compile, the
            # workers' start) is a small part of it, as on a trail too large for one machine
            write_mix(
                tmp / "scale", scale_n, per_file=2000, accounts=3000, launch_share=0.02, seed=23, state=state
            )
            r["scale_1"] = run(tmp / "scale", state, out, "--no-memo", *eng)
            r["scale_2"] = run(tmp / "scale", state, out, "--no-memo", "--jobs", "2", *eng)
            shutil.rmtree(tmp / "scale", ignore_errors=True)
        r["launch_nomemo"] = run(tmp / "launch", state, out, "--no-memo", *eng)
        r["launch_split"] = split_decisions(tmp / "launch", state, kind)
    res["load_after"] = os.getloadavg()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return res


def rows(res: dict[str, Any]) -> list[Row]:
    """Table rows for :func:`measure`: per engine, the figures it was measured for."""
    out: list[Row] = []
    for kind in ENGINES:
        out += _engine_rows(res, kind)
    return out


def _engine_rows(res: dict[str, Any], kind: str) -> list[Row]:
    floor = res["floor"]
    floor_rate = floor["events"] / floor["cpu_s"]
    load = "/".join(f"{x:.1f}" for x in res["load_before"])
    er = res[kind]
    tag = f"engine {kind}"
    out: list[Row] = []
    for key, label in (("nomemo_1", "replay --no-memo"), ("memo_1", "replay (memoised, the default)")):
        if key not in er:
            continue
        r = er[key]
        cpu_rate, wall_rate = r["events"] / r["cpu_s"], r["events"] / r["wall_s"]
        out.append(
            {
                "figure": f"{label}, {tag}, realistic mix of {r['events']:,} events ({r['decided']:,} "
                "launches decided), 1 process",
                "value": f"{cpu_rate:,.0f} events per CPU s of replay work, start-up excluded "
                f"({wall_rate:,.0f}/s wall incl. start-up, load {load}), "
                f"{r['rss_mb']:.0f} MB",
                "compare": f"gunzip + orjson of the same files {floor_rate:,.0f} events per CPU s",
                "target": f"≥ {EVENTS_PER_S:,}/s on one core, < {RSS_MB} MB",
                "met": cpu_rate >= EVENTS_PER_S and r["rss_mb"] < RSS_MB,
            }
        )
    if "nomemo_2" in er:
        one, two = er["nomemo_1"], er["nomemo_2"]
        speedup = (two["events"] / two["wall_s"]) / (one["events"] / one["wall_s"])
        two_cpu, one_wall = two["events"] / two["cpu_s"], one["events"] / one["wall_s"]
        out.append(
            {
                "figure": f"replay --no-memo --jobs 2, {tag}, same mix (start-up included, a run of seconds)",
                "value": f"{speedup:.2f}x the 1-process wall rate; {two_cpu:,.0f} events per CPU s, "
                f"{two['rss_mb']:.0f} MB per process",
                "compare": f"1 process {one_wall:,.0f}/s wall ({os.cpu_count()} cores, shared: load {load})",
                "target": "",
                "met": None,
            }
        )
    if "scale_2" in er:
        one, two = er["scale_1"], er["scale_2"]
        speedup = (two["events"] / two["wall_s"]) / (one["events"] / one["wall_s"])
        out.append(
            {
                "figure": f"replay --no-memo --jobs 2 vs 1 process, {tag}, realistic mix of "
                f"{one['events']:,} events (wall, start-up included)",
                "value": f"{speedup:.2f}x: {two['events'] / two['wall_s']:,.0f} vs "
                f"{one['events'] / one['wall_s']:,.0f} events per wall s, {two['rss_mb']:.0f} MB per process",
                "compare": f"{os.cpu_count()} cores, load before the bench {load}",
                "target": f"≥ {SCALING}x (near-linear), < {RSS_MB} MB per process",
                "met": speedup >= SCALING and two["rss_mb"] < RSS_MB,
            }
        )
    lr = er["launch_nomemo"]
    rate = lr["decided"] / lr["cpu_s"]
    compare = "the OPA evaluation is most of it (bench decide)"
    if (sp := er.get("launch_split")) and sp["evals"]:
        eng = sp["engine_s"] / sp["evals"] * 1e6
        rest = (sp["cpu_s"] - sp["engine_s"]) / sp["evals"] * 1e6
        compare = (
            f"per decision, same launches replayed in the bench process: engine evaluation {eng:,.0f} µs, "
            f"everything else (read, normalise, resolve, enrich, observe, record, write) {rest:,.0f} µs "
            "(CPU)"
        )
    out.append(
        {
            "figure": f"launch decisions without memo, {tag} ({lr['decided']:,} launches of every decided "
            "shape, distinct inputs), 1 process",
            "value": f"{rate:,.0f} decisions per CPU s ({lr['decided'] / lr['wall_s']:,.0f}/s wall)",
            "compare": compare,
            "target": f"≥ {DECISIONS_PER_S:,}/s",
            "met": rate >= DECISIONS_PER_S,
        }
    )
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000), indent=1))
