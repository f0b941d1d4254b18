"""Leave the demo's decision log where the CLI can verify it: ``enforcer --state DIR audit verify``.

The demo's log lives in the moto server's DynamoDB table and Object Lock bucket, which vanish with
it. After sealing, the records (byte for byte, same hash chain) and the KMS-signed checkpoints are
written in the local store's layout under ``STATE/audit`` and the KMS key's public half beside it,
so a reviewer can run ``enforcer --state DIR audit verify --public-key DIR/audit-kms-public.pem``
(or ``audit query``/``report``) after the demo has ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enforcer.audit import layout

PUBLIC_KEY_FILE = "audit-kms-public.pem"


def export_local(dynamodb: Any, s3: Any, table: str, bucket: str, public_pem: bytes, state: Path) -> Path:
    """Write the AWS store's chain and checkpoints under ``state/audit``; return the public key path.

    Parameters
    ----------
    dynamodb, s3
        Clients of the (moto) store.
    table, bucket
        The store's table and bucket.
    public_pem
        The KMS checkpoint key's public half.
    state
        The demo's state directory (its previous ``audit/`` is replaced).
    """
    from enforcer.audit.aws_reader import REC_PREFIX

    lines: dict[int, str] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        resp = dynamodb.scan(**kwargs)
        for item in resp.get("Items", []):
            pk = item["pk"]["S"]
            if pk.startswith(REC_PREFIX):
                lines[int(pk[len(REC_PREFIX) :])] = item["line"]["S"]
        if not resp.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    checkpoints = []
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="audit/checkpoints/")
    for obj in sorted(listing.get("Contents", []), key=lambda o: o["Key"]):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        checkpoints.append(json.dumps(json.loads(body), separators=(",", ":")))
    audit = state / "audit"
    audit.mkdir(parents=True, exist_ok=True)
    for stale in audit.iterdir():  # a previous demo's log: this run's replaces it
        if stale.is_file():
            stale.unlink()
    text = "".join(lines[seq] + "\n" for seq in sorted(lines))
    (audit / layout.segment_name(1)).write_text(text, encoding="utf-8")
    (audit / layout.CHECKPOINTS).write_text("".join(c + "\n" for c in checkpoints), encoding="utf-8")
    key_path = state / PUBLIC_KEY_FILE
    key_path.write_bytes(public_pem)
    return key_path
