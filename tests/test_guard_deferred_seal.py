"""A seal of the audit log that falls due on a deny runs after the stop, never between the record and
the stop (S3 and KMS are not on the path); its failure is still reported and retried."""

from __future__ import annotations

from typing import Any

from lambdas import guard
from tests.lambda_env import MEMBER, LambdaContext, World, run_instances_event
from tests.test_guard_faults import Fault
from tests.test_guard_warm_path import Calls, _deny, calls, make_world

__all__ = ["calls", "make_world"]  # fixtures


def test_a_due_seal_runs_after_the_stop(make_world: Any, calls: Calls) -> None:
    w: World = make_world()
    audit: Any = w.rt.enforcer.audit
    _deny(w, calls)
    audit.seal_every = 1  # every record: this deny's write makes a seal due
    r = _deny(w, calls)
    assert calls.before_stop() == ["dynamodb.TransactWriteItems", "ec2.StopInstances"]
    after = calls.names()[2:]
    assert "s3.PutObject" in after and "kms.Sign" in after  # sealed, after the stop
    assert "seal_error" not in r and audit.seal_pending is False
    assert audit.head()[2] == audit.head()[0] - 1  # sealed through the last record


def test_a_deferred_seal_that_fails_is_reported_and_tried_again(make_world: Any) -> None:
    w: World = make_world()
    audit: Any = w.rt.enforcer.audit
    audit.seal_every = 1
    fault = Fault(audit.s3, "before-call.s3.PutObject", "SlowDown", times=2)  # both attempts fail
    resp = w.launch(account=MEMBER)
    out = guard.handler(run_instances_event(resp, MEMBER, instanceType="p5.48xlarge"), LambdaContext())
    (r,) = out["results"]
    assert r["remediation"]["status"] == "stopped" and "SlowDown" in r["seal_error"]
    assert fault.calls == 2 and audit.seal_pending is True  # the write's attempt and the retry
    assert audit.retry_seal() is None and audit.seal_pending is False


def test_with_the_ledger_on_as_deployed_a_due_seal_still_runs_after_the_stop(
    make_world: Any, calls: Calls, monkeypatch: Any
) -> None:
    """The template sets ENFORCER_LEDGER_TABLE: the audit sink is then the ledger's wrapper, which must
    hand the deferral on to the store (it did not: the seal ran inside the write, before the stop)."""
    import boto3

    from enforcer.ledger.dynamo import create_ledger_table
    from enforcer.ledger.sink import LedgerAuditSink

    create_ledger_table(boto3.client("dynamodb", region_name="us-east-1"), "gle-ledger")
    monkeypatch.setenv("ENFORCER_LEDGER_TABLE", "gle-ledger")
    w: World = make_world()
    sink: Any = w.rt.enforcer.audit
    assert isinstance(sink, LedgerAuditSink)
    _deny(w, calls)
    sink.inner.seal_every = 1
    r = _deny(w, calls)
    before = calls.before_stop()
    assert "s3.PutObject" not in before and "kms.Sign" not in before, before
    assert "s3.PutObject" in calls.names() and "seal_error" not in r
    assert sink.inner.head()[2] == sink.inner.head()[0] - 1  # sealed through the last record
