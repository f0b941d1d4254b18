"""Create the AWS audit store's DynamoDB table and S3 Object Lock bucket (tests, the demo)."""

from __future__ import annotations

from typing import Any

from enforcer.audit.aws_items import DEFAULT_RETENTION_DAYS
from enforcer.aws_errors import error_code
from enforcer.dynamo import ensure_table


def create_audit_resources(
    dynamodb: Any,
    s3: Any,
    table: str,
    bucket: str,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    region: str | None = None,
) -> None:
    """Create the DynamoDB table and the Object Lock bucket (for tests and the demo).

    The table has partition key ``pk`` (on-demand billing, point-in-time recovery on); the
    bucket is created with ``ObjectLockEnabledForBucket=True`` and a default COMPLIANCE
    retention of ``retention_days``. Existing resources are left as they are.

    Parameters
    ----------
    dynamodb, s3
        boto3 clients.
    table, bucket
        Names to create.
    retention_days
        Default COMPLIANCE retention.
    region
        Bucket region when not us-east-1.
    """
    ensure_table(dynamodb, table, "pk")
    try:
        dynamodb.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    except Exception as exc:  # optional hardening; not every endpoint supports it
        if error_code(exc) not in ("UnknownOperationException", "ContinuousBackupsUnavailableException"):
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": True}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": retention_days}},
        },
    )
