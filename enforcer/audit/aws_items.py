"""The AWS audit store's DynamoDB items: their keys and attribute values (see ``enforcer.audit.aws``)."""

from __future__ import annotations

from enforcer.audit.store_support import event_digest

#: The chain's head item.
HEAD = "HEAD"
DEFAULT_RETENTION_DAYS = 2557  # seven years


def rec_pk(seq: int) -> str:
    """Key of record ``seq``."""
    return f"REC#{seq}"


def evt_pk(key: str) -> str:
    """Key of the idempotency item of an event key."""
    return "EVT#" + event_digest(key).hex()


def num(value: int) -> dict[str, str]:
    """A DynamoDB number."""
    return {"N": str(value)}


def string(value: str) -> dict[str, str]:
    """A DynamoDB string."""
    return {"S": value}
