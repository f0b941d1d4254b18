"""The remediation state ledger: a whole-item write is the same write as a merge of every field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enforcer.act_state import DynamoLedger, MemoryLedger, create_counter_table

FULL = {
    "account": "111111111111",
    "region": "us-east-1",
    "remaining": [],
    "legal": False,
    "reason": "ORIGIN_RESTRICTED: x",
    "reasons": ["ORIGIN_RESTRICTED"],
    "event_id": "e-1",
}


@pytest.fixture
def ddb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_counter_table(client, "counters")
        yield client


def _raw(ddb: Any, did: str) -> dict[str, Any]:
    item: dict[str, Any] = ddb.get_item(TableName="counters", Key={"pk": {"S": f"ACT#{did}"}})["Item"]
    return item


def test_a_whole_item_put_leaves_the_item_a_merge_of_every_field_leaves(ddb: Any) -> None:
    ledger = DynamoLedger(ddb, "counters", clock=lambda: 1_700_000_000.0)
    decided = {**FULL, "remaining": ["i-1", "i-2"]}
    for did in ("merged", "replaced"):  # as the audit transaction writes it
        ddb.transact_write_items(TransactItems=[ledger.put_op(did, "decided", decided)])
    ledger.put("merged", "acted", FULL)
    ledger.put("replaced", "acted", FULL, replace=True)
    merged, replaced = _raw(ddb, "merged"), _raw(ddb, "replaced")
    assert {k: v for k, v in merged.items() if k != "pk"} == {k: v for k, v in replaced.items() if k != "pk"}
    assert ledger.get("replaced") == ledger.get("merged")
    assert ledger.get("replaced") == {**FULL, "state": "acted", "updated": 1_700_000_000,
                                      "expires_at": 1_700_000_000 + 90 * 24 * 3600}  # fmt: skip


def test_a_partial_put_still_merges(ddb: Any) -> None:
    for ledger in (DynamoLedger(ddb, "counters"), MemoryLedger()):
        ledger.put("d", "capped", {**FULL, "remaining": ["i-1"]}, replace=True)
        ledger.put("d", "acted", {"remaining": []})  # the backlog's write: only what it knows
        item = ledger.get("d")
        assert item is not None
        assert item["state"] == "acted" and item["remaining"] == [] and item["reason"] == FULL["reason"]


def test_the_memory_ledger_replaces_like_dynamodb() -> None:
    ledger = MemoryLedger()
    ledger.put("d", "decided", {**FULL, "extra": 1})
    ledger.put("d", "acted", FULL, replace=True)
    assert ledger.get("d") == {**FULL, "state": "acted"}
    ledger.put("d", "failed", {"remaining": ["i-9"]})
    assert ledger.get("d") == {**FULL, "remaining": ["i-9"], "state": "failed"}
