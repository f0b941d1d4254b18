"""Read the production audit log (DynamoDB index + S3 Object Lock + the KMS checkpoint key) for the CLI.

``enforcer --backend aws audit verify|query|report|export`` use this: verification is the store's own
:func:`enforcer.audit.aws.verify_aws` (chain, head, sealed Object Lock copies, signed checkpoints), with
the checkpoint public key fetched from KMS unless the reviewer pins one (``--public-key``); records are
read back in chain order for query, report and export.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from enforcer.audit.aws_verify import verify_aws
from enforcer.audit.chain import LineError, parse_line
from enforcer.audit.query import LoggedRecord
from enforcer.audit.verify import Anchor, VerifyReport

#: The store's item prefix for records (``REC#<seq>``).
REC_PREFIX = "REC#"


class AwsAuditSource:
    """The AWS audit store, read-only.

    Parameters
    ----------
    dynamodb, s3, kms
        boto3 clients (read access: Scan/GetItem, ListBucket/GetObject, GetPublicKey).
    table, bucket, key_id
        The stack's audit table, Object Lock bucket and KMS signing key.
    """

    def __init__(self, dynamodb: Any, s3: Any, kms: Any, table: str, bucket: str, key_id: str) -> None:
        self.dynamodb, self.s3, self.kms = dynamodb, s3, kms
        self.table, self.bucket, self.key_id = table, bucket, key_id

    @property
    def location(self) -> str:
        """Where the log is, for messages and the report."""
        return f"dynamodb:{self.table} + s3://{self.bucket}"

    def public_key_pem(self) -> bytes:
        """The checkpoint key's public half, from KMS GetPublicKey (DER -> PEM)."""
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            PublicFormat,
            load_der_public_key,
        )

        der = self.kms.get_public_key(KeyId=self.key_id)["PublicKey"]
        pem: bytes = load_der_public_key(der).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return pem

    def verify(self, public_key_pem: bytes | None = None, anchors: Iterable[Anchor] = ()) -> VerifyReport:
        """Verify the store; without a pinned key, the one KMS holds checks the checkpoint signatures.

        ``anchors`` are checkpoints the reviewer kept outside the store (``--trusted-checkpoint``).
        """
        pem = public_key_pem if public_key_pem is not None else self.public_key_pem()
        return verify_aws(self.dynamodb, self.table, self.s3, self.bucket, pem, anchors=anchors)

    def iter_records(self, errors: list[str] | None = None) -> Iterator[LoggedRecord]:
        """Yield the records in chain order (unreadable ones described in ``errors``)."""
        lines: dict[int, str] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": REC_PREFIX}},
        }
        while True:
            resp = self.dynamodb.scan(**kwargs)
            for item in resp.get("Items", []):
                pk = item.get("pk", {}).get("S", "")
                try:
                    lines[int(pk[len(REC_PREFIX) :])] = item["line"]["S"]
                except (KeyError, ValueError):
                    if errors is not None:
                        errors.append(f"dynamodb:{self.table} {pk[:40]}: unreadable item")
            lek = resp.get("LastEvaluatedKey")
            if not lek:
                break
            kwargs["ExclusiveStartKey"] = lek
        for seq in sorted(lines):
            try:
                rec, _computed, stated = parse_line(lines[seq].encode("utf-8") + b"\n")
            except LineError as exc:
                if errors is not None:
                    errors.append(f"dynamodb:{self.table} REC#{seq}: {exc}")
                continue
            rec["hash"] = stated
            yield LoggedRecord(f"dynamodb:{self.table}", seq, rec)
