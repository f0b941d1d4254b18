"""The compute ledger per beneficial owner: launches add up across regions and accounts, stop and
completion events take compute off, redeliveries book once, DynamoDB adds one read to the decision
path and writes inside the audit transaction, replay builds the ledger over a history."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from enforcer.accounts import StaticAccountDirectory
from enforcer.attestation import RegistryAttestationProvider, name_hash
from enforcer.attestation.submit import submit_token
from enforcer.audit import open_local_store
from enforcer.audit.aws import AwsAuditStore, create_audit_resources
from enforcer.audit.signing import LocalEd25519Signer
from enforcer.cli import cli
from enforcer.evidence.collect import Observer
from enforcer.intake import normalise
from enforcer.ledger.dynamo import DynamoLedgerStore, create_ledger_table
from enforcer.ledger.release import release_event, release_ledger, released_resource
from enforcer.ledger.sink import LedgerAuditSink
from enforcer.ledger.store import LocalLedgerStore
from enforcer.model import AccountOrigin
from enforcer.pipeline import Enforcer
from tests.conftest import EVENTS
from tests.evidence_support import runinstances, state_change
from tests.test_attestation_support import ACC_X, ACC_Y, T0, World, make_world, registry_backend, rfc3339

P5X7 = 886547.2  # 7 x p5.48xlarge
REGIONS = ["us-east-1", "eu-west-1", "us-west-2", "ap-northeast-1", "eu-central-1", "us-east-2", "sa-east-1"]
SALT = b"reseller-a-salt-0123456789"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with registry_backend("local", tmp_path) as registry:
        yield make_world(registry)


def attest_same_customer(w: World) -> str:
    """Accounts X and Y, both through reseller A, serve one end customer (same salted name hash)."""
    nh = name_hash("Northwind Compute Ltd", SALT)
    ec = {
        "country": "DE",
        "hq_country": "DE",
        "parent_hq_country": "DE",
        "kyc_level": "verified",
        "name_hash": nh,
    }
    for acct, jti in ((ACC_X, "att-x"), (ACC_Y, "att-y")):
        submit_token(
            w.token(account=acct, now=T0, end_customer=ec, jti=jti), w.directory(), w.registry, T0 + 60
        )
    return nh


def enforcer_for(w: World, engine: Any, catalog: Any, tmp_path: Path, **kw: Any) -> tuple[Enforcer, Any]:
    ledger = kw.pop("ledger", None) or LocalLedgerStore(tmp_path / "ledger.json")
    audit = kw.pop("audit", None) or open_local_store(tmp_path / "audit", tmp_path / "keys")
    enf = Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory(list(w.origins.values())),
        engine=engine,
        attestations=RegistryAttestationProvider(w.registry),
        audit=LedgerAuditSink(audit, ledger),
        observer=Observer(ledger=ledger),
        **kw,
    )
    return enf, ledger


def launch(n: int, account: str, region: str, at: float) -> Any:
    return normalise(
        runinstances("203.0.113.7", account, region, count=7, event_id=f"evt-{n}", when=rfc3339(at))
    )


def test_launches_split_over_regions_and_accounts_add_up_per_end_customer(
    world: World, engine: Any, catalog: Any, tmp_path: Path
) -> None:
    nh = attest_same_customer(world)
    enf, ledger = enforcer_for(world, engine, catalog, tmp_path)
    effects, messages = [], []
    for n in range(6):
        at = T0 + 3600 + n * 60
        d = enf.enforce(launch(n, (ACC_X, ACC_Y)[n % 2], REGIONS[n], at), at + 5).decision
        assert d.request.items[0].tpp == P5X7  # each request alone is below the large-compute audit
        effects.append(d.effect)
        messages.append(" ".join(r.message for r in d.reasons if r.code == "AGGREGATE_COMPUTE"))
    # allowed alone; audited once the end customer's sum crosses 1,000,000; denied at 5,000,000
    assert effects == ["allow", "audit", "audit", "audit", "audit", "deny"]
    assert f"end_customer {nh}" in messages[1] and "account" not in messages[1]  # not one account's sum
    assert "running 5319283 TPP after this launch (4432736 before)" in messages[5]
    owners = {(o["kind"], o["owner"]): o for o in ledger.owners(T0 + 7200)}
    ec = owners[("end_customer", nh)]
    assert ec["running_tpp"] == pytest.approx(5 * P5X7) and ec["launches"] == 5 * 7  # the deny never ran
    assert owners[("account", ACC_X)]["running_tpp"] == pytest.approx(3 * P5X7)
    assert owners[("account", ACC_Y)]["running_tpp"] == pytest.approx(2 * P5X7)
    assert owners[("reseller", "reseller-a")]["running_tpp"] == pytest.approx(5 * P5X7)
    assert ec["tpp_hours"] > 0


def test_stopping_instances_brings_the_running_figure_down(
    world: World, engine: Any, catalog: Any, tmp_path: Path
) -> None:
    nh = attest_same_customer(world)
    enf, ledger = enforcer_for(world, engine, catalog, tmp_path)
    at = T0 + 3600
    first = enf.enforce(launch(0, ACC_X, "us-east-1", at), at).decision
    enf.enforce(launch(1, ACC_Y, "eu-west-1", at), at)
    running = {o["owner"]: o["running_tpp"] for o in ledger.owners(at)}
    assert running[nh] == pytest.approx(2 * P5X7)
    stop_at = at + 2 * 3600
    for iid in first.request.instance_ids[:3]:
        assert release_event(ledger, state_change(iid, "stopped", ACC_X, when=rfc3339(stop_at)), stop_at)
    # a terminate after the stop (and a redelivered stop) releases nothing twice
    assert (
        release_event(ledger, state_change(first.request.instance_ids[0], "terminated", ACC_X), stop_at)
        is None
    )
    owners = {o["owner"]: o for o in ledger.owners(stop_at)}
    assert owners[nh]["running_tpp"] == pytest.approx(2 * P5X7 - 3 * P5X7 / 7, abs=0.1)
    assert owners[ACC_X]["running_tpp"] == pytest.approx(4 * P5X7 / 7, abs=0.1)
    # TPP-hours: the stopped instances counted for their two hours only
    later = stop_at + 3600
    hours = {o["owner"]: o["tpp_hours"] for o in ledger.owners(later)}
    assert hours[ACC_X] == pytest.approx(3 * P5X7 / 7 * 2 + 4 * P5X7 / 7 * 3, rel=1e-4)
    # and the next launch sees the lower figure: the same request that would have audited is allowed
    assert enf.enforce(launch(2, ACC_X, "us-west-2", later), later).decision.effect == "audit"
    for iid in [*first.request.instance_ids]:
        release_event(ledger, state_change(iid, "terminated", ACC_X), later)
    assert release_event(ledger, state_change("i-0123456789abcdef0", "running", ACC_X), later) is None


def test_pending_and_running_events_are_not_releases() -> None:
    assert released_resource(state_change("i-0123456789abcdef0", "pending")) is None
    assert released_resource(state_change("i-0123456789abcdef0", "running")) is None
    assert (
        released_resource(state_change("i-0123456789abcdef0", "shutting-down"))
        == "instance:i-0123456789abcdef0"
    )
    assert released_resource({"detail-type": "x"}) is None and released_resource([1]) is None
    bad = state_change("i-0123456789abcdef0", "stopped")
    bad["detail"]["instance-id"] = "not-an-instance; DROP"
    assert release_event(LocalLedgerStore(None), bad, 0) is None  # malformed: nothing released, no crash


def test_sagemaker_job_completion_releases_its_compute(engine: Any, catalog: Any, tmp_path: Path) -> None:
    origin = AccountOrigin("111122223333", "US", "US", "US", "verified")
    ledger = LocalLedgerStore(None)
    enf = Enforcer(catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine,
                   observer=Observer(ledger=ledger),
                   audit=LedgerAuditSink(open_local_store(tmp_path / "a", tmp_path / "k"), ledger))  # fmt: skip
    create = json.loads((EVENTS / "cloudtrail_sagemaker_training.json").read_text())
    d = enf.enforce(normalise(create), T0).decision
    assert d.effect != "deny" and d.request.items[0].tpp > 0
    assert ledger.owners(T0)[0]["running_tpp"] == d.request.items[0].tpp
    done = json.loads((EVENTS / "sagemaker_training_state_change.json").read_text())
    done["detail"]["TrainingJobStatus"] = "InProgress"
    assert not release_ledger(enf, done, T0 + 60)  # still running
    done["detail"]["TrainingJobStatus"] = "Completed"
    assert release_ledger(enf, done, T0 + 3600)
    assert ledger.owners(T0 + 3600)[0]["running_tpp"] == 0


def test_redelivered_event_is_booked_once(world: World, engine: Any, catalog: Any, tmp_path: Path) -> None:
    attest_same_customer(world)
    enf, ledger = enforcer_for(world, engine, catalog, tmp_path)
    for _ in range(3):
        out = enf.enforce(launch(0, ACC_X, "us-east-1", T0 + 3600), T0 + 3600)
    assert out.duplicate
    assert {o["launches"] for o in ledger.owners(T0 + 3600)} == {7}


def test_hook_broker_and_state_change_decisions_are_not_booked(
    world: World, engine: Any, catalog: Any, tmp_path: Path
) -> None:
    """A launch is seen before (hook, broker) and after (CloudTrail, ``pending``): booked once, from CloudTrail."""
    enf, ledger = enforcer_for(world, engine, catalog, tmp_path)
    for name in ("cfn_hook_ec2_instance.json", "broker_launch.json", "state_change_pending.json"):
        enf.enforce(normalise(json.loads((EVENTS / name).read_text())), T0)
    assert ledger.owners(T0) == []


# -- DynamoDB ---------------------------------------------------------------------------------------


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_audit_resources(ddb, s3, "audit", "audit-bucket", retention_days=1)
        create_ledger_table(ddb, "ledger")
        calls: Counter[str] = Counter()
        ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
        signer = LocalEd25519Signer(tmp_path / "cp.pem")
        yield {"ddb": ddb, "s3": s3, "calls": calls, "signer": signer}


def _aws_store(aws: dict[str, Any]) -> AwsAuditStore:
    return AwsAuditStore(
        aws["ddb"], "audit", aws["s3"], "audit-bucket", aws["signer"], salt=b"s" * 16, seal_every=None
    )


def test_dynamodb_ledger_adds_one_read_and_writes_in_the_audit_transaction(
    world: World, engine: Any, catalog: Any, tmp_path: Path, aws: dict[str, Any]
) -> None:
    nh = attest_same_customer(world)
    calls: Counter[str] = aws["calls"]
    plain = Enforcer(catalog=catalog, accounts=StaticAccountDirectory(list(world.origins.values())), engine=engine,
                     attestations=RegistryAttestationProvider(world.registry), audit=_aws_store(aws))  # fmt: skip
    plain.enforce(launch(100, ACC_X, "us-east-1", T0 + 3600), T0 + 3600)  # warm the head cache
    calls.clear()
    plain.enforce(launch(101, ACC_X, "us-east-1", T0 + 3600), T0 + 3600)
    without = Counter(calls)
    ledger = DynamoLedgerStore(aws["ddb"], "ledger")
    enf, _ = enforcer_for(world, engine, catalog, tmp_path, ledger=ledger, audit=_aws_store(aws))
    enf.enforce(launch(0, ACC_X, "us-east-1", T0 + 3600), T0 + 3600)  # warm
    calls.clear()
    d = enf.enforce(launch(1, ACC_Y, "eu-west-1", T0 + 3660), T0 + 3660).decision
    assert d.effect == "audit" and "AGGREGATE_COMPUTE" in d.reason_codes
    assert sum(calls.values()) == sum(without.values()) + 1, (calls, without)
    assert calls["BatchGetItem"] == 1 and calls["TransactWriteItems"] == without["TransactWriteItems"] == 1
    owners = {o["owner"]: o for o in ledger.owners(T0 + 3660)}
    assert owners[nh]["running_tpp"] == pytest.approx(2 * P5X7) and owners[nh]["launches"] == 14
    # a redelivery is refused by the audit transaction: nothing booked twice
    out = enf.enforce(launch(1, ACC_Y, "eu-west-1", T0 + 3660), T0 + 3660)
    assert out.duplicate and {o["owner"]: o for o in ledger.owners(T0)}[nh]["launches"] == 14
    # release once, even when stop and terminate both arrive
    iid = d.request.instance_ids[0]
    assert release_event(ledger, state_change(iid, "stopped", ACC_Y, "eu-west-1"), T0 + 7200) is not None
    assert release_event(ledger, state_change(iid, "terminated", ACC_Y, "eu-west-1"), T0 + 7200) is None
    owners = {o["owner"]: o for o in ledger.owners(T0 + 7200)}
    assert owners[nh]["running_tpp"] == pytest.approx(2 * P5X7 - P5X7 / 7, abs=0.01)


def test_dynamodb_and_local_ledgers_agree(aws: dict[str, Any]) -> None:
    from enforcer.ledger.figures import Allocation, Delta

    stores = [DynamoLedgerStore(aws["ddb"], "ledger"), LocalLedgerStore(None)]
    for n in range(30):  # more allocations than fit in one transaction
        delta = Delta(account_id="111122223333", country="CN" if n % 3 else "US", hour=500_000 + n % 2)
        delta.allocations = [Allocation(f"instance:i-{n:04d}{k}", 10.0, 1.8e9 + n, ["account:1", "end_customer:e"])
                             for k in range(25)]  # fmt: skip
        for s in stores:
            if isinstance(s, DynamoLedgerStore):
                ops, rest = s.ops(delta)
                s.ddb.transact_write_items(TransactItems=ops)
                s.put_rest(rest)
            else:
                s.apply(delta)
    for n in range(0, 30, 2):
        for s in stores:
            s.release(f"instance:i-{n:04d}3", 1.8e9 + 7200)
    now = 1.8e9 + 9000
    a, b = (s.read(["account:1", "end_customer:e"], "111122223333", 500_001 * 3600.0, 24) for s in stores)
    assert a[1] == b[1] == {"CN": 20, "US": 10}
    for key in ("account:1", "end_customer:e"):
        assert a[0][key].running == pytest.approx(b[0][key].running)
        assert a[0][key].tpp_hours(now) == pytest.approx(b[0][key].tpp_hours(now))


# -- replay and the CLI -----------------------------------------------------------------------------


def test_replay_builds_the_ledger_over_history(tmp_path: Path) -> None:
    """Eight requests of 7 x p5 from one account over regions (the issue's probe): each alone is
    allowed; over the history the account crosses the audit, then the deny threshold; stops in between
    bring the running figure down. Replay logs nothing and leaves the state's ledger alone."""
    state = tmp_path / "state"
    runner = CliRunner()
    assert runner.invoke(cli, ["--state", str(state), "account", "add", "111122223333", "--country", "US",
                               "--kyc", "verified", "--name", "Probe Labs"]).exit_code == 0  # fmt: skip
    events, ids = [], []
    for n in range(8):
        ev = runinstances("203.0.113.7", region=REGIONS[n % len(REGIONS)], count=7, event_id=f"h{n}",
                          when=f"2026-11-0{n + 1}T10:00:00Z")  # fmt: skip
        events.append(ev)
        ids.append([i["instanceId"] for i in ev["detail"]["responseElements"]["instancesSet"]["items"]])
    for iid in ids[0]:  # the first launch stopped before the third
        events.insert(2, state_change(iid, "stopped", region=REGIONS[0], when="2026-11-02T12:00:00Z"))
    hist = tmp_path / "history.jsonl"
    hist.write_text("\n".join(json.dumps(e) for e in events))
    out = tmp_path / "out.jsonl"
    res = runner.invoke(cli, ["--state", str(state), "replay", str(hist), "--out", str(out), "--now",
                              "2026-12-01T00:00:00Z"], env={"COLUMNS": "220"})  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # each request alone would be allowed; the account's sum audits from the 2nd and denies at 5,000,000
    assert [d["effect"] for d in lines] == [
        "allow",
        "audit",
        "audit",
        "audit",
        "audit",
        "audit",
        "deny",
        "deny",
    ]
    running = [d["ledger"]["owners"][0]["running_tpp"] for d in lines]
    assert running[1] == running[2] == pytest.approx(P5X7, abs=0.1)  # the stopped launch no longer counts
    assert running[6] == running[7]  # a denied launch is stopped by the guard: never booked
    assert "Compute ledger over the replayed history" in res.output and "Probe Labs" in res.output
    assert not (state / "ledger").exists() and not (state / "audit").exists()


def test_ledger_show_after_decide(tmp_path: Path) -> None:
    state = tmp_path / "state"
    runner = CliRunner()
    runner.invoke(
        cli, ["--state", str(state), "account", "add", "111122223333", "--country", "US", "--kyc", "verified"]
    )
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps(runinstances("203.0.113.7", count=2, event_id="show-1")))
    assert runner.invoke(cli, ["--state", str(state), "decide", str(ev)]).exit_code == 0
    res = runner.invoke(cli, ["--state", str(state), "ledger", "show", "--json", "--owner", "account:"])
    rows = json.loads(res.stdout)
    assert [(r["kind"], r["owner"], r["launches"]) for r in rows] == [("account", "111122223333", 2)]
    assert rows[0]["running_tpp"] == pytest.approx(2 * 126649.6)
    res = runner.invoke(cli, ["--state", str(state), "ledger", "show", "--owner", "end_customer:"])
    assert res.exit_code == 0 and "111122223333" not in res.output


