"""Guard handler latency (warm, against a moto server over HTTP) and cold start (fresh subprocess).

``bench_guard()`` measures:

- **cold start**: in a fresh interpreter, ``import lambdas.guard`` + ``Config.from_env`` + policy load
  (the embedded OPA engine), the work a Lambda container does before its first event. boto3 is
  imported lazily by the first invocation; its import time is reported separately.
- **warm latency per event**: ``guard.handler`` on CloudTrail ``RunInstances`` events for instances
  really launched in a moto ``ThreadedMotoServer`` (127.0.0.1, free port): half by a CN account
  (deny: describe, audit write, stop, tag, notify), half by a US one (allow: audit write only). Every
  AWS call crosses HTTP, so the figures include moto's own service time.

Run with ``python -m benchmarks.guard_bench``. Figures depend on the machine; nothing asserts on them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enforcer.demo.provision import provision
from enforcer.demo.world import MOTO_AMI
from enforcer.wiring.aws import ClientFactory

_COLD_SNIPPET = """
import time
t0 = time.perf_counter()
import lambdas.guard
t1 = time.perf_counter()
from enforcer.config import Config
cfg = Config.from_env()
t2 = time.perf_counter()
from enforcer.policy.factory import make_engine
make_engine(cfg.engine, cfg.policy_dir, cfg.opa_url, cfg.opa_timeout)
t3 = time.perf_counter()
import boto3
t4 = time.perf_counter()
print({"import_s": t1 - t0, "config_s": t2 - t1, "policy_s": t3 - t2, "boto3_s": t4 - t3})
"""


def cold_start(runs: int = 3) -> dict[str, float]:
    """Median seconds of import, config and policy load over ``runs`` fresh interpreters."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "ENFORCER_POLICY": str(root / "policies")}
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _COLD_SNIPPET],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"cold-start probe failed: {out.stderr.strip()[-500:]}")
        samples.append(json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')))
    result = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    result["cold_start_s"] = result["import_s"] + result["config_s"] + result["policy_s"]
    return result


@contextlib.contextmanager
def _bench_world(on_client: Any = None) -> Iterator[tuple[Any, Any, dict[str, str], Any]]:
    """A moto server, the provisioned runtime, a US (home) and a CN (member) account.

    Yields ``(clients, guard_module, images_by_account, runtime)``; ``on_client`` is called with
    every boto3 client the runtime creates (the deny-path bench registers its event hooks there).
    """
    from enforcer.accounts_aws import DynamoDBAccountDirectory
    from enforcer.config import Config
    from enforcer.demo.world import moto_server
    from enforcer.model import AccountOrigin
    from enforcer.wiring.aws import build_runtime, set_runtime

    stack = contextlib.ExitStack()
    url = stack.enter_context(moto_server())
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    fake = dict.fromkeys(saved, "bench")  # moto accepts any credentials; no real ones are read
    os.environ.update(fake)
    from lambdas import guard  # its import copies the Powertools log config onto "enforcer"

    quiet = {name: logging.getLogger(name).level for name in ("werkzeug", "enforcer")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        home, member = "123456789012", "111111111111"
        clients = ClientFactory("us-east-1", home_account=home, endpoint_url=url)
        if on_client is not None:
            make = clients._new_client

            def hooked(*args: Any, **kwargs: Any) -> Any:
                client = make(*args, **kwargs)
                on_client(client)
                return client

            setattr(clients, "_new_client", hooked)  # noqa: B010 - instance patch, any signature
        rt = build_runtime(Config.from_env(provision(clients)), clients=clients)
        set_runtime(rt)
        directory = DynamoDBAccountDirectory(clients.client("dynamodb"), str(rt.config.accounts_table))
        directory.put(AccountOrigin(home, "US", "US", "US", kyc="verified"))
        directory.put(AccountOrigin(member, "CN", "CN", "CN", kyc="verified"))
        guard.logger.setLevel("WARNING")
        images = {
            a: clients.client("ec2", a).describe_images(ImageIds=[MOTO_AMI])["Images"][0]["ImageId"]
            for a in (home, member)
        }
        yield clients, guard, images, rt
        set_runtime(None)
    finally:
        stack.close()
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def warm_latency(events: int = 40) -> dict[str, Any]:
    """Per-event guard latency in milliseconds against a moto server, deny and allow separately."""
    with _bench_world() as world:
        return _warm(world, events)


def _warm(world: tuple[Any, Any, dict[str, str], Any], events: int) -> dict[str, Any]:
    from enforcer.demo.events import run_instances
    from enforcer.demo.world import LambdaContext

    clients, guard, images, _rt = world
    home, member = "123456789012", "111111111111"
    ctx = LambdaContext()
    timings: dict[str, list[float]] = {"deny": [], "allow": []}
    for i in range(events + 2):
        account = member if i % 2 == 0 else home
        resp = clients.client("ec2", account).run_instances(
            ImageId=images[account], InstanceType="p5.48xlarge", MinCount=1, MaxCount=1
        )
        event = run_instances(resp, account, instanceType="p5.48xlarge")
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            out = guard.handler(event, ctx)
            elapsed = (time.perf_counter() - t0) * 1000
        if i >= 2:  # the first two warm the container (clients, catalogue, member credentials)
            timings[out["results"][0]["effect"]].append(elapsed)
    return {
        effect: {
            "events": len(ms),
            "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(sorted(ms)[max(0, int(len(ms) * 0.95) - 1)], 2),
            "mean_ms": round(statistics.fmean(ms), 2),
        }
        for effect, ms in timings.items()
        if ms
    }


class CallLog:
    """AWS calls seen through botocore ``before-call`` hooks: (perf_counter, thread, service.Operation)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int, str]] = []
        self.decided_at: float | None = None

    def attach(self, client: Any) -> None:
        """Register on one boto3 client (every service and operation)."""
        client.meta.events.register("before-call", self._before)

    def _before(self, model: Any, **kwargs: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        self.calls.append((time.perf_counter(), threading.get_ident(), name))


def deny_path(events: int = 20) -> dict[str, Any]:
    """Time from the deny decision to the stop call being issued, and the AWS calls on that path.

    Counted with botocore event hooks on every client the runtime creates (not by hand): the calls
    the handler's thread makes after the decision up to and including ``StopInstances`` are the
    serial path (target <= 3: a describe when needed, the audit transaction, the stop); the calls
    made after the stop (tags, notification, state) are reported apart with the threads they ran on.
    """
    log = CallLog()
    with _bench_world(log.attach) as world:
        return _deny(world, log, events)


def _deny(world: tuple[Any, Any, dict[str, str], Any], log: CallLog, events: int) -> dict[str, Any]:
    from enforcer.demo.events import run_instances
    from enforcer.demo.world import LambdaContext

    clients, guard, images, rt = world
    member = "111111111111"
    ctx = LambdaContext()
    deciding = rt.guard.enforcer  # the guard's own view (its directory/licence cache), not rt.enforcer
    decide = deciding.decide

    def timed_decide(*a: Any, **kw: Any) -> Any:
        d = decide(*a, **kw)
        log.decided_at = time.perf_counter()
        return d

    setattr(deciding, "decide", timed_decide)  # noqa: B010
    ms: list[float] = []
    serial: list[list[str]] = []
    after: list[list[str]] = []
    for i in range(events + 2):
        resp = clients.client("ec2", member).run_instances(
            ImageId=images[member], InstanceType="p5.48xlarge", MinCount=1, MaxCount=1
        )
        event = run_instances(resp, member, instanceType="p5.48xlarge")
        log.calls.clear()
        with contextlib.redirect_stdout(io.StringIO()):
            out = guard.handler(event, ctx)
        assert out["results"][0]["remediation"]["status"] == "stopped", out
        me = threading.get_ident()
        if log.decided_at is None:
            raise RuntimeError("the guard decided without the timed decide: the bench lost its path")
        t_dec = log.decided_at
        log.decided_at = None
        path = [c for c in log.calls if c[0] >= t_dec and c[1] == me]
        stop_at = next(c[0] for c in path if c[2] == "ec2.StopInstances")
        if i >= 2:
            ms.append((stop_at - t_dec) * 1000)
            serial.append([c[2] for c in path if c[0] <= stop_at])
            after.append([c[2] for c in log.calls if c[0] > stop_at])
    setattr(deciding, "decide", decide)  # noqa: B010
    counts = [len(s) for s in serial]
    return {
        "events": len(ms),
        "decision_to_stop_p50_ms": round(statistics.median(ms), 2),
        "decision_to_stop_p95_ms": round(sorted(ms)[max(0, int(len(ms) * 0.95) - 1)], 2),
        "serial_calls_max": max(counts),
        "serial_calls": serial[-1],
        "after_stop_calls": sorted(after[-1]),
        "target_serial_calls": 3,
    }


def bench_guard(events: int = 40, cold_runs: int = 3) -> dict[str, Any]:
    """Guard latency per event (warm, moto server) and cold start (fresh subprocess); target cold < 300 ms.

    Parameters
    ----------
    events
        Warm events measured (half deny, half allow).
    cold_runs
        Fresh interpreters for the cold-start median.
    """
    cold = cold_start(cold_runs)
    log = CallLog()
    with _bench_world(log.attach) as world:  # one moto server: its backends are process-wide
        warm = _warm(world, events)
        deny = _deny(world, log, max(4, events // 2))
    return {
        "cold_start_ms": {k.removesuffix("_s"): round(v * 1000, 1) for k, v in cold.items()}
        | {"target": 300.0},
        "warm_per_event": warm,
        "deny_path": deny,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(bench_guard(), indent=2))
