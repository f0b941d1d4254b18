"""AWS audit store against a real moto server over HTTP (DynamoDB, S3 Object Lock, KMS)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer

from benchmarks.audit_bench import sample_decision
from enforcer.audit.aws import AwsAuditStore, create_audit_resources, verify_aws
from enforcer.audit.signing import KmsSigner, LocalEd25519Signer, SignerError, verify_checkpoint
from enforcer.ports import AuditSink, AuditWriteError

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # DynamoDB executes each request (a TransactWriteItems above all) atomically and
    # serialisably. moto's in-memory backend does not when its server runs requests on several
    # threads: a transaction snapshots whole tables with deepcopy and restores the snapshot on
    # cancellation, so concurrent requests crash it or are undone. Serialising moto's DynamoDB
    # request handling restores the real service's guarantee; the store's own concurrency
    # control (conditional head update + retries) is what the test exercises.
    dynamo_lock = threading.Lock()
    original = DynamoHandler.call_action

    def serialised(self: DynamoHandler) -> Any:
        with dynamo_lock:
            return original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DynamoHandler, "call_action", serialised)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def client(endpoint: str, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=4),
    )


@pytest.fixture()
def names(endpoint: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    table, bucket = f"audit-{suffix}", f"audit-{suffix}"
    create_audit_resources(
        client(endpoint, "dynamodb"), client(endpoint, "s3"), table, bucket, retention_days=3
    )
    return table, bucket


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> LocalEd25519Signer:
    return LocalEd25519Signer(tmp_path_factory.mktemp("keys") / "cp.pem")


def store(endpoint: str, names: tuple[str, str], signer: Any, **kw: Any) -> AwsAuditStore:
    table, bucket = names
    return AwsAuditStore(
        client(endpoint, "dynamodb"),
        table,
        client(endpoint, "s3"),
        bucket,
        signer,
        salt=b"aws-salt-0000000",
        **kw,
    )


def test_resources_are_created_with_object_lock(endpoint: str, names: tuple[str, str]) -> None:
    table, bucket = names
    s3 = client(endpoint, "s3")
    conf = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled"
    retention = conf["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 3)
    assert (
        client(endpoint, "dynamodb").describe_table(TableName=table)["Table"]["KeySchema"][0]["AttributeName"]
        == "pk"
    )
    # Idempotent.
    create_audit_resources(client(endpoint, "dynamodb"), s3, table, bucket, retention_days=3)


def test_write_chain_and_idempotency(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer
) -> None:
    st = store(endpoint, names, signer, seal_every=None)
    assert isinstance(st, AuditSink)
    r0 = st.write(sample_decision(0), "stop")
    r1 = st.write(sample_decision(1))
    dup = st.write(sample_decision(0), "stop")
    assert (r0.seq, r1.seq) == (0, 1)
    assert dup.duplicate and (dup.seq, dup.hash, dup.decision_id) == (0, r0.hash, "decision-0")
    assert st.head()[:2] == (2, r1.hash)
    rep = verify_aws(
        client(endpoint, "dynamodb"), names[0], client(endpoint, "s3"), names[1], signer.public_key_pem()
    )
    assert rep.ok, rep.issues
    assert rep.records == 2
    assert "no checkpoint" in " ".join(rep.warnings)


def test_concurrent_writers_never_fork_nor_lose_the_chain(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer
) -> None:
    writers, per_writer = 8, 25
    errors: list[BaseException] = []
    receipts: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def work(w: int) -> None:
        st = store(endpoint, names, signer, seal_every=50)  # own boto3 clients per thread
        try:
            start.wait()
            for i in range(per_writer):
                r = st.write(sample_decision(w * 100 + i), "stop")
                with lock:
                    receipts.append((r.seq, r.hash, r.decision_id))
                if i % 5 == 0:  # redelivered event: must not be logged twice
                    assert st.write(sample_decision(w * 100 + i), "stop").duplicate
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    total = writers * per_writer
    assert sorted(s for s, _, _ in receipts) == list(range(total))  # seq 0..N-1, no gaps, no forks
    assert {d for _, _, d in receipts} == {
        f"decision-{w * 100 + i}" for w in range(writers) for i in range(per_writer)
    }
    final = store(endpoint, names, signer, seal_every=None)
    final.flush()
    rep = verify_aws(
        client(endpoint, "dynamodb"), names[0], client(endpoint, "s3"), names[1], signer.public_key_pem()
    )
    assert rep.ok, rep.issues
    assert rep.records == total and rep.head_seq == total - 1
    assert rep.checkpoints >= 2 and rep.warnings == []
    by_seq = {s: h for s, h, _ in receipts}
    assert rep.head_hash == by_seq[total - 1]


def test_seal_writes_locked_segment_and_checkpoint(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer
) -> None:
    table, bucket = names
    st = store(endpoint, names, signer, seal_every=None, retention_days=2)
    for i in range(5):
        st.write(sample_decision(i))
    sealed = st.seal()
    assert sealed is not None and (sealed["first"], sealed["last"]) == (0, 4)
    assert st.seal() is None  # nothing new
    s3 = client(endpoint, "s3")
    head = s3.head_object(Bucket=bucket, Key=sealed["segment"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    body = s3.get_object(Bucket=bucket, Key=sealed["segment"])["Body"].read()
    assert [json.loads(x)["seq"] for x in body.splitlines()] == [0, 1, 2, 3, 4]
    cp = json.loads(s3.get_object(Bucket=bucket, Key=sealed["checkpoint_key"])["Body"].read())
    verify_checkpoint(cp, signer.public_key_pem())
    assert cp["seq"] == 4 and cp["hash"] == json.loads(body.splitlines()[-1])["hash"]
    # COMPLIANCE mode: even a versioned delete is refused.
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key=sealed["segment"], VersionId=head["VersionId"])
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=bucket, Key=sealed["segment"], VersionId=head["VersionId"])[
        "ContentLength"
    ] == len(body)
    # Later records go to the next segment.
    st.write(sample_decision(5))
    nxt = st.seal()
    assert nxt is not None and (nxt["first"], nxt["last"]) == (5, 5)
    rep = verify_aws(client(endpoint, "dynamodb"), table, s3, bucket, signer.public_key_pem())
    assert rep.ok and rep.records == 6 and rep.checkpoints == 2


def _tampered(endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer) -> tuple[Any, Any]:
    st = store(endpoint, names, signer, seal_every=None)
    for i in range(6):
        st.write(sample_decision(i))
    st.seal()
    return client(endpoint, "dynamodb"), client(endpoint, "s3")


def test_edited_dynamodb_record_is_detected(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer
) -> None:
    ddb, s3 = _tampered(endpoint, names, signer)
    item = ddb.get_item(TableName=names[0], Key={"pk": {"S": "REC#3"}})["Item"]
    item["line"]["S"] = item["line"]["S"].replace('"effect":"deny"', '"effect":"allow"')
    ddb.put_item(TableName=names[0], Item=item)
    rep = verify_aws(ddb, names[0], s3, names[1], signer.public_key_pem())
    issue = rep.first_issue
    assert issue is not None and issue.seq == 3 and issue.kind == "hash_mismatch"
    assert issue.file is not None and "REC#3" in issue.file


def test_deleted_dynamodb_record_is_detected(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer
) -> None:
    ddb, s3 = _tampered(endpoint, names, signer)
    ddb.delete_item(TableName=names[0], Key={"pk": {"S": "REC#2"}})
    issue = verify_aws(ddb, names[0], s3, names[1], signer.public_key_pem()).first_issue
    assert issue is not None and issue.seq == 2 and issue.kind == "missing"


def test_rewritten_dynamodb_history_is_caught_by_s3_copy(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer
) -> None:
    ddb, s3 = _tampered(endpoint, names, signer)
    # Rebuild the whole chain with a different record 1 (consistent hashes, new HEAD).
    from enforcer.audit.chain import GENESIS, seal_record

    prev = GENESIS
    for seq in range(6):
        item = ddb.get_item(TableName=names[0], Key={"pk": {"S": f"REC#{seq}"}})["Item"]
        rec = json.loads(item["line"]["S"])
        if seq == 1:
            rec["result"]["effect"] = "allow"
        body = {k: v for k, v in rec.items() if k not in ("seq", "prev_hash", "hash")}
        sealed = seal_record(body, seq, prev)
        prev = sealed.hash
        item["line"]["S"] = sealed.line[:-1].decode()
        item["hash"]["S"] = sealed.hash
        ddb.put_item(TableName=names[0], Item=item)
    issue = verify_aws(ddb, names[0], s3, names[1], signer.public_key_pem()).first_issue
    assert issue is not None and issue.seq == 1 and issue.kind == "s3_mismatch"


def test_resigned_s3_checkpoint_with_wrong_key_is_detected(
    endpoint: str, names: tuple[str, str], signer: LocalEd25519Signer, tmp_path: Any
) -> None:
    ddb, s3 = _tampered(endpoint, names, signer)
    evil = LocalEd25519Signer(tmp_path / "evil.pem")
    rep = verify_aws(ddb, names[0], s3, names[1], evil.public_key_pem())
    issue = rep.first_issue
    assert issue is not None and issue.kind == "checkpoint_invalid" and issue.seq == 5


def test_aws_failures_raise_audit_write_error(endpoint: str, signer: LocalEd25519Signer) -> None:
    st = AwsAuditStore(
        client(endpoint, "dynamodb"), "no-such-table", client(endpoint, "s3"), "no-such-bucket", signer
    )
    with pytest.raises(AuditWriteError, match="ResourceNotFoundException"):
        st.write(sample_decision(0))


def test_kms_signer_signs_checkpoints_verifiable_offline(endpoint: str, names: tuple[str, str]) -> None:
    kms = client(endpoint, "kms")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms_signer = KmsSigner(kms, key_id)
    assert kms_signer.alg == "ES256" and kms_signer.key_id.startswith("sha256:")
    st = store(endpoint, names, kms_signer, seal_every=3)
    for i in range(3):
        st.write(sample_decision(i))  # the third write seals with a KMS-signed checkpoint
    rep = verify_aws(
        client(endpoint, "dynamodb"), names[0], client(endpoint, "s3"), names[1], kms_signer.public_key_pem()
    )
    assert rep.ok and rep.checkpoints == 1 and rep.signatures_verified
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(SignerError, match="ECC_NIST_P256"):
        KmsSigner(kms, rsa)
