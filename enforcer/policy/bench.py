"""Latency of one decision through each engine, in one run: embedded vs OPA REST (loopback test server).

``bench_engines`` measures ``Enforcer.decide`` on the embedded engine and on the REST path (against
``tests/opa_server.py`` started in-process, loaded with ``policy push``), plus the bare embedded
evaluation of the same input document. It needs a source checkout (the test server lives in tests/).

Run ``python -m enforcer.policy.bench [N]`` to print the figures as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
import time
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

_REPO = Path(__file__).resolve().parents[2]
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
        ``{"n", "embedded_decide", "rest_decide", "embedded_eval", "rest_eval"}``; each case holds
        ``p50_us``, ``p99_us`` and ``mean_us``. Every decision is checked to be ``allow`` first.
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
        return results
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Print :func:`bench_engines` as JSON (optional first argument: N)."""
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 2000
    print(json.dumps(bench_engines(n), indent=2))


if __name__ == "__main__":
    main()
