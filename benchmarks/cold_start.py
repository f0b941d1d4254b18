"""Cold start to the first deny and warm deny latency: the guard beside the plain boto3 control and
Cloud Custodian, measured in the same run, in fresh processes, interleaved round by round.

Cold start = handler import (boto3 included) + the first deny event handled (describe + stop, and for
the guard: decide, log, notify); the moto setup in between is excluded. The guard and the control use
the project's .venv; Custodian (``c7n``) runs in ``.venv-anchors`` (``make bench-anchors``) through the
anchor harness's ``child.py`` and is reported "not measured in this run" when that venv is absent.
Every figure is a median over the rounds with its [min-max] range; the targets compare medians of
per-round differences and ratios, so a busy moment hits both sides of a comparison alike.

Like with like: the guard runs with the Go settings the template deploys (``go_env.DEPLOYED``), and with
its modules byte-compiled, as pip leaves boto3's and Custodian's (``enforcer/``, ``lambdas/`` and the
anchors' handlers, the control's included, are compiled into ``__pycache__`` before the rounds). An
artifact packaged where no Python 3.12 exists ships no byte code (``/var/task`` is read-only), so its cold
start also compiles every module: each round also runs the guard without byte code, on its own row.
``make package`` byte-compiles the artifact when a Python 3.12 is there (``make smoke`` times both).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = ROOT / "benchmarks" / "anchors"
CUSTODIAN = ANCHORS / "custodian"
ANCHOR_VENV = ROOT / ".venv-anchors"

#: Targets of issue 16.
COLD_OVER_CONTROL_MS = 100.0
COLD_VS_CUSTODIAN = 0.65
WARM_P50_VS_CONTROL = 2.0
WARM_P99_MS = 20.0

#: The environment the anchor harness gives every child (fake credentials, Lambda-like variables).
LAMBDA_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
}

Row = dict[str, Any]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENFORCER_"))}
    env.update(LAMBDA_ENV)
    env.update(extra or {})
    return env


def _last_json(cmd: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> dict[str, Any]:
    p = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{Path(cmd[1]).name} failed (rc={p.returncode}): {p.stderr[-1500:]}")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def custodian_python() -> Path | None:
    """The anchor venv's Python when it exists and imports c7n, else None."""
    py = ANCHOR_VENV / "bin" / "python"
    if not py.exists():
        return None
    ok = subprocess.run([str(py), "-c", "import c7n, moto, boto3"], capture_output=True, check=False)
    return py if ok.returncode == 0 else None


def compile_ours() -> None:
    """Byte-compile ``enforcer/``, ``lambdas/`` and the anchors' handlers (the control's among them) into
    ``__pycache__``, as pip does for installed packages."""
    import compileall

    for d in (ROOT / "enforcer", ROOT / "lambdas", ANCHORS):
        compileall.compile_dir(str(d), quiet=2, force=False)


_built: set[Path] = set()


def deployed_engine_env() -> dict[str, str]:
    """The template's engine (``ENFORCER_ENGINE=wasm``) with its packaged, precompiled policy module, as
    ``make package`` writes it: written afresh into ``build/bench-policy-wasm`` once per bench process
    (one left by an earlier run may be of other modules or an older manifest, which the engine would
    ignore and compile instead: a cold start that is not the deployed one), and checked to be the one
    the engine loads precompiled."""
    import shutil

    from enforcer.policy.factory import DEPLOYED_ENGINE
    from enforcer.policy.loader import load_bundle
    from enforcer.policy.wasm_build import find_compiled, host_target, opa_binary, write_artifact

    out = ROOT / "build" / "bench-policy-wasm"
    env = {"ENFORCER_ENGINE": DEPLOYED_ENGINE, "ENFORCER_POLICY_WASM": str(out)}
    if out in _built:
        return env
    opa = opa_binary()
    if opa is None:
        raise RuntimeError(
            "make bench needs the OPA binary (make tools) to compile the deployed engine's policy"
        )
    bundle = load_bundle(ROOT / "policies")
    shutil.rmtree(out, ignore_errors=True)
    write_artifact(bundle, out, opa)
    saved = os.environ.get("ENFORCER_POLICY_WASM")
    os.environ["ENFORCER_POLICY_WASM"] = str(out)
    try:
        found = find_compiled(bundle, host_target())
    finally:
        if saved is None:
            os.environ.pop("ENFORCER_POLICY_WASM", None)
        else:
            os.environ["ENFORCER_POLICY_WASM"] = saved
    if found.cwasm is None or not found.source.startswith("artifact"):
        raise RuntimeError(f"{out} is not loaded precompiled ({found.source}): the cold start would compile")
    _built.add(out)
    return env


