"""Remediation state per decision, per-account caps, the capped backlog and the sweep cursor.

The guard keeps one state per denied launch beside its audit record, keyed by decision id:

``decided`` (written in the same DynamoDB transaction as the audit record) -> ``acted`` (stopped or
terminated, or nothing left running) | ``failed`` (an AWS call failed: retried by a redelivery or the
sweep) | ``capped`` (a cap held some targets back: they wait in the backlog, an alarm is raised).

A redelivered event never makes a new decision: the guard reads the logged one and this state, and
acts again unless the state is ``acted``.

Caps protect against a policy bug, not against enforcement: they are per account and region per
hour (one DynamoDB counter item each), and a deny carrying a reason flagged ``"legal": true`` in
``policies/gpu/reasons/data.json`` (restricted origin or end customer) is never capped.

Items (table with partition key ``pk``, the guard's counter table): ``ACT#<decision id>``,
``BACKLOG`` (string set ``ids``), ``cap#<account>#<region>#<hour>`` (``count``), ``CURSOR#<name>``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from enforcer.aws_errors import error_code
from enforcer.dynamo import create_table
from enforcer.model import Decision

STATES = ("decided", "acted", "failed", "capped")
#: States after which a redelivery or the sweep has nothing left to do.
FINAL_STATES = frozenset({"acted"})
#: ACT items expire after this many seconds (TTL attribute ``expires_at``).
STATE_TTL = 90 * 24 * 3600
#: Most decision ids kept in the backlog item (400 KB DynamoDB item limit).
MAX_BACKLOG = 2000
_REASONS_FILE = Path("gpu") / "reasons" / "data.json"


def legal_codes(policy_dir: str | Path) -> frozenset[str] | None:
    """Reason codes flagged ``"legal": true`` in the policy's reasons data.

    Returns None when the file cannot be read: the caller must then treat every deny as legal
    (never capped: failing closed on enforcement).
    """
    try:
        data = json.loads((Path(policy_dir) / _REASONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return frozenset(k for k, v in data.items() if isinstance(v, dict) and v.get("legal") is True)


def is_legal(codes: Iterable[str], legal: frozenset[str] | None) -> bool:
    """True when any of ``codes`` is a legal prohibition (or the legal set is unknown)."""
    return legal is None or any(c in legal for c in codes)


class ActLedger(Protocol):
    """Where remediation states, the backlog and cursors live."""

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """The state item of ``decision_id`` (``state``, ``account``, ``region``, ``remaining`` ...)."""
        ...

    def put(self, decision_id: str, state: str, fields: dict[str, Any], *, replace: bool = False) -> None:
        """Record ``state`` (and its fields) for ``decision_id``.

        ``fields`` are merged into the item; with ``replace`` the item is written whole (for a caller
        that passes every field, the same resulting item in one cheaper write).
        """
        ...

    def backlog_add(self, decision_id: str) -> None:
        """Queue ``decision_id`` for the next sweep."""
        ...

    def backlog_remove(self, decision_id: str) -> None:
        """Take ``decision_id`` off the backlog."""
        ...

    def backlog(self) -> list[str]:
        """Queued decision ids, oldest first where the store knows the order."""
        ...

    def cursor(self, name: str) -> int:
        """A persisted position (0 when never set)."""
        ...

    def set_cursor(self, name: str, value: int) -> None:
        """Persist a position."""
        ...


def _state_fields(decision: Decision, targets: list[str], legal: bool) -> dict[str, Any]:
    from enforcer.actions import reason_text

    req = decision.request
    return {
        "account": req.account_id,
        "region": req.region,
        "remaining": list(targets),
        "legal": legal,
        "reason": reason_text(decision),
        "reasons": decision.reason_codes[:20],
        "event_id": str(req.event_id or "")[:256],
    }


class MemoryLedger:
    """In-process ledger (local runs, tests); the same semantics as :class:`DynamoLedger`."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._backlog: dict[str, None] = {}
        self._cursors: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """See :class:`ActLedger`."""
        with self._lock:
            item = self.items.get(decision_id)
            return dict(item) if item is not None else None

    def put(self, decision_id: str, state: str, fields: dict[str, Any], *, replace: bool = False) -> None:
        """See :class:`ActLedger`."""
        with self._lock:
            kept = {} if replace else self.items.get(decision_id, {})
            self.items[decision_id] = {**kept, **fields, "state": state}

    def backlog_add(self, decision_id: str) -> None:
        """See :class:`ActLedger`."""
        with self._lock:
            if len(self._backlog) < MAX_BACKLOG:
                self._backlog[decision_id] = None

    def backlog_remove(self, decision_id: str) -> None:
        """See :class:`ActLedger`."""
        with self._lock:
            self._backlog.pop(decision_id, None)

    def backlog(self) -> list[str]:
        """See :class:`ActLedger`."""
        with self._lock:
            return list(self._backlog)

    def cursor(self, name: str) -> int:
        """See :class:`ActLedger`."""
        return self._cursors.get(name, 0)

    def set_cursor(self, name: str, value: int) -> None:
        """See :class:`ActLedger`."""
        self._cursors[name] = value


