"""Sealing the AWS audit store: the records since the last seal copied to S3 Object Lock, with a
checkpoint signed over the last one (see ``enforcer.audit.aws``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from enforcer.audit.aws_items import HEAD, num, rec_pk, string
from enforcer.audit.record import canonical
from enforcer.audit.signing import make_checkpoint
from enforcer.audit.verify import ChainChecker
from enforcer.aws_errors import error_code
from enforcer.ports import AuditWriteError

if TYPE_CHECKING:
    from enforcer.audit.aws import AwsAuditStore

#: Most records one seal copies.
MAX_SEAL_RECORDS = 10_000


def _retain_until(store: AwsAuditStore) -> datetime:
    return datetime.now(UTC) + timedelta(days=store.retention_days)


def _put_locked(store: AwsAuditStore, key: str, body: bytes, content_type: str) -> None:
    store.s3.put_object(
        Bucket=store.bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=_retain_until(store),
        ChecksumAlgorithm="SHA256",
    )


def _lines(store: AwsAuditStore, start: int, end: int) -> Iterator[tuple[int, str]]:
    """Yield ``(seq, line)`` for REC items start..end (inclusive), in order."""
    for chunk_start in range(start, end + 1, 100):
        seqs = list(range(chunk_start, min(end, chunk_start + 99) + 1))
        got = _batch_get(store.ddb, store.table, [rec_pk(s) for s in seqs])
        for s in seqs:
            item = got.get(rec_pk(s))
            if item is None:
                raise AuditWriteError(f"record {s} missing from DynamoDB; cannot seal")
            yield s, item["line"]["S"]


def seal_store(store: AwsAuditStore) -> dict[str, Any] | None:
    """Copy the records since the last seal to S3 with a signed checkpoint (``AwsAuditStore.seal``)."""
    next_seq, _h, sealed_seq, sealed_hash = store.head()
    if next_seq - 1 <= sealed_seq:
        return None
    start = sealed_seq + 1
    end = min(next_seq - 1, start + MAX_SEAL_RECORDS - 1)
    checker = ChainChecker()
    checker.expected_seq = start
    checker.last_hash = sealed_hash
    lines: list[bytes] = []
    for _seq, line in _lines(store, start, end):
        raw = line.encode("utf-8")
        issue = checker.feed(raw, f"dynamodb:{store.table}", None)
        if issue is not None:
            raise AuditWriteError(f"refusing to seal: {issue}")
        lines.append(raw + b"\n")
    last_hash = checker.last_hash
    seg_key = f"{store.prefix}segments/{start:012d}-{end:012d}.jsonl"
    _put_locked(store, seg_key, b"".join(lines), "application/x-ndjson")
    cp = make_checkpoint(store.signer, end, last_hash, store.clock())
    cp_key = f"{store.prefix}checkpoints/{end:012d}.json"
    _put_locked(store, cp_key, canonical(cp), "application/json")
    try:
        store.ddb.update_item(
            TableName=store.table,
            Key={"pk": string(HEAD)},
            UpdateExpression="SET sealed_seq = :end, sealed_hash = :h",
            ConditionExpression="sealed_seq = :old",
            ExpressionAttributeValues={":end": num(end), ":h": string(last_hash), ":old": num(sealed_seq)},
        )
    except Exception as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None  # another writer sealed the same range concurrently (same bytes)
        raise
    return {"segment": seg_key, "checkpoint_key": cp_key, "checkpoint": cp, "first": start, "last": end}


def _batch_get(ddb: Any, table: str, pks: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {table: {"Keys": [{"pk": string(pk)} for pk in pks], "ConsistentRead": True}}
    for _ in range(20):
        resp = ddb.batch_get_item(RequestItems=request)
        for item in resp.get("Responses", {}).get(table, []):
            out[item["pk"]["S"]] = item
        request = resp.get("UnprocessedKeys") or {}
        if not request:
            break
        time.sleep(0.05)
    return out