def guard_cold(byte_code: bool = True) -> dict[str, Any]:
    """One fresh process: import the guard handler, then its first deny (benchmarks/anchors), with the
    deployed Go settings; ``byte_code=False`` ignores compiled modules (``PYTHONPYCACHEPREFIX`` at an
    empty folder: every module is compiled from source, as in an artifact packaged without a Python 3.12)."""
    from enforcer.policy.go_env import DEPLOYED

    extra = {
        "PYTHONPATH": str(ROOT),
        "_HANDLER": "lambdas.guard.handler",
        **DEPLOYED,
        **deployed_engine_env(),
    }
    if not byte_code:
        import tempfile

        extra["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="no-pyc-")
        extra["PYTHONDONTWRITEBYTECODE"] = "1"
    r = _last_json([sys.executable, str(ANCHORS / "guard_cold_first_event.py")], _env(extra), ROOT)
    if r.get("effect") != "deny" or r.get("remediation") != "stopped":
        raise RuntimeError(f"the guard's first event did not stop the p5: {r}")
    return {
        "cold_ms": float(r["cold_total_ms"]),
        "first_event_ms": float(r["first_event_ms"]),
        "cpu_ms": float(r["cold_cpu_ms"]),
    }


def control_cold() -> dict[str, Any]:
    """One fresh process: import boto3 and the plain control handler, then its first deny."""
    r = _last_json([sys.executable, str(ANCHORS / "control_cold_first_event.py")], _env(), ROOT)
    if not r.get("stopped"):
        raise RuntimeError(f"the control's first event stopped nothing: {r}")
    return {
        "cold_ms": float(r["cold_total_ms"]),
        "first_event_ms": float(r["first_event_ms"]),
        "cpu_ms": float(r["cold_cpu_ms"]),
    }


def child(python: Path | str, impl: str, n: int) -> dict[str, Any]:
    """The anchor harness's child.py (Custodian or any ``module:function``) in a fresh process."""
    env = _env({"MOTO_EC2_LOAD_DEFAULT_AMIS": "false", "PYTHONDONTWRITEBYTECODE": "1"})
    env["C7N_BENCH_T_SPAWN_NS"] = str(time.monotonic_ns())
    r = _last_json([str(python), str(CUSTODIAN / "child.py"), impl, str(n), "list"], env, CUSTODIAN)
    if not r.get("correct_after_first", {}).get("ok"):
        raise RuntimeError(f"{impl}: the first event did not stop the p5 and leave the t3 running")
    r["cold_ms"] = float(r["import_ms"]) + float(r["first_event_ms"])
    return r


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pct(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def measure_cold(rounds: int = 5) -> dict[str, Any]:
    """``rounds`` interleaved rounds of guard, control and (when installed) Custodian cold starts."""
    c7n_py = custodian_python()
    guard: list[float] = []
    control: list[float] = []
    guard_cpu: list[float] = []
    control_cpu: list[float] = []
    c7n: list[float] = []
    over: list[float] = []
    ratio: list[float] = []
    compile_ours()
    source_only: list[float] = []
    for _ in range(rounds):
        source_only.append(guard_cold(byte_code=False)["cold_ms"])
        gr, cr = guard_cold(), control_cold()
        g, c = gr["cold_ms"], cr["cold_ms"]
        guard.append(g)
        control.append(c)
        guard_cpu.append(gr["cpu_ms"])  # CPU time of the same windows, every thread (the Go engine's too)
        control_cpu.append(cr["cpu_ms"])
        over.append(g - c)
        if c7n_py is not None:
            k = child(c7n_py, "c7n", 0)["cold_ms"]
            c7n.append(k)
            ratio.append(g / k)
    return {
        "rounds": rounds,
        "guard_ms": guard,
        "guard_no_byte_code_ms": source_only,
        "control_ms": control,
        "guard_cpu_ms": guard_cpu,
        "control_cpu_ms": control_cpu,
        "custodian_ms": c7n or None,
        "guard_minus_control_ms": over,
        "guard_over_custodian": ratio or None,
        "load_before": os.getloadavg(),
    }


def measure_warm_control(n: int = 200) -> dict[str, Any]:
    """The plain control's warm deny latency (describe + stop, moto in-process, this venv)."""
    r = child(sys.executable, "control_handler:handler", n)
    deny = [float(x) for x in r["warm_deny_ms"]]
    return {"n": n, "p50_ms": pct(deny, 0.5), "p99_ms": pct(deny, 0.99)}


def _rng(v: Sequence[float], unit: str = "ms") -> str:
    s = stats(v)
    return f"{s['median']:.0f} {unit} [{s['min']:.0f}-{s['max']:.0f}]"


def cold_rows(res: dict[str, Any]) -> list[Row]:
    """Table rows for :func:`measure_cold` (median [min-max] over the rounds)."""
    n = res["rounds"]
    over = stats(res["guard_minus_control_ms"])["median"]
    compare = f"plain boto3 control {_rng(res['control_ms'])}"
    if res["custodian_ms"]:
        compare += f"; Cloud Custodian {_rng(res['custodian_ms'])}"
    else:
        compare += "; Cloud Custodian not measured in this run (make bench-anchors)"
    rows: list[Row] = [
        {
            "figure": f"guard cold start: import + first deny handled ({n} fresh processes each)",
            "value": _rng(res["guard_ms"]),
            "compare": compare,
            "target": f"≤ control + {COLD_OVER_CONTROL_MS:.0f} ms (median of per-round differences: "
            f"{over:+.0f} ms)",
            "met": over <= COLD_OVER_CONTROL_MS,
        }
    ]
    if res.get("guard_no_byte_code_ms"):
        rows.append(
            {
                "figure": "guard cold start without any byte code (every module compiled, as an artifact "
                "packaged without a Python 3.12 runs)",
                "value": _rng(res["guard_no_byte_code_ms"]),
                "compare": f"with byte code, as measured above: {_rng(res['guard_ms'])}",
                "target": "",
                "met": None,
            }
        )
    if res["guard_over_custodian"]:
        ratio = stats(res["guard_over_custodian"])["median"]
        rows.append(
            {
                "figure": "guard cold start ÷ Cloud Custodian's (same rounds)",
                "value": f"{ratio:.2f}x [{min(res['guard_over_custodian']):.2f}-"
                f"{max(res['guard_over_custodian']):.2f}]",
                "compare": f"Cloud Custodian {_rng(res['custodian_ms'])}",
                "target": f"≤ {COLD_VS_CUSTODIAN}x",
                "met": ratio <= COLD_VS_CUSTODIAN,
            }
        )
    else:
        rows.append(
            {
                "figure": "guard cold start ÷ Cloud Custodian's",
                "value": "not measured in this run",
                "compare": "make bench-anchors installs c7n in .venv-anchors",
                "target": f"≤ {COLD_VS_CUSTODIAN}x",
                "met": None,
            }
        )
    return rows


def warm_row(guard_ms: Sequence[float], control: dict[str, Any]) -> Row:
    """The guard's warm deny beside the control's, with the issue's targets."""
    p50, p99 = pct(guard_ms, 0.5), pct(guard_ms, 0.99)
    return {
        "figure": f"guard warm deny, moto in-process ({len(guard_ms)} events)",
        "value": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        "compare": f"plain boto3 control (describe + stop) p50 {control['p50_ms']:.1f} ms, "
        f"p99 {control['p99_ms']:.1f} ms ({control['n']} events)",
        "target": f"p50 ≤ {WARM_P50_VS_CONTROL:.0f}x control, p99 ≤ {WARM_P99_MS:.0f} ms",
        "met": p50 <= WARM_P50_VS_CONTROL * control["p50_ms"] and p99 <= WARM_P99_MS,
    }


if __name__ == "__main__":
    print(json.dumps(measure_cold(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=1))