def _to_ddb(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, list):
        return {"L": [_to_ddb(v) for v in value]}
    return {"S": str(value)}


def _from_ddb(value: dict[str, Any]) -> Any:
    if "BOOL" in value:
        return bool(value["BOOL"])
    if "N" in value:
        return int(value["N"])
    if "L" in value:
        return [_from_ddb(v) for v in value["L"]]
    if "SS" in value:
        return list(value["SS"])
    return value.get("S")


class DynamoLedger:
    """The ledger in the guard's DynamoDB counter table (partition key ``pk``).

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        The counter table.
    clock
        Epoch seconds (TTL of state items).
    """

    def __init__(self, dynamodb: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self.ddb = dynamodb
        self.table = table
        self.clock = clock

    def item(self, decision_id: str, state: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The DynamoDB item of a state (for a ``Put`` inside the audit transaction)."""
        item = {k: _to_ddb(v) for k, v in fields.items()}
        item.update(
            {
                "pk": {"S": f"ACT#{decision_id}"},
                "state": {"S": state},
                "updated": {"N": str(int(self.clock()))},
                "expires_at": {"N": str(int(self.clock()) + STATE_TTL)},
            }
        )
        return item

    def put_op(self, decision_id: str, state: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A ``TransactWriteItems`` ``Put`` of the state (committed with the audit record)."""
        return {"Put": {"TableName": self.table, "Item": self.item(decision_id, state, fields)}}

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """See :class:`ActLedger`."""
        resp = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"ACT#{decision_id}"}}, ConsistentRead=True
        )
        item = resp.get("Item")
        if not isinstance(item, dict):
            return None
        return {k: _from_ddb(v) for k, v in item.items() if k != "pk"}

    def put(self, decision_id: str, state: str, fields: dict[str, Any], *, replace: bool = False) -> None:
        """See :class:`ActLedger`: an ``UpdateItem`` setting ``fields`` (merged into the item), or with
        ``replace`` a ``PutItem`` of the whole item (``pk``, ``fields``, ``state``, ``updated``,
        ``expires_at``: every attribute an ``ACT#`` item has when ``fields`` is the full set of
        ``_state_fields``). DynamoDB parses no update expression for a put (cheaper for in-process
        moto, which parses and deep-copies one per update)."""
        item = self.item(decision_id, state, fields)
        if replace:
            self.ddb.put_item(TableName=self.table, Item=item)
            return
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        for n, (k, v) in enumerate(item.items()):
            if k == "pk":
                continue
            names[f"#a{n}"] = k
            values[f":v{n}"] = v
            sets.append(f"#a{n} = :v{n}")
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"ACT#{decision_id}"}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def backlog_add(self, decision_id: str) -> None:
        """See :class:`ActLedger`."""
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": "BACKLOG"}},
            UpdateExpression="ADD ids :id",
            ExpressionAttributeValues={":id": {"SS": [decision_id]}},
        )

    def backlog_remove(self, decision_id: str) -> None:
        """See :class:`ActLedger`."""
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": "BACKLOG"}},
            UpdateExpression="DELETE ids :id",
            ExpressionAttributeValues={":id": {"SS": [decision_id]}},
        )

    def backlog(self) -> list[str]:
        """See :class:`ActLedger` (a set: no order)."""
        resp = self.ddb.get_item(TableName=self.table, Key={"pk": {"S": "BACKLOG"}}, ConsistentRead=True)
        ids = (resp.get("Item") or {}).get("ids", {}).get("SS") or []
        return sorted(str(i) for i in ids)[:MAX_BACKLOG]

    def cursor(self, name: str) -> int:
        """See :class:`ActLedger`."""
        resp = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"CURSOR#{name}"}}, ConsistentRead=True
        )
        try:
            return int(resp["Item"]["pos"]["N"])
        except (KeyError, TypeError, ValueError):
            return 0

    def set_cursor(self, name: str, value: int) -> None:
        """See :class:`ActLedger`."""
        self.ddb.put_item(
            TableName=self.table, Item={"pk": {"S": f"CURSOR#{name}"}, "pos": {"N": str(int(value))}}
        )


