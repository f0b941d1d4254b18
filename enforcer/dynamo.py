"""Small DynamoDB helpers shared by the AWS backends."""

from __future__ import annotations

from typing import Any


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