def test_guard_lambda_books_launches_and_releases_stops_in_dynamodb(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed path: the guard handler with ENFORCER_LEDGER_TABLE, a real moto launch, a stop."""
    from lambdas import guard
    from tests.lambda_env import HOME, LambdaContext, run_instances_event, state_change_event, world_factory

    factory = world_factory(engine)
    make = next(factory)
    try:
        create_ledger_table(boto3.client("dynamodb", region_name="us-east-1"), "gle-ledger")
        monkeypatch.setenv("ENFORCER_LEDGER_TABLE", "gle-ledger")
        w = make()
        resp = w.launch(account=HOME, count=2)
        out = guard.handler(run_instances_event(resp, HOME, instanceType="p5.48xlarge"), LambdaContext())
        assert out["status"] == "decided" and out["results"][0]["effect"] == "allow"
        ledger = DynamoLedgerStore(w.client("dynamodb"), "gle-ledger")
        assert ledger.owners(T0)[0]["running_tpp"] == pytest.approx(2 * 126649.6)
        iid = resp["Instances"][0]["InstanceId"]
        assert guard.handler(state_change_event(iid, HOME, "stopped"), LambdaContext())["status"] == "ignored"
        guard.handler(state_change_event(iid, HOME, "terminated"), LambdaContext())  # released once only
        assert ledger.owners(T0)[0]["running_tpp"] == pytest.approx(126649.6)
    finally:
        factory.close()


def test_dynamodb_read_never_drops_owners(aws: dict[str, Any]) -> None:
    """More owners than one BatchGetItem takes: each is read (an owner read as 0 would hide compute)."""
    from enforcer.ledger.figures import Allocation, Delta

    store = DynamoLedgerStore(aws["ddb"], "ledger")
    owners = [f"end_customer:e{n:03d}" for n in range(130)]
    for i in range(0, 130, 20):
        d = Delta(account_id="111122223333", hour=500_000)
        d.allocations = [Allocation(f"instance:i-{i:017d}", 7.0, 1.8e9, owners[i : i + 20])]
        store.apply(d)
    figs, _ = store.read(owners, "111122223333", 1.8e9, 24)
    assert len(figs) == 130 and all(f.running == 7.0 for f in figs.values())


def test_an_unreadable_ledger_audits_and_still_books(engine: Any, catalog: Any, tmp_path: Path) -> None:
    """A ledger read that fails (throttling, an outage) is an audit, never a silent zero; the launch is
    still booked once logged, so the next decision sees it."""

    class Flaky(LocalLedgerStore):
        fail = True

        def read(self, *a: Any, **kw: Any) -> Any:
            if self.fail:
                raise TimeoutError("ledger unreachable")
            return super().read(*a, **kw)

    origin = AccountOrigin("111122223333", "US", "US", "US", "verified")
    ledger = Flaky(None)
    enf = Enforcer(catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine,
                   observer=Observer(ledger=ledger),
                   audit=LedgerAuditSink(open_local_store(tmp_path / "a", tmp_path / "k"), ledger))  # fmt: skip
    d = enf.enforce(launch(0, "111122223333", "us-east-1", T0), T0).decision
    assert d.effect == "audit" and d.reason_codes == ["AGGREGATE_COMPUTE"]
    assert "ledger unavailable (TimeoutError)" in d.reasons[0].message
    assert enf.observer.counters["ledger_read_failures"] == 1
    ledger.fail = False
    d = enf.enforce(launch(1, "111122223333", "eu-west-1", T0 + 60), T0 + 60).decision
    assert d.effect == "audit" and "running 1773094 TPP after this launch" in d.reasons[0].message


def test_an_owner_spelt_with_latin_lookalike_letters_adds_up_with_its_plain_spelling() -> None:
    """Red team round 20: a reseller signing "Inspur" spelt with Cyrillic I, dze and er for some launches and "Inspur" for
    others must not split one end customer's compute over two ledger owners."""
    from enforcer.ledger.owners import end_customer_key, owner_name_key

    assert owner_name_key("\u0406n\u0455\u0440ur Co., Ltd.") == owner_name_key("Inspur Co Ltd")
    assert end_customer_key({"name": "\u0406n\u0455\u0440ur"}) == end_customer_key({"name": "INSPUR"})
    assert owner_name_key("Сбербанк") != owner_name_key("Inspur")  # a Cyrillic name keeps its own key
