"""The ledger in DynamoDB: one BatchGetItem to read, the write folded into the audit transaction.

Items (partition key ``pk``): ``OWN#<kind>:<owner>`` (``running``, ``offset``, ``cumulative``,
``launches``, ``label``), ``ALLOC#<resource>`` (what a running resource counts for, until released)
and ``CALLS#<account>#<hour>`` (``c_<CC>`` call counters, expiring after a week). Every update is
an ``ADD``, so writers never read first and concurrent launches commute (``figures``).
"""

from __future__ import annotations

import time
from typing import Any

from enforcer.ledger.figures import Allocation, Delta, Figures
from enforcer.ledger.store import KEEP_HOURS

#: Allocations written inside the audit transaction; the rest follow in a batch write.
MAX_TX_ALLOCS = 20
_BATCH_GET_MAX = 100


def _n(x: float) -> dict[str, str]:
    return {"N": repr(round(float(x), 6))}


def _s(x: str) -> dict[str, str]:
    return {"S": x}


class DynamoLedgerStore:
    """The ledger in table ``table`` through an injected DynamoDB client."""

    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb = ddb
        self.table = table
        self.batch_writes = 0

    # -- read ---------------------------------------------------------------------------------
    def read(
        self, owner_keys: list[str], account_id: str, now: float, window_hours: int
    ) -> tuple[dict[str, Figures], dict[str, int]]:
        hour = int(now // 3600)
        hours = [f"CALLS#{account_id}#{h}" for h in range(hour - min(window_hours, KEEP_HOURS) + 1, hour + 1)]
        keys = list(dict.fromkeys([f"OWN#{k}" for k in owner_keys] + hours))
        items = self._batch_get(keys)
        figs = {}
        for k in owner_keys:
            it = items.get(f"OWN#{k}", {})
            figs[k] = Figures(
                float(it.get("running", {}).get("N", 0)),
                float(it.get("offset", {}).get("N", 0)),
                float(it.get("cumulative", {}).get("N", 0)),
                int(float(it.get("launches", {}).get("N", 0))),
            )
        calls: dict[str, int] = {}
        for pk in hours:
            for attr, v in items.get(pk, {}).items():
                if attr.startswith("c_") and "N" in v:
                    calls[attr[2:]] = calls.get(attr[2:], 0) + int(float(v["N"]))
        return figs, calls

    def _batch_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Every item of ``keys``: one call for up to 100 keys (the usual case), more only beyond that
        or under throttling; no owner is ever dropped (an owner read as 0 would hide its compute)."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), _BATCH_GET_MAX):
            chunk = [{"pk": _s(k)} for k in keys[i : i + _BATCH_GET_MAX]]
            request: dict[str, Any] = {self.table: {"Keys": chunk, "ConsistentRead": True}}
            for attempt in range(8):
                resp = self.ddb.batch_get_item(RequestItems=request)
                for it in resp.get("Responses", {}).get(self.table, []):
                    out[it["pk"]["S"]] = it
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.01 * 2**attempt)
            else:
                raise RuntimeError("ledger read: keys left unprocessed after retries")
        return out

    # -- write --------------------------------------------------------------------------------
    def ops(self, delta: Delta) -> tuple[list[dict[str, Any]], list[Allocation]]:
        """``TransactWriteItems`` operations for ``delta``, and the allocations left for a batch write."""
        ops: list[dict[str, Any]] = []
        per_owner: dict[str, tuple[float, float, int]] = {}
        for a in delta.allocations:
            for key in a.owners:
                r, o, n = per_owner.get(key, (0.0, 0.0, 0))
                per_owner[key] = (r + a.tpp, o + a.tpp * a.start, n + 1)
        for key, (r, o, n) in sorted(per_owner.items()):
            names = {"#r": "running", "#o": "offset", "#c": "cumulative", "#n": "launches"}
            values = {":r": _n(r), ":o": _n(o), ":n": _n(n)}
            expr = "ADD #r :r, #o :o, #c :r, #n :n"
            if key in delta.labels:
                names["#l"], values[":l"] = "label", _s(delta.labels[key][:256])
                expr += " SET #l = :l"
            ops.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": _s(f"OWN#{key}")},
                        "UpdateExpression": expr,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        ops.extend(
            {"Put": {"TableName": self.table, "Item": self._alloc_item(a)}}
            for a in delta.allocations[:MAX_TX_ALLOCS]
        )
        if delta.country is not None:
            ops.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": _s(f"CALLS#{delta.account_id}#{delta.hour}")},
                        "UpdateExpression": "ADD #c :one SET expires_at = :exp",
                        "ExpressionAttributeNames": {"#c": f"c_{delta.country}"},
                        "ExpressionAttributeValues": {
                            ":one": _n(1),
                            ":exp": _n((delta.hour + KEEP_HOURS) * 3600),
                        },
                    }
                }
            )
        return ops, delta.allocations[MAX_TX_ALLOCS:]

    def _alloc_item(self, a: Allocation) -> dict[str, Any]:
        return {
            "pk": _s(f"ALLOC#{a.resource}"),
            "tpp": _n(a.tpp),
            "start": _n(a.start),
            "owners": {"L": [_s(o) for o in a.owners]},
            "account_id": _s(a.account_id),
            "region": _s(a.region),
            "decision_id": _s(a.decision_id),
        }

    def put_rest(self, allocations: list[Allocation]) -> None:
        """Write allocations that did not fit in the transaction (batches of 25)."""
        for i in range(0, len(allocations), 25):
            reqs = [{"PutRequest": {"Item": self._alloc_item(a)}} for a in allocations[i : i + 25]]
            pending: dict[str, Any] = {self.table: reqs}
            for _ in range(5):
                self.batch_writes += 1
                pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.05)

    def apply(self, delta: Delta) -> None:
        if delta.empty:
            return
        ops, rest = self.ops(delta)
        self.ddb.transact_write_items(TransactItems=ops)
        self.put_rest(rest)

    # -- release ------------------------------------------------------------------------------
    def release(self, resource: str, when: float) -> Allocation | None:
        it = self.ddb.get_item(
            TableName=self.table, Key={"pk": _s(f"ALLOC#{resource}")}, ConsistentRead=True
        ).get("Item")
        if not it:
            return None
        a = Allocation(
            resource=resource,
            tpp=float(it["tpp"]["N"]),
            start=float(it["start"]["N"]),
            owners=[o["S"] for o in it.get("owners", {}).get("L", [])],
            account_id=it.get("account_id", {}).get("S", ""),
            region=it.get("region", {}).get("S", ""),
            decision_id=it.get("decision_id", {}).get("S", ""),
        )
        end = max(when, a.start)
        ops: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": _s(f"ALLOC#{resource}")},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        ]
        ops.extend(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": _s(f"OWN#{key}")},
                    "UpdateExpression": "ADD #r :r, #o :o",
                    "ExpressionAttributeNames": {"#r": "running", "#o": "offset"},
                    "ExpressionAttributeValues": {":r": _n(-a.tpp), ":o": _n(-a.tpp * end)},
                }
            }
            for key in a.owners
        )
        try:
            self.ddb.transact_write_items(TransactItems=ops)
        except Exception as exc:
            from enforcer.aws_errors import error_code

            if error_code(exc) == "TransactionCanceledException":
                return None  # released concurrently (stop then terminate): once only
            raise
        return a

    def owners(self, now: float, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every owner (a scan: for ``ledger show`` and reports, never on the decision path)."""
        out = []
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            resp = self.ddb.scan(**kwargs)
            for it in resp.get("Items", []):
                pk = it["pk"]["S"]
                if not pk.startswith("OWN#"):
                    continue
                kind, _, owner = pk[4:].partition(":")
                if prefix and not (pk[4:].startswith(prefix) or owner.startswith(prefix)):
                    continue
                num = {
                    k: float(it.get(k, {}).get("N", 0))
                    for k in ("running", "offset", "cumulative", "launches")
                }
                f = Figures(num["running"], num["offset"], num["cumulative"], int(num["launches"]))
                out.append(f.to_policy(kind, owner, now, it.get("label", {}).get("S")))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return sorted(out, key=lambda o: (-o["running_tpp"], -o["tpp_hours"], o["kind"], o["owner"]))


def create_ledger_table(ddb: Any, table: str) -> None:
    """Create the ledger table (tests, local set-up; the SAM template declares it in AWS)."""
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
