"""Small DynamoDB helpers shared by the AWS backends."""

from __future__ import annotations

from typing import Any

from enforcer.aws_errors import error_code

#: Table creation takes seconds on DynamoDB and is immediate on moto: poll every second, for two minutes.
_WAIT = {"Delay": 1, "MaxAttempts": 120}


def create_table(dynamodb: Any, table: str, hash_key: str, range_key: str | None = None) -> str:
    """Create an on-demand table with string keys, wait until it is active, return its name.

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
        ``ResourceInUseException`` when the table exists (see :func:`ensure_table`), or any other error.
    """
    keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig=_WAIT)
    return table


def ensure_table(dynamodb: Any, table: str, hash_key: str, range_key: str | None = None) -> str:
    """:func:`create_table` unless the table exists; wait until it is active either way, return its name.

    Raises
    ------
    botocore.exceptions.ClientError
        Any error but ``ResourceInUseException`` (the table is already there).
    """
    try:
        return create_table(dynamodb, table, hash_key, range_key)
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig=_WAIT)
    return table
