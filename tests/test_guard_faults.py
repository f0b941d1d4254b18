"""Issue 11: no denied launch left running, whatever fails, and what was acted on is what was logged.

Every fault is injected into the real boto3 clients the handler uses (botocore event hooks), against
moto; each test ends with the denied instance stopped after the retry or the next sweep, the
instance tagged with the logged decision id, and the audit chain verifying (``verify_aws``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from enforcer.audit.aws import verify_aws
from enforcer.ports import AuditWriteError
from lambdas import guard
from tests.lambda_env import (
    AUDIT_TABLE,
    HOME,
    MEMBER,
    LambdaContext,
    World,
    load_event,
    run_instances_event,
    world_factory,
)

CTX = LambdaContext()
UNKNOWN_A = "222222222222"  # not in the directory: ACCOUNT_UNKNOWN (cappable)
UNKNOWN_B = "333333333333"


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def handle(event: dict[str, Any]) -> dict[str, Any]:
    return guard.handler(json.loads(json.dumps(event)), CTX)


def only(result: dict[str, Any]) -> dict[str, Any]:
    assert result["status"] == "decided", result
    (r,) = result["results"]
    return r


def sweep_event() -> dict[str, Any]:
    ev = load_event("scheduled_sweep.json")
    ev["account"] = HOME
    return ev


def logged(w: World) -> list[dict[str, Any]]:
    """Every record of the audit chain, in order."""
    ddb = w.client("dynamodb")
    out = []
    for seq in range(w.audit_count()):
        item = ddb.get_item(TableName=AUDIT_TABLE, Key={"pk": {"S": f"REC#{seq}"}})["Item"]
        out.append(json.loads(item["line"]["S"]))
    return out


def assert_chain_verifies(w: World) -> None:
    audit = w.rt.enforcer.audit
    audit.flush()  # type: ignore[union-attr]
    report = verify_aws(w.client("dynamodb"), AUDIT_TABLE, w.client("s3"), audit.bucket)  # type: ignore[union-attr]
    assert report.ok, report.summary()


def assert_acted_as_logged(w: World, iid: str, account: str) -> None:
    """The instance is stopped and tagged with the decision the log holds for it (a deny)."""
    assert w.state(iid, account) == "stopped"
    did = w.tags(iid, account)["gpu-enforcer:decision-id"]
    (rec,) = [r for r in logged(w) if r["decision_id"] == did]
    assert rec["result"]["effect"] == "deny" and iid in rec["instance_ids"]


class Fault:
    """Raise ``code`` (a ClientError) on the first ``times`` calls of ``event`` on ``client``."""

    def __init__(self, client: Any, event: str, code: str, times: int = 1) -> None:
        self.left = times
        self.code = code
        self.calls = 0
        client.meta.events.register(event, self)

    def __call__(self, **kwargs: Any) -> None:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": "injected"}}, "Injected")


def _launch(w: World, account: str = MEMBER, count: int = 1) -> tuple[dict[str, Any], list[str]]:
    resp = w.launch(count=count, account=account)
    return resp, [i["InstanceId"] for i in resp["Instances"]]


# -- sealing fails separately from the write --------------------------------------------------------
@pytest.mark.parametrize("what", ["kms", "s3"])
def test_seal_failure_never_blocks_acting_and_is_retried(make_world: Any, what: str) -> None:
    w: World = make_world()
    audit = w.rt.enforcer.audit
    audit.seal_every = 1  # type: ignore[union-attr]
    if what == "kms":
        signer_client = audit.signer.resolve()._kms  # type: ignore[union-attr]  # LazySigner: built now
        fault = Fault(signer_client, "before-call.kms.Sign", "ThrottlingException", times=1)
    else:
        fault = Fault(audit.s3, "before-call.s3.PutObject", "SlowDown", times=1)  # type: ignore[union-attr]
    resp, (iid,) = _launch(w)

    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))

    assert fault.calls >= 1 and "seal_error" in r
    assert r["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, MEMBER)
    assert audit.seal_pending is False  # type: ignore[union-attr]  # retried after acting, succeeded
    assert_chain_verifies(w)


def test_redelivery_after_a_seal_failure_is_not_a_shrug(make_world: Any) -> None:
    """The old failure: the write raised on the seal, the retry saw a duplicate and never acted."""
    w: World = make_world()
    audit = w.rt.enforcer.audit
    audit.seal_every = 1  # type: ignore[union-attr]
    Fault(audit.signer.resolve()._kms, "before-call.kms.Sign", "KMSInternalException", times=10)  # type: ignore[union-attr]
    resp, (iid,) = _launch(w)
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
    first = only(handle(event))
    assert first["remediation"]["status"] == "stopped" and "seal_error" in first
    again = only(handle(event))
    assert again["duplicate"] and again["decision_id"] == first["decision_id"]
    assert_acted_as_logged(w, iid, MEMBER)
    assert w.audit_count() == 1


# -- DynamoDB: throttling, a lost response ----------------------------------------------------------
def test_dynamodb_throttle_on_the_write_is_retried(make_world: Any) -> None:
    w: World = make_world()
    fault = Fault(
        w.rt.enforcer.audit.ddb, "before-call.dynamodb.TransactWriteItems", "ThrottlingException", 2
    )  # type: ignore[union-attr]
    resp, (iid,) = _launch(w)
    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))
    assert fault.calls >= 3 and r["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, MEMBER)
    assert_chain_verifies(w)


def test_lost_transact_response_retried_by_the_sdk_is_our_own_write(make_world: Any) -> None:
    """The write commits, its response is lost, botocore sends the same request again."""
    w: World = make_world()
    ddb = w.rt.enforcer.audit.ddb  # type: ignore[union-attr]
    lost = {"n": 0}

    def lose_first(attempts: int, caught_exception: Any, response: Any, **kw: Any) -> float | None:
        if lost["n"] == 0 and caught_exception is None:
            lost["n"] += 1
            return 0.0  # "the response never arrived": retry the identical request
        return None

    ddb.meta.events.register("needs-retry.dynamodb.TransactWriteItems", lose_first)
    resp, (iid,) = _launch(w)
    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))
    assert lost["n"] == 1
    assert r["duplicate"] is False and r["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, MEMBER)
    assert w.audit_count() == 1
    assert_chain_verifies(w)


def test_write_committed_then_error_is_recovered_and_acts_on_the_logged_decision(make_world: Any) -> None:
    """The transaction commits but the SDK reports an error (response lost for good): the guard's
    retry of the record alone finds it logged under its own decision id and acts on it."""
    w: World = make_world()
    ddb = w.rt.enforcer.audit.ddb  # type: ignore[union-attr]
    state = {"n": 0}

    def fail_after(http_response: Any, parsed: Any, **kw: Any) -> None:
        if state["n"] == 0:
            state["n"] += 1
            raise ConnectionResetError("response lost")

    ddb.meta.events.register("after-call.dynamodb.TransactWriteItems", fail_after)
    resp, (iid,) = _launch(w)
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
    r = only(handle(event))
    assert state["n"] == 1
    (rec,) = logged(w)
    assert r["decision_id"] == rec["decision_id"] and r["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, MEMBER)
    again = only(handle(event))  # EventBridge redelivers anyway: nothing more to do
    assert again["duplicate"] and again["remediation"]["status"] == "duplicate"
    assert w.audit_count() == 1
    assert_chain_verifies(w)


def test_audit_store_down_then_redelivery_acts(make_world: Any) -> None:
    """Every write fails (the handler raises, nothing acts on an unlogged decision); the redelivery acts."""
    w: World = make_world()
    ddb = w.rt.enforcer.audit.ddb  # type: ignore[union-attr]
    fault = Fault(ddb, "before-call.dynamodb.TransactWriteItems", "ValidationException", times=2)
    resp, (iid,) = _launch(w)
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
    with pytest.raises(AuditWriteError):  # the handler fails; EventBridge redelivers the event
        handle(event)
    assert fault.calls == 2 and w.state(iid, MEMBER) == "running" and w.audit_count() == 0
    r = only(handle(event))
    assert r["remediation"]["status"] == "stopped" and not r["duplicate"]
    assert_acted_as_logged(w, iid, MEMBER)
    assert_chain_verifies(w)


class Killed(BaseException):
    """The Lambda sandbox dies (timeout, OOM) between the log write and the stop."""


def test_crash_between_write_and_stop_is_finished_by_the_redelivery(make_world: Any) -> None:
    w: World = make_world()
    resp, (iid,) = _launch(w)
    ec2 = w.client("ec2", MEMBER)
    calls = {"n": 0}

    def die(**kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Killed

    ec2.meta.events.register("before-call.ec2.StopInstances", die)
    event = run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
    with pytest.raises(Killed):
        handle(event)
    assert w.state(iid, MEMBER) == "running"
    r = only(handle(event))
    assert r["duplicate"] and r["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, MEMBER)
    assert w.audit_count() == 1


def test_a_redelivery_is_never_decided_again(make_world: Any) -> None:
    """The account is fixed in the directory after the deny: the redelivery still answers deny."""
    w: World = make_world()
    resp, (iid,) = _launch(w, UNKNOWN_A)
    Fault(w.client("ec2", UNKNOWN_A), "before-call.ec2.StopInstances", "RequestLimitExceeded", 1)
    event = run_instances_event(resp, UNKNOWN_A, instanceType="p5.48xlarge")
    first = only(handle(event))
    assert first["remediation"]["status"] == "failed"
    w.add_account(UNKNOWN_A, "US")  # a fresh decision would now allow
    again = only(handle(event))
    assert again["effect"] == "deny" and again["decision_id"] == first["decision_id"]
    assert again["reasons"] == first["reasons"] == ["ACCOUNT_UNKNOWN"]
    assert again["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, UNKNOWN_A)


# -- EC2 failures: the backlog and the next sweep ----------------------------------------------------
def test_stop_throttled_is_finished_by_the_next_sweep(make_world: Any) -> None:
    w: World = make_world(ENFORCER_SWEEP_ACCOUNTS=MEMBER, ENFORCER_SWEEP_REGIONS="us-east-1")
    resp, (iid,) = _launch(w)
    Fault(w.client("ec2", MEMBER), "before-call.ec2.StopInstances", "RequestLimitExceeded", 1)
    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))
    assert r["remediation"]["status"] == "failed" and w.state(iid, MEMBER) == "running"
    assert w.rt.guard.ledger.backlog() == [r["decision_id"]]
    swept = handle(sweep_event())
    assert swept["results"][0]["backlog"] is True
    assert_acted_as_logged(w, iid, MEMBER)
    assert w.rt.guard.ledger.backlog() == []
    assert_chain_verifies(w)


def test_request_larger_than_the_invocation_cap_continues_later(make_world: Any) -> None:
    w: World = make_world(
        ENFORCER_MAX_ACTIONS_PER_INVOCATION="2",
        ENFORCER_SWEEP_ACCOUNTS=UNKNOWN_A,
        ENFORCER_SWEEP_REGIONS="us-east-1",
    )
    resp, ids = _launch(w, UNKNOWN_A, count=5)
    r = only(handle(run_instances_event(resp, UNKNOWN_A, instanceType="p5.48xlarge")))
    assert r["remediation"]["status"] == "capped" and len(r["remediation"]["capped"]) == 3
    runs = 0
    while any(w.state(i, UNKNOWN_A) == "running" for i in ids):
        runs += 1
        assert runs <= 3, "the capped remainder was never stopped"
        handle(sweep_event())
    for i in ids:
        assert_acted_as_logged(w, i, UNKNOWN_A)
    assert w.rt.guard.ledger.backlog() == []


def test_draining_one_accounts_cap_does_not_spare_another_account(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MAX_ACTIONS_PER_HOUR="2")
    for _ in range(3):  # cheap denies in one account use its cap up
        resp, _ids = _launch(w, UNKNOWN_A)
        handle(run_instances_event(resp, UNKNOWN_A, instanceType="p5.48xlarge"))
    resp, (held,) = _launch(w, UNKNOWN_A)
    r = only(handle(run_instances_event(resp, UNKNOWN_A, instanceType="p5.48xlarge")))
    assert r["remediation"]["status"] == "capped" and w.state(held, UNKNOWN_A) == "running"
    # another account's launches are still stopped: the restricted one and a cappable one
    resp, (cn,) = _launch(w, MEMBER)
    rc = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))
    assert rc["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, cn, MEMBER)
    resp, (other,) = _launch(w, UNKNOWN_B)
    rb = only(handle(run_instances_event(resp, UNKNOWN_B, instanceType="p5.48xlarge")))
    assert rb["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, other, UNKNOWN_B)
    # the capped one waits in the backlog with a high-severity alert
    assert r["decision_id"] in w.rt.guard.ledger.backlog()
    notes = [n for n in w.notifications() if n["decision_id"] == r["decision_id"]]
    assert notes and notes[0]["remediation"]["status"] == "capped"


# -- the sweep reaches every account ----------------------------------------------------------------
def test_sweep_visits_every_account_within_the_promised_runs(make_world: Any) -> None:
    accounts = [f"{n:012d}" for n in range(444444444401, 444444444414)]  # 13 accounts
    w: World = make_world(
        ENFORCER_SWEEP_ACCOUNTS=",".join(accounts), ENFORCER_SWEEP_REGIONS="us-east-1,eu-west-1"
    )
    w.rt.guard.pairs_per_run = 5
    gpu = {a: w.launch(account=a)["Instances"][0]["InstanceId"] for a in accounts[::4]}
    seen: set[str] = set()
    first = handle(sweep_event())
    promised = first["runs_to_cover"]
    assert first["pairs"] == 26 and promised == 6
    seen.update(first["visited"])
    for _ in range(promised - 1):
        seen.update(handle(sweep_event())["visited"])
    assert seen == {f"{a}/{r}" for a in accounts for r in ("eu-west-1", "us-east-1")}
    for a, iid in gpu.items():  # unknown accounts: ACCOUNT_UNKNOWN, stopped when their turn came
        assert_acted_as_logged(w, iid, a)


def test_sweep_covers_the_organisation_by_default(make_world: Any) -> None:
    w: World = make_world(ENFORCER_SWEEP_REGIONS="us-east-1")
    org = w.client("organizations")
    org.create_organization(FeatureSet="ALL")
    for n in range(3):
        org.create_account(Email=f"a{n}@example.com", AccountName=f"a{n}")
    listed = {a["Id"] for a in org.list_accounts()["Accounts"]}
    assert len(listed) >= 4
    seen: set[str] = set()
    for _ in range(2):
        seen.update(v.split("/")[0] for v in handle(sweep_event())["visited"])
    assert seen == listed


def test_report_only_sweep_lists_violators_and_acts_on_nothing(make_world: Any) -> None:
    w: World = make_world(ENFORCER_SWEEP_ACCOUNTS=f"{HOME},{MEMBER}", ENFORCER_SWEEP_REGIONS="us-east-1")
    cn = w.launch(account=MEMBER)["Instances"][0]["InstanceId"]
    w.launch(account=HOME)
    before = w.audit_count()
    ev = sweep_event()
    ev["detail"] = {"mode": "report"}
    out = handle(ev)
    assert out["status"] == "reported"
    assert [v["instance_id"] for v in out["violators"]] == [cn]
    assert out["violators"][0]["reasons"] == ["ORIGIN_RESTRICTED"]
    assert w.state(cn, MEMBER) == "running" and w.audit_count() == before


def test_aws_log_is_anchored_by_its_object_lock_checkpoints(make_world: Any) -> None:
    from enforcer.audit.verify import Anchor

    w: World = make_world()
    audit = w.rt.enforcer.audit
    audit.seal_every = 1  # type: ignore[union-attr]
    for _ in range(3):
        resp, _ids = _launch(w)
        handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge"))
    pub = audit.signer.public_key_pem()  # type: ignore[union-attr]  # the KMS key, pinned by the reviewer
    ddb, s3, bucket = w.client("dynamodb"), w.client("s3"), audit.bucket  # type: ignore[union-attr]
    rep = verify_aws(ddb, AUDIT_TABLE, s3, bucket, pub)
    assert rep.ok and rep.anchored_through == 2 and "S3 Object Lock" in rep.anchor
    last = json.loads(ddb.get_item(TableName=AUDIT_TABLE, Key={"pk": {"S": "REC#2"}})["Item"]["line"]["S"])
    # an insider drops the newest record and rolls the head back
    prev = json.loads(ddb.get_item(TableName=AUDIT_TABLE, Key={"pk": {"S": "REC#1"}})["Item"]["line"]["S"])
    ddb.delete_item(TableName=AUDIT_TABLE, Key={"pk": {"S": "REC#2"}})
    ddb.update_item(
        TableName=AUDIT_TABLE,
        Key={"pk": {"S": "HEAD"}},
        UpdateExpression="SET #s = :s, #h = :h",
        ExpressionAttributeNames={"#s": "seq", "#h": "hash"},
        ExpressionAttributeValues={":s": {"N": "2"}, ":h": {"S": prev["hash"]}},
    )
    cut = verify_aws(ddb, AUDIT_TABLE, s3, bucket, pub, anchors=[Anchor(2, last["hash"], "kept")])
    assert not cut.ok and cut.first_issue is not None and cut.first_issue.kind == "truncated"


def test_a_broken_counter_table_never_blocks_logging_or_a_legal_stop(make_world: Any) -> None:
    from tests.lambda_env import COUNTER_TABLE

    w: World = make_world()
    w.client("dynamodb").delete_table(TableName=COUNTER_TABLE)  # state, caps and backlog all gone
    resp, (iid,) = _launch(w)
    r = only(handle(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")))
    assert r["remediation"]["status"] == "stopped"
    assert_acted_as_logged(w, iid, MEMBER)
    resp, (other,) = _launch(w, UNKNOWN_A)  # cappable: the caps cannot be checked, so it is held back
    r2 = only(handle(run_instances_event(resp, UNKNOWN_A, instanceType="p5.48xlarge")))
    assert r2["remediation"]["status"] == "capped" and w.state(other, UNKNOWN_A) == "running"
    assert any("counter failed" in e for e in r2["remediation"]["errors"])
    assert w.audit_count() == 2
    assert_chain_verifies(w)


def test_capped_and_failed_together_leave_nothing_behind(make_world: Any) -> None:
    """A cap holds one back and the stop of the other two fails: all three wait in the backlog."""
    w: World = make_world(
        ENFORCER_MAX_ACTIONS_PER_INVOCATION="2",
        ENFORCER_SWEEP_ACCOUNTS=UNKNOWN_A,
        ENFORCER_SWEEP_REGIONS="us-east-1",
    )
    resp, ids = _launch(w, UNKNOWN_A, count=3)
    Fault(w.client("ec2", UNKNOWN_A), "before-call.ec2.StopInstances", "RequestLimitExceeded", 1)
    r = only(handle(run_instances_event(resp, UNKNOWN_A, instanceType="p5.48xlarge")))
    assert r["remediation"]["status"] == "capped" and r["remediation"]["acted"] == []
    state = w.rt.guard.ledger.get(r["decision_id"])
    assert state is not None and state["state"] == "failed" and sorted(state["remaining"]) == sorted(ids)
    for _ in range(3):
        if all(w.state(i, UNKNOWN_A) == "stopped" for i in ids):
            break
        handle(sweep_event())
    for i in ids:
        assert_acted_as_logged(w, i, UNKNOWN_A)