class AccountCaps:
    """Per account and region hourly caps: one DynamoDB counter item per (account, region, hour).

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        The counter table (TTL attribute ``expires_at``).
    cap
        Most instances acted on per account and region per hour (legal denies are not counted).
    clock
        Epoch seconds.
    """

    def __init__(self, dynamodb: Any, table: str, cap: int, clock: Callable[[], float] = time.time) -> None:
        self.ddb = dynamodb
        self.table = table
        self.cap = cap
        self.clock = clock

    def key(self, account: str, region: str) -> str:
        """The counter item of the current hour for ``account`` in ``region``."""
        hour = time.strftime("%Y-%m-%dT%H", time.gmtime(self.clock()))
        return f"cap#{account}#{region}#{hour}"

    def update(self, account: str, region: str, n: int) -> dict[str, Any]:
        """The conditional ``ADD n`` (fails when the hour's total would pass the cap)."""
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": self.key(account, region)}},
            "UpdateExpression": "ADD #n :k SET #ttl = if_not_exists(#ttl, :ttl)",
            "ConditionExpression": "attribute_not_exists(#n) OR #n <= :room",
            "ExpressionAttributeNames": {"#n": "count", "#ttl": "expires_at"},
            "ExpressionAttributeValues": {
                ":k": {"N": str(n)},
                ":room": {"N": str(self.cap - n)},
                ":ttl": {"N": str(int(self.clock()) + 2 * 3600)},
            },
        }

    def acquire(self, account: str, region: str, n: int) -> bool:
        """Atomically count ``n`` when the hour's total stays within the cap; False when it would not.

        Raises
        ------
        botocore.exceptions.ClientError
            On any error other than the failed condition.
        """
        if n <= 0:
            return True
        if n > self.cap:
            return False
        try:
            self.ddb.update_item(**self.update(account, region, n))
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def used(self, account: str, region: str) -> int:
        """Instances acted on so far this hour in ``account``/``region``."""
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": self.key(account, region)}}, ConsistentRead=True
        )
        return int(item.get("Item", {}).get("count", {}).get("N", "0"))


def create_counter_table(dynamodb: Any, table: str) -> str:
    """Create the blast-radius counter table (pk ``pk``, on demand, TTL ``expires_at``) if missing.

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        Table name.
    """
    try:
        create_table(dynamodb, table, "pk")
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    return table


__all__ = [
    "FINAL_STATES",
    "STATES",
    "AccountCaps",
    "ActLedger",
    "DynamoLedger",
    "MemoryLedger",
    "create_counter_table",
    "is_legal",
    "legal_codes",
]
