"""Latency of one decision through each engine, in one run: embedded, the REAL OPA server, the test server.

``bench_engines`` measures ``Enforcer.decide`` on the embedded engine, on the REST path against a real
``opa run --server`` (the binary ``make tools`` builds into ``.tools/bin/opa``, loaded with the bundle
``policy build`` writes; skipped with a note when the binary is missing) and against ``tests/opa_server.py``
(in-process, loaded with ``policy push``), plus the bare evaluation of the same input document on each.
It needs a source checkout (the test server lives in tests/).

Run ``python -m benchmarks.engines_bench [N]`` to print the figures as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from enforcer.accounts import StaticAccountDirectory
from enforcer.chips import ChipCatalog
from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.loader import load_bundle
from enforcer.policy.opa_rest import OpaRestEngine
from enforcer.policy.push import push_bundle

_REPO = Path(__file__).resolve().parents[1]
_ACCOUNT = AccountOrigin("111122223333", "US", "US", "US", "verified")
_NOW = 1_780_000_000.0


def _load_test_server() -> ModuleType:
    path = _REPO / "tests" / "opa_server.py"
    spec = importlib.util.spec_from_file_location("_bench_opa_server", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise RuntimeError(f"the OPA test server is not available at {path} (needs a source checkout)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def opa_binary() -> Path | None:
    """``$OPA_BIN`` or ``.tools/bin/opa`` when it is an executable file, else None."""
    path = Path(os.environ.get("OPA_BIN", str(_REPO / ".tools" / "bin" / "opa")))
    return path if path.is_file() and os.access(path, os.X_OK) else None


def start_real_opa(
    binary: Path, bundle_file: Path, wait: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """``opa run --server`` on a free 127.0.0.1 port with ``bundle_file``: (process, URL) once healthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [str(binary), "run", "--server", "--addr", f"127.0.0.1:{port}", "--skip-version-check"]
    cmd += ["--log-level", "error", "--bundle", str(bundle_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health?bundles", timeout=0.5) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    _out, err = proc.communicate(timeout=10)
    detail = err.decode(errors="replace").strip()[-500:] if err else ""
    raise RuntimeError(f"opa run did not become healthy: {detail or f'no answer within {wait} s'}")


def _request() -> LaunchRequest:
    return LaunchRequest(
        "cloudtrail",
        "ec2:RunInstances",
        _ACCOUNT.account_id,
        "us-east-1",
        items=[LaunchItem("p5.48xlarge", 2)],
    )


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_us": round(statistics.median(ordered) / 1000, 1),
        "p99_us": round(p99 / 1000, 1),
        "mean_us": round(statistics.fmean(ordered) / 1000, 1),
    }


def _time(fn: Callable[[], Any], n: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return _percentiles(samples)


def bench_engines(n: int = 2000, policy_dir: Path | str | None = None, warmup: int = 100) -> dict[str, Any]:
    """Measure p50/p99 decision latency on both engines in the same run.

    Parameters
    ----------
    n
        Timed calls per case.
    policy_dir
        Policy directory (default: the repository's ``policies/``).
    warmup
        Untimed calls before each case.

    Returns
    -------
    dict
        ``{"n", "embedded_decide", "rest_decide", "embedded_eval", "rest_eval", "real_opa_decide",
        "real_opa_eval", "real_opa_version"}``; each case holds ``p50_us``, ``p99_us`` and ``mean_us``
        (the real-OPA cases are ``{"skipped": why}`` without the binary). Every decision is checked to be
        ``allow`` first.
    """
    bundle = load_bundle(policy_dir or _REPO / "policies")
    catalog = ChipCatalog()
    accounts = StaticAccountDirectory([_ACCOUNT])
    embedded = EmbeddedEngine(bundle)
    server = _load_test_server().OpaTestServer().start()
    try:
        push_bundle(bundle, server.url, include_tests=False)
        rest = OpaRestEngine(server.url, bundle.revision, timeout=2.0)
        emb_enf = Enforcer(catalog=catalog, accounts=accounts, engine=embedded)
        rest_enf = Enforcer(catalog=catalog, accounts=accounts, engine=rest)
        for enf in (emb_enf, rest_enf):
            d = enf.decide(_request(), now=_NOW)
            if d.effect != "allow":
                raise RuntimeError(
                    f"benchmark request was not allowed on {enf.engine.name}: {d.reason_codes}"
                )
        input_doc = emb_enf.decide(_request(), now=_NOW).input or {}
        results: dict[str, Any] = {"n": n}
        results["embedded_decide"] = _time(lambda: emb_enf.decide(_request(), now=_NOW), n, warmup)
        results["rest_decide"] = _time(lambda: rest_enf.decide(_request(), now=_NOW), n, warmup)
        results["embedded_eval"] = _time(lambda: embedded.evaluate(input_doc), n, warmup)
        results["rest_eval"] = _time(lambda: rest.evaluate(input_doc), n, warmup)
        if rest_enf.counters["engine_failures"] or emb_enf.counters["engine_failures"]:
            raise RuntimeError("an engine failed during the benchmark")
        rest.close()
        try:
            results.update(_bench_real_opa(bundle.root, catalog, accounts, input_doc, n, warmup))
        except RuntimeError as exc:  # shown in its row; the other figures of the run still count
            failed = {"skipped": f"failed: {exc}"[:300]}
            results.update(real_opa_decide=failed, real_opa_eval=failed)
        return results
    finally:
        server.stop()


def _bench_real_opa(
    policy_dir: Path,
    catalog: ChipCatalog,
    accounts: StaticAccountDirectory,
    input_doc: Any,
    n: int,
    warmup: int,
) -> dict[str, Any]:
    from enforcer.policy.bundle import build_bundle

    binary = opa_binary()
    if binary is None:
        why = {"skipped": "no OPA binary at .tools/bin/opa (run `make tools`)"}
        return {"real_opa_decide": why, "real_opa_eval": why}
    with tempfile.TemporaryDirectory() as tmp:
        built = build_bundle(policy_dir, Path(tmp) / "bundle.tar.gz")
        proc, url = start_real_opa(binary, built.path)
        try:
            real = OpaRestEngine(url, built.revision, timeout=2.0)
            enf = Enforcer(catalog=catalog, accounts=accounts, engine=real)
            first = enf.decide(_request(), now=_NOW)
            if first.effect != "allow" or first.policy_revision != built.revision:
                raise RuntimeError(f"real OPA: {first.effect} {first.reason_codes} {first.policy_revision}")
            out: dict[str, Any] = {
                "real_opa_decide": _time(lambda: enf.decide(_request(), now=_NOW), n, warmup),
                "real_opa_eval": _time(lambda: real.evaluate(input_doc), n, warmup),
            }
            if enf.counters["engine_failures"]:
                raise RuntimeError("the real OPA server failed during the benchmark")
            version = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30)
            out["real_opa_version"] = version.stdout.split("\n", 1)[0].removeprefix("Version: ").strip()
            real.close()
            return out
        finally:
            proc.terminate()
            proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    """Print :func:`bench_engines` as JSON (optional first argument: N)."""
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 2000
    print(json.dumps(bench_engines(n), indent=2))


if __name__ == "__main__":
    main()
