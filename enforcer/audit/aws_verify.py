"""Verify the AWS audit store: the DynamoDB chain and head, the S3 Object Lock copies, the checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from enforcer.audit.aws_items import HEAD
from enforcer.audit.chain import GENESIS
from enforcer.audit.verify import (
    Anchor,
    ChainChecker,
    VerifyIssue,
    VerifyReport,
    anchor_result,
    apply_anchors,
    check_checkpoints,
    finish,
)


def _scan_all(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        resp = ddb.scan(**kwargs)
        yield from resp.get("Items", [])
        lek = resp.get("LastEvaluatedKey")
        if not lek:
            return
        kwargs["ExclusiveStartKey"] = lek


def _s3_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        resp = s3.list_objects_v2(**kwargs)
        keys.extend(o["Key"] for o in resp.get("Contents", []))
        if not resp.get("IsTruncated"):
            return sorted(keys)
        kwargs["ContinuationToken"] = resp["NextContinuationToken"]


def verify_aws(
    dynamodb: Any,
    table: str,
    s3: Any,
    bucket: str,
    public_key_pem: bytes | None = None,
    *,
    prefix: str = "audit/",
    anchors: Iterable[Anchor] = (),
) -> VerifyReport:
    """Verify the AWS audit store: DynamoDB chain, head, S3 sealed copies and checkpoints.

    Parameters
    ----------
    dynamodb, s3
        boto3 clients (read access is enough).
    table, bucket
        The store's table and bucket.
    public_key_pem
        Expected checkpoint public key (None: signatures are not checked, a warning says so).
    prefix
        Key prefix used by the store.
    anchors
        Checkpoints kept outside the store (see ``verify.open_verify``); the S3 checkpoints are
        Object Lock copies, so with a pinned public key they anchor the chain up to the last one.

    Returns
    -------
    VerifyReport
        Issues name ``dynamodb:<table>`` / ``s3://<bucket>/<key>`` locations and seqs.
    """
    report = VerifyReport()
    ddb_loc = f"dynamodb:{table}"
    records: dict[int, str] = {}
    head_item: dict[str, Any] | None = None
    for item in _scan_all(dynamodb, table):
        pk = item.get("pk", {}).get("S", "")
        if pk == HEAD:
            head_item = item
        elif pk.startswith("REC#"):
            try:
                records[int(pk[4:])] = item["line"]["S"]
            except (KeyError, ValueError):
                report.issues.append(VerifyIssue("malformed", f"unreadable item {pk}", None, ddb_loc, None))
        elif not pk.startswith("EVT#"):
            report.warnings.append(f"unexpected item {pk!r} in {table}")
    next_seq = int(head_item["seq"]["N"]) if head_item else 0
    head_hash = head_item["hash"]["S"] if head_item else GENESIS

    # Sealed copies in S3.
    sealed: dict[int, tuple[bytes, str, int]] = {}
    for key in _s3_keys(s3, bucket, f"{prefix}segments/"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            first = int(key.rsplit("/", 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            report.warnings.append(f"unexpected object s3://{bucket}/{key}")
            continue
        for n, raw in enumerate(body.splitlines(keepends=True), start=1):
            sealed[first + n - 1] = (raw, f"s3://{bucket}/{key}", n)
    cp_entries: list[tuple[Any, str, int | None]] = []
    for key in _s3_keys(s3, bucket, f"{prefix}checkpoints/"):
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read(8192)
        try:
            cp_entries.append((json.loads(raw), f"s3://{bucket}/{key}", None))
        except ValueError:
            report.issues.append(VerifyIssue("checkpoint_invalid", "checkpoint is not JSON", None, key, None))
    cps = check_checkpoints(cp_entries, public_key_pem, report)
    if public_key_pem is None and report.checkpoints:
        report.warnings.append("checkpoint signatures not verified: no public key given")
    anchor_list = list(anchors)
    cps = apply_anchors(anchor_list, cps, report)

    checker = ChainChecker(cps)
    for seq in range(next_seq):
        line = records.get(seq)
        s3_copy = sealed.get(seq)
        if line is None:
            if s3_copy is not None:
                msg = f"record deleted from DynamoDB (its Object Lock copy {s3_copy[1]}:{s3_copy[2]} remains)"
                checker.issue = VerifyIssue("missing", msg, seq, f"{ddb_loc} REC#{seq}", None)
            else:
                msg = f"record {seq} is missing from DynamoDB"
                checker.issue = VerifyIssue("seq_gap", msg, seq, f"{ddb_loc} REC#{seq}", None)
            break
        raw = line.encode("utf-8") + b"\n"
        if checker.feed(raw, f"{ddb_loc} REC#{seq}", None) is not None:
            break
        if s3_copy is not None and s3_copy[0] != raw:
            msg = f"DynamoDB record differs from its Object Lock copy {s3_copy[1]} line {s3_copy[2]}"
            checker.issue = VerifyIssue("s3_mismatch", msg, seq, f"{ddb_loc} REC#{seq}", None)
            break
    extra = sorted(s for s in records if s >= next_seq)
    if extra:
        msg = f"record REC#{extra[0]} lies beyond the head (inserted)"
        report.issues.append(VerifyIssue("seq_order", msg, extra[0], f"{ddb_loc} REC#{extra[0]}", None))
    stopped = checker.issue is not None
    finish(checker, cps, report, ddb_loc)
    if not stopped and report.head_hash != head_hash:
        msg = "HEAD hash differs from the last record"
        report.issues.append(VerifyIssue("head_mismatch", msg, report.head_seq, f"{ddb_loc} HEAD", None))
    anchor_result(report, checker, anchor_list, public_key_pem is not None)
    if report.anchor == "a checkpoint signed with the pinned public key":
        report.anchor = "an S3 Object Lock checkpoint signed with the pinned public key"
    return report
