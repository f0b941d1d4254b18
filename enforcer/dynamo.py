"""Small DynamoDB helpers shared by the AWS backends."""

from __future__ import annotations

from typing import Any

from enforcer.aws_errors import error_code


def ensure_table(dynamodb: Any, table: str, hash_key: str, range_key: str | None = None) -> str:
    """Create an on-demand table with string keys unless it exists, wait until it is active, return its name.

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        Table name.
    hash_key, range_key
        Key attribute names (both of type ``S``); no range key when None.

    Raises
    ------
    botocore.exceptions.ClientError
        Any error but ``ResourceInUseException`` (the table is already there).
    """
    keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    try:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    return table


def create_pk_table(dynamodb: Any, table: str) -> None:
    """Create an on-demand table keyed by a string ``pk`` and wait until it exists.

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        Table name.
    """
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
