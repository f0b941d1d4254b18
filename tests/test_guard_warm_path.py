"""The guard's warm deny path (issue 16): which AWS calls a deny makes, in which order, through the
deployed handler against moto; and the lookup cache the guard (only) decides through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.client
import pytest

from enforcer.config import Config, ConfigError
from enforcer.ledger.dynamo import create_ledger_table
from enforcer.lookup_cache import CachedDirectory, TtlCache, cached_view
from enforcer.model import AccountOrigin
from lambdas import guard
from tests.lambda_env import MEMBER, LambdaContext, World, run_instances_event, world_factory


@dataclass
class Calls:
    """Every AWS call made while recording: (service.operation, thread, start, end)."""

    log: list[tuple[str, str, float, float]] = field(default_factory=list)
    on: bool = False

    def names(self) -> list[str]:
        return [c[0] for c in sorted(self.log, key=lambda c: c[2])]

    def before_stop(self) -> list[str]:
        """Calls that ended before StopInstances started (they were serial with it)."""
        stop = next(c for c in self.log if c[0] == "ec2.StopInstances")
        return [c[0] for c in sorted(self.log, key=lambda c: c[2]) if c[3] <= stop[2]] + ["ec2.StopInstances"]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    rec = Calls()
    orig = botocore.client.BaseClient._make_api_call
    lock = threading.Lock()

    def counted(self: Any, op: str, params: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return orig(self, op, params)
        finally:
            if rec.on:
                with lock:
                    rec.log.append((f"{self.meta.service_model.service_name}.{op}",
                                    threading.current_thread().name, t0, time.perf_counter()))  # fmt: skip

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    yield rec


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def _deny(w: World, calls: Calls) -> dict[str, Any]:
    resp = w.launch(account=MEMBER)
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
    calls.log.clear()
    calls.on = True
    try:
        out = guard.handler(event, LambdaContext())
    finally:
        calls.on = False
    (r,) = out["results"]
    assert r["effect"] == "deny" and r["remediation"]["status"] == "stopped", r
    return r


def test_warm_deny_is_one_write_then_the_stop_then_three_calls_at_once(make_world: Any, calls: Calls) -> None:
    w: World = make_world()
    _deny(w, calls)  # the container's first deny: directory, licences, audit head read and cached
    r = _deny(w, calls)
    assert calls.before_stop() == ["dynamodb.TransactWriteItems", "ec2.StopInstances"]
    after = sorted(calls.names()[2:])
    assert after == ["dynamodb.PutItem", "ec2.CreateTags", "sns.Publish"]  # state acted: whole item
    threads = {c[1] for c in calls.log if c[0] in after}
    assert "MainThread" not in threads  # the follow-up calls run on the guard's pool
    iid = r["remediation"]["acted"][0]
    assert w.state(iid, MEMBER) in ("stopping", "stopped")
    assert w.tags(iid, MEMBER)["gpu-enforcer:decision-id"] == r["decision_id"]
    assert w.rt.guard.ledger.get(r["decision_id"])["state"] == "acted"  # a redelivery has nothing to do
    assert [n["decision_id"] for n in w.notifications()][-1] == r["decision_id"]


def test_the_ledger_adds_one_read_to_the_warm_deny_and_writes_in_the_transaction(
    make_world: Any, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_ledger_table(boto3.client("dynamodb", region_name="us-east-1"), "gle-ledger")
    monkeypatch.setenv("ENFORCER_LEDGER_TABLE", "gle-ledger")
    w: World = make_world()
    _deny(w, calls)
    _deny(w, calls)
    serial = calls.before_stop()
    assert serial.count("dynamodb.TransactWriteItems") == 1 and serial[-1] == "ec2.StopInstances"
    assert len(serial) <= 3, serial  # at most: the ledger read, the transaction, the stop
    assert len(calls.names()) <= 6, calls.names()


def test_a_failed_stop_is_queued_and_its_redelivery_takes_it_off_the_backlog(
    make_world: Any, calls: Calls
) -> None:
    from tests.test_guard_faults import Fault

    w: World = make_world()
    _deny(w, calls)
    resp = w.launch(account=MEMBER)
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
    ec2 = w.rt.clients.client("ec2", MEMBER, "us-east-1")
    Fault(ec2, "before-call.ec2.StopInstances", "RequestLimitExceeded", times=1)
    (first,) = guard.handler(event, LambdaContext())["results"]
    assert first["remediation"]["status"] == "failed"
    assert first["decision_id"] in w.rt.guard.ledger.backlog()
    (again,) = guard.handler(event, LambdaContext())["results"]
    assert again["duplicate"] and again["remediation"]["status"] == "stopped"
    assert first["decision_id"] not in w.rt.guard.ledger.backlog()


def test_only_the_guard_decides_through_the_cache(make_world: Any) -> None:
    w: World = make_world()
    assert isinstance(w.rt.guard.enforcer.accounts, CachedDirectory)
    assert not isinstance(w.rt.enforcer.accounts, CachedDirectory)  # hook and broker read every time
    assert w.rt.guard.enforcer.audit is w.rt.enforcer.audit  # one pipeline, one audit log


# -- the cache itself ---------------------------------------------------------------------------
class Directory:
    def __init__(self) -> None:
        self.origin = AccountOrigin(MEMBER, "US", "US", "US", kyc="verified")
        self.reads = 0
        self.fail = False

    def get(self, account_id: str) -> AccountOrigin | None:
        self.reads += 1
        if self.fail:
            raise RuntimeError("throttled")
        return self.origin if account_id == MEMBER else None


def test_cache_serves_copies_for_ttl_then_reads_again_and_never_caches_a_failure() -> None:
    now = [0.0]
    inner = Directory()
    cached = CachedDirectory(inner, TtlCache(30.0, clock=lambda: now[0]))
    first = cached.get(MEMBER)
    assert first is not None and first.country == "US"
    first.country = "XX"  # a caller changing what it got changes nothing cached
    inner.origin = AccountOrigin(MEMBER, "CN", "CN", "CN")
    now[0] = 29.9
    again = cached.get(MEMBER)
    assert again is not None and again.country == "US" and inner.reads == 1
    now[0] = 30.0
    fresh = cached.get(MEMBER)
    assert fresh is not None and fresh.country == "CN" and inner.reads == 2  # a change lands within ttl
    inner.fail = True
    now[0] = 61.0
    with pytest.raises(RuntimeError):
        cached.get(MEMBER)
    with pytest.raises(RuntimeError):
        cached.get(MEMBER)  # the failure was not cached: read again
    assert inner.reads == 4


def test_cache_is_bounded_and_an_unknown_account_is_cached_as_unknown() -> None:
    inner = Directory()
    cache: TtlCache[AccountOrigin | None] = TtlCache(30.0, max_entries=3)
    cached = CachedDirectory(inner, cache)
    for i in range(10):
        assert cached.get(f"99999999999{i}") is None
    assert len(cache._items) == 3 and inner.reads == 10
    cached.get("999999999999")  # the newest entries stayed
    assert inner.reads == 10


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "301", "30s", "1e9"])
def test_lookup_ttl_rejects_what_is_not_seconds(raw: str) -> None:
    with pytest.raises(ConfigError, match="ENFORCER_LOOKUP_TTL"):
        Config.from_env({"ENFORCER_LOOKUP_TTL": raw})


def test_lookup_ttl_default_and_off(make_world: Any) -> None:
    assert Config.from_env({}).lookup_ttl == 30.0
    assert Config.from_env({"ENFORCER_LOOKUP_TTL": "300"}).lookup_ttl == 300.0
    w: World = make_world()
    assert (
        cached_view(w.rt.enforcer, Config.from_env({"ENFORCER_LOOKUP_TTL": "0"}).lookup_ttl) is w.rt.enforcer
    )


# -- adversarial pass: what the concurrent follow-up and the sweep's intake must survive --------------
def test_a_failed_tag_call_still_records_acted_notifies_and_reports_the_error(
    make_world: Any, calls: Calls
) -> None:
    from tests.test_guard_faults import Fault

    w: World = make_world()
    _deny(w, calls)
    ec2 = w.rt.clients.client("ec2", MEMBER, "us-east-1")
    Fault(ec2, "before-call.ec2.CreateTags", "RequestLimitExceeded", times=1)
    r = _deny(w, calls)  # the stop worked; the tags, on another thread, did not
    assert any(e.startswith("tagging failed") for e in r["remediation"]["errors"]), r
    assert w.rt.guard.ledger.get(r["decision_id"])["state"] == "acted"
    assert r["decision_id"] in {n["decision_id"] for n in w.notifications()}


def test_sweep_skips_a_described_instance_it_cannot_read_and_decides_the_rest(make_world: Any) -> None:
    from tests.lambda_env import HOME, load_event

    w: World = make_world(ENFORCER_SWEEP_ACCOUNTS=MEMBER)
    good = w.launch(account=MEMBER)["Instances"][0]["InstanceId"]
    w.launch(account=MEMBER, TagSpecifications=[{"ResourceType": "instance", "Tags": [
        {"Key": "gpu-attestation", "Value": "\u202e" + "A" * 250}]}])  # fmt: skip
    bad = w.launch(account=MEMBER)["Instances"][0]["InstanceId"]
    odd = w.launch(account=MEMBER)["Instances"][0]["InstanceId"]

    def mangle(parsed: dict[str, Any], **_: Any) -> None:
        for res in parsed.get("Reservations") or []:
            for inst in res.get("Instances") or []:
                if inst.get("InstanceId") == bad:
                    inst["InstanceId"] = bad + "\x00"  # no usable id: skipped, reported
                if inst.get("InstanceId") == odd:
                    inst["InstanceType"] = "P5.48XLARGE\n"  # not a type: decided as unknown, stopped

    w.rt.clients.client("ec2", MEMBER, "us-east-1").meta.events.register(
        "after-call.ec2.DescribeInstances", mangle
    )
    sweep = load_event("scheduled_sweep.json")
    sweep["account"] = HOME
    out = guard.handler(sweep, LambdaContext())
    assert out["status"] == "swept"
    assert len(out["errors"]) == 1 and out["errors"][0].startswith(f"{MEMBER}/us-east-1: "), out["errors"]
    decided = {r["event_id"].rsplit("/", 1)[1]: r for r in out["results"]}
    assert good in decided and decided[good]["effect"] == "deny"
    assert len(decided) == 3  # the hostile-tagged p5 was decided too
    assert decided[odd]["effect"] == "deny" and w.state(odd, MEMBER) == "stopped"
    assert w.state(good, MEMBER) == "stopped" and w.state(bad, MEMBER) == "running"
