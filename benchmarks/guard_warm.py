"""The guard's warm deny beside the plain boto3 control, moto in-process, in the same run (issue 16).

Fair to both sides:

- **the same world state per event**: the control restarts its one p5 between events (untimed); so
  does this bench (one p5, restarted untimed, a new CloudTrail event id each time), instead of
  launching a new instance per event (moto's EC2 calls then scan a growing instance list);
- **logs paid as in Lambda**: the handler's Powertools JSON lines are written (INFO, as deployed)
  to the null device, not silenced and not accumulated in memory;
- **moto's transaction snapshot**: moto's ``TransactWriteItems`` deep-copies every table it touches
  once per operation before applying it (``moto/dynamodb/models/__init__.py``), so its cost grows
  with the audit table -- 3-5 copies of every record logged so far, per deny -- and the garbage
  drives the collector into long pauses. DynamoDB's cost does not depend on the table's size. The
  bench runs both ways in the same process: ``item snapshot`` (the same rollback semantics, keeping
  only the items the transaction touches) interleaved with the control, then ``as shipped`` apart
  (its garbage would land in the others' timings), and reports both;
- **the guard as the template deploys it**: with the compute ledger (``ENFORCER_LEDGER_TABLE``: its
  read is a call before the decision, its update rides in the audit transaction) and the deny topic
  without subscribers (the tests' world subscribes a queue to read alerts; moto delivers to it inside
  ``Publish``, signing a new certificate each time, where SNS delivers after ``Publish`` returns).

Each run also counts the AWS calls of a warm deny (botocore hooks): how many happen before the stop
is issued, and which follow it, and splits each event's CPU time into moto's (the thread CPU time spent
inside moto's in-process dispatch, every thread) and the rest. The control runs in the same process,
interleaved, for the same split: in-process moto charges every call's server side to the caller, so a
handler that makes more calls pays moto's CPU for each (an ``UpdateItem`` costs moto ~5 ms of CPU here,
an SNS ``Publish`` signs a new X.509 certificate), which real AWS does on its own machines.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTROL_DIR = ROOT / "benchmarks" / "anchors" / "custodian"


@contextlib.contextmanager
def moto_cpu(by_call: list[tuple[str, float]] | None = None) -> Iterator[list[float]]:
    """Collect the thread CPU seconds of every in-process moto dispatch (each thread's own clock);
    with ``by_call``, also ``(service.Operation, seconds)`` of each."""
    from moto.core.botocore_stubber import BotocoreStubber

    spent: list[float] = []
    original = BotocoreStubber.__call__

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            dt = time.thread_time() - t0
            spent.append(dt)  # list.append: atomic under the GIL
            if by_call is not None:  # the event name: before-send.<service>.<Operation>
                by_call.append((str(args[0] if args else kwargs.get("event_name", "")).split(".", 1)[-1], dt))

    BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


@contextlib.contextmanager
def item_snapshot_transactions() -> Iterator[None]:
    """moto's ``TransactWriteItems`` with a rollback snapshot of the touched items, not whole tables."""
    import moto.dynamodb.models as mdm
    from moto.dynamodb.models.table import Table

    backend_cls = mdm.DynamoDBBackend
    original = backend_cls.transact_write_items
    real_copy = mdm.copy

    class _NoTableCopy:
        @staticmethod
        def deepcopy(x: Any) -> Any:
            return x if isinstance(x, Table) else copy.deepcopy(x)

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[str, dict[str, Any], Any]] = []
        for item in transact_items:
            _, op = next(iter(item.items()))
            name = op.get("TableName")
            table = self.tables.get(name)
            if table is None:
                continue
            if "Key" in op:
                key = op["Key"]
            else:
                attrs = op.get("Item") or {}
                key = {k: attrs[k] for k in (table.hash_key_attr, table.range_key_attr) if k and k in attrs}
            try:
                current = self.get_item(name, key)
            except Exception:  # moto raises its own validation errors below, with the original code
                current = None
            saved.append((name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
        mdm.copy = _NoTableCopy  # type: ignore[assignment]
        try:
            original(self, transact_items)
        except Exception:
            for name, key, attrs in reversed(saved):
                with contextlib.suppress(Exception):
                    self.delete_item(name, key)
                if attrs is not None:
                    self.put_item(name, attrs)
            raise
        finally:
            mdm.copy = real_copy

    backend_cls.transact_write_items = transact
    try:
        yield
    finally:
        backend_cls.transact_write_items = original


def _logs_to(stream: Any) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point the handlers' log streams (Powertools keeps the stdout of its creation) at ``stream``."""
    out = []
    for name in ("gpu-guard", "enforcer", "enforcer.actions", ""):
        for h in logging.getLogger(name).handlers:
            if isinstance(h, logging.StreamHandler):
                out.append((h, h.setStream(stream)))
    return out


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def _stopped_guard(r: Any) -> bool:
    return bool(r["results"][0]["remediation"]["status"] == "stopped")


def _stopped_list(r: Any) -> bool:
    return isinstance(r, list) and len(r) == 1


def _control_in_process(w: Any) -> tuple[Callable[[Any], Any], dict[str, Any], Callable[[], None]]:
    """The anchors' plain control handler in this process and moto world, with its p5 and its event."""
    sys.path.insert(0, str(CONTROL_DIR))
    try:
        import control_handler
        import fixtures as fx
    finally:
        sys.path.remove(str(CONTROL_DIR))
    from tests import lambda_env as le

    ec2 = w.client("ec2", le.HOME)
    deny_id = ec2.run_instances(ImageId=le.MOTO_AMI, MinCount=1, MaxCount=1, InstanceType=fx.DENY_TYPE)[
        "Instances"
    ][0]["InstanceId"]
    control_handler._ec2 = ec2  # the handler's own lazily created client, in the world's account

    def start() -> None:
        ec2.start_instances(InstanceIds=[deny_id])

    return (lambda e: control_handler.handler(e, None)), fx.runinstances_event(deny_id, fx.DENY_TYPE), start


def _deployed_world(make: Callable[..., Any]) -> Any:
    """The tests' world as the template deploys the guard: with the compute ledger table
    (``ENFORCER_LEDGER_TABLE``: one more read before the decision, its update in the audit transaction)
    and the deny topic without subscribers (the tests subscribe a queue to read the alerts; moto delivers
    to it inside ``Publish``, signing a new certificate, where SNS delivers after ``Publish`` returns)."""
    import boto3

    from enforcer.ledger.dynamo import create_ledger_table

    create_ledger_table(boto3.client("dynamodb", region_name="us-east-1"), "gle-ledger")
    saved = os.environ.get("ENFORCER_LEDGER_TABLE")
    os.environ["ENFORCER_LEDGER_TABLE"] = "gle-ledger"
    try:
        w = make()
    finally:
        if saved is None:
            os.environ.pop("ENFORCER_LEDGER_TABLE", None)
        else:
            os.environ["ENFORCER_LEDGER_TABLE"] = saved
    sns = w.client("sns")
    for sub in sns.list_subscriptions_by_topic(TopicArn=w.topic_arn)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    if getattr(w.rt.enforcer, "observer", None) is None:
        raise RuntimeError("the bench world has no ledger: ENFORCER_LEDGER_TABLE was not read")
    return w


def measure(n: int = 200) -> dict[str, Any]:
    """``n`` warm denies per variant (as shipped, item snapshot), interleaved, in this process."""
    import botocore.client

    from enforcer.policy.factory import DEPLOYED_ENGINE, make_engine
    from lambdas import guard
    from tests import lambda_env as le

    calls: list[tuple[str, float]] = []
    orig_call = botocore.client.BaseClient._make_api_call

    def counted(self: Any, op: str, params: Any) -> Any:
        calls.append((f"{self.meta.service_model.service_name}.{op}", time.perf_counter()))
        return orig_call(self, op, params)

    engine = make_engine(DEPLOYED_ENGINE, ROOT / "policies")  # the template's engine
    assert engine.name == DEPLOYED_ENGINE, f"engine {DEPLOYED_ENGINE} unavailable: {engine.name} decided"
    gen = le.world_factory(engine)
    make = next(gen)
    w = _deployed_world(make)
    resp = w.launch(account=le.MEMBER)
    ec2, iid = w.client("ec2", le.MEMBER), resp["Instances"][0]["InstanceId"]
    control, control_event, control_start = _control_in_process(w)
    variants = ("as shipped", "item snapshot", "control")
    ctx = le.LambdaContext()
    out: dict[str, Any] = {
        v: {"ms": [], "cpu_ms": [], "moto_ms": [], "gc_ms": 0.0, "gc_max_ms": 0.0, "gc_runs": [0, 0, 0]}
        | {"by_call": {}}
        for v in variants
    }
    moto_calls: list[tuple[str, float]] = []
    gcs: dict[str, Any] = {"t": 0.0, "ms": 0.0, "max": 0.0, "runs": [0, 0, 0]}

    def gc_cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gcs["t"] = time.perf_counter()
        else:
            pause = (time.perf_counter() - gcs["t"]) * 1000
            gcs["ms"] += pause
            gcs["max"] = max(gcs["max"], pause)
            gcs["runs"][info["generation"]] += 1

    gc.callbacks.append(gc_cb)
    botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]
    first_calls: dict[str, list[str]] = {}
    null = open(os.devnull, "w")  # noqa: SIM115 - closed below, after the handlers are restored
    streams = _logs_to(null)
    try:
        with contextlib.redirect_stdout(null), moto_cpu(moto_calls) as in_moto:
            # the guard and the control interleaved; "as shipped" after them, apart: its garbage (moto's
            # whole-table copies) would otherwise land in the others' timings
            rounds = [(i, v) for i in range(n + 5) for v in ("item snapshot", "control")]
            rounds += [(i, "as shipped") for i in range(n + 5)]
            for i, variant in rounds:
                if variant == "control":
                    control_start()  # untimed, as the anchor harness restarts its p5
                    handler, event, check = control, control_event, _stopped_list
                else:
                    ec2.start_instances(InstanceIds=[iid])  # untimed, as the control restarts its p5
                    event = le.run_instances_event(resp, le.MEMBER, instanceType="p5.48xlarge")
                    handler, check = (lambda e: guard.handler(e, ctx)), _stopped_guard
                ctx_mgr = (
                    item_snapshot_transactions() if variant == "item snapshot" else contextlib.nullcontext()
                )
                with ctx_mgr:
                    calls.clear()
                    in_moto.clear()
                    moto_calls.clear()
                    g0, runs0 = gcs["ms"], list(gcs["runs"])
                    gcs["max"] = 0.0
                    c0, t0 = time.process_time(), time.perf_counter()
                    r = handler(event)
                    dt = (time.perf_counter() - t0) * 1000
                    cpu = (time.process_time() - c0) * 1000
                    moto_ms = sum(in_moto) * 1000
                if not check(r):
                    raise RuntimeError(f"{variant}: the warm deny did not stop the p5: {r!r:.300}")
                if i >= 5:
                    rec = out[variant]
                    rec["ms"].append(dt)
                    rec["cpu_ms"].append(cpu)
                    rec["moto_ms"].append(moto_ms)
                    rec["gc_ms"] += gcs["ms"] - g0
                    rec["gc_max_ms"] = max(rec["gc_max_ms"], gcs["max"])
                    for g in range(3):  # collections of each generation during this event
                        rec["gc_runs"][g] += gcs["runs"][g] - runs0[g]
                    for op, sec in moto_calls:
                        rec["by_call"].setdefault(op, []).append(sec * 1000)
                    first_calls.setdefault(variant, [c for c, _ in sorted(calls, key=lambda x: x[1])])
    finally:
        for handler, stream in streams:
            handler.setStream(stream)
        null.close()
        botocore.client.BaseClient._make_api_call = orig_call  # type: ignore[method-assign]
        gc.callbacks.remove(gc_cb)
        with contextlib.suppress(StopIteration):
            next(gen)
    res: dict[str, Any] = {"n": n, "load_before": os.getloadavg()}
    for variant, rec in out.items():
        names = first_calls[variant]
        stop_at = names.index("ec2.StopInstances") if "ec2.StopInstances" in names else len(names)
        res[variant] = {
            "p50_ms": _pct(rec["ms"], 0.5),
            "p99_ms": _pct(rec["ms"], 0.99),
            "cpu_p50_ms": _pct(rec["cpu_ms"], 0.5),
            "moto_cpu_p50_ms": _pct(rec["moto_ms"], 0.5),
            "own_cpu_p50_ms": _pct([c - m for c, m in zip(rec["cpu_ms"], rec["moto_ms"], strict=True)], 0.5),
            # the tail split: CPU (this process's work, GC included) vs wall (also the machine's load)
            "cpu_p99_ms": _pct(rec["cpu_ms"], 0.99),
            "own_cpu_p99_ms": _pct([c - m for c, m in zip(rec["cpu_ms"], rec["moto_ms"], strict=True)], 0.99),
            "gc_ms_per_event": rec["gc_ms"] / n,
            "gc_max_pause_ms": rec["gc_max_ms"],
            "gc_collections_by_generation": rec["gc_runs"],
            "moto_cpu_by_call_p50_ms": {o: round(_pct(v, 0.5), 2) for o, v in sorted(rec["by_call"].items())},
            "calls": names,
            "serial_before_stop": stop_at + 1,
        }
    return res


def rows(res: dict[str, Any], control: dict[str, Any], warm_row: Callable[..., dict[str, Any]]) -> list[Any]:
    """Table rows: the warm deny of each variant beside the control, and the calls of one deny."""
    out = []
    for variant in ("as shipped", "item snapshot"):
        r = res[variant]
        row = warm_row([r["p50_ms"]] * 1, control)  # replaced below with the real percentiles
        row["figure"] = f"guard warm deny, moto in-process ({res['n']} events, moto transactions {variant})"
        row["value"] = (
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms (CPU p50 {r['cpu_p50_ms']:.1f} ms)"
        )
        row["met"] = r["p50_ms"] <= 2.0 * control["p50_ms"] and r["p99_ms"] <= 20.0
        out.append(row)
    g, c = res["item snapshot"], res["control"]
    out.append(
        {
            "figure": "guard warm deny CPU: the handler's own vs moto's (in-process, item snapshot, p50)",
            "value": f"own {g['own_cpu_p50_ms']:.1f} ms + moto {g['moto_cpu_p50_ms']:.1f} ms "
            f"({len(g['calls'])} calls)",
            "compare": f"plain control in the same process, interleaved: own {c['own_cpu_p50_ms']:.1f} ms + "
            f"moto {c['moto_cpu_p50_ms']:.1f} ms ({len(c['calls'])} calls), wall p50 {c['p50_ms']:.1f} ms",
            "target": "",
            "met": None,
        }
    )
    calls = g["calls"]
    k = g["serial_before_stop"]
    out.append(
        {
            "figure": "guard warm deny: AWS calls (botocore hooks, moto in-process)",
            "value": f"{len(calls)} calls, {k} serial up to the stop: {' -> '.join(calls[:k])}",
            "compare": "after the stop, concurrently: " + ", ".join(calls[k:]),
            "target": "<= 3 serial before the stop",
            "met": k <= 3,
        }
    )
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 50), indent=1, default=str))
