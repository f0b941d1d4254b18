"""Account directory backends on AWS: a DynamoDB table, and AWS Organizations account tags.

Both implement :class:`enforcer.ports.AccountDirectory` (``get(account_id) -> AccountOrigin | None``).
Clients are passed in, never created here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from enforcer.aws_errors import error_code
from enforcer.dynamo import ensure_table
from enforcer.ids import ACCOUNT_RE, COUNTRY_RE
from enforcer.model import AccountOrigin, InputError

KYC_VALUES = ("verified", "pending", "none")
MAX_VALUE_CHARS = 128

#: Organizations tag keys read by :class:`OrganizationsAccountDirectory`.
TAG_COUNTRY = "origin:country"
TAG_HQ = "origin:hq-country"
TAG_PARENT_HQ = "origin:parent-hq-country"
TAG_KYC = "kyc:status"
TAG_RESELLER = "reseller:id"

_NOT_FOUND = {"AccountNotFoundException", "TargetNotFoundException", "ResourceNotFoundException"}


def _country(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    cc = value.strip().upper()
    return cc if COUNTRY_RE.match(cc) else None


def _kyc(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in KYC_VALUES:
        return value.strip().lower()
    return "none"


def _reseller(value: Any) -> str | None:
    # A malformed reseller value is kept (bounded), not dropped: dropping it would turn a reseller
    # account into a direct one and waive the attestation requirement.
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_VALUE_CHARS]


def check_account_id(account_id: str) -> str:
    """Return ``account_id`` if it is 12 digits, else raise InputError."""
    if not isinstance(account_id, str) or not ACCOUNT_RE.match(account_id):
        raise InputError(f"account id must be 12 digits: {str(account_id)[:32]!r}", code="BAD_ACCOUNT_ID")
    return account_id


def origin_from_fields(account_id: str, fields: Mapping[str, Any]) -> AccountOrigin:
    """Build a normalised origin from a field mapping (``country``, ``hq_country``, ``parent_hq_country``,
    ``kyc``, ``reseller``, ``name``).

    Country codes are upper-cased and dropped when malformed (unknown), KYC falls back to ``none``.
    """
    name = fields.get("name")
    return AccountOrigin(
        account_id=account_id,
        country=_country(fields.get("country")),
        hq_country=_country(fields.get("hq_country")),
        parent_hq_country=_country(fields.get("parent_hq_country")),
        kyc=_kyc(fields.get("kyc")),
        reseller=_reseller(fields.get("reseller")),
        name=name[:MAX_VALUE_CHARS] if isinstance(name, str) else None,
    )


def origin_from_tags(account_id: str, tags: Mapping[str, str]) -> AccountOrigin:
    """Build an origin from Organizations account tags (``origin:country``, ``kyc:status``...)."""
    return origin_from_fields(
        account_id,
        {
            "country": tags.get(TAG_COUNTRY),
            "hq_country": tags.get(TAG_HQ),
            "parent_hq_country": tags.get(TAG_PARENT_HQ),
            "kyc": tags.get(TAG_KYC),
            "reseller": tags.get(TAG_RESELLER),
        },
    )


def create_accounts_table(dynamodb_client: Any, table: str) -> str:
    """Create the account directory table (pk ``account_id``, on-demand) if missing; return its name."""
    return ensure_table(dynamodb_client, table, "account_id")


class DynamoDBAccountDirectory:
    """Account directory in a DynamoDB table keyed by ``account_id``.

    Parameters
    ----------
    client
        A boto3 DynamoDB client.
    table
        Table name (see :func:`create_accounts_table`).
    """

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, account_id: str) -> AccountOrigin | None:
        """Return the origin of ``account_id`` or None when it is not in the table."""
        check_account_id(account_id)
        resp = self.client.get_item(TableName=self.table, Key={"account_id": {"S": account_id}})
        item = resp.get("Item")
        if not item:
            return None
        fields = {k: v.get("S") for k, v in item.items() if isinstance(v, dict)}
        return origin_from_fields(account_id, fields)

    def put(self, origin: AccountOrigin) -> None:
        """Insert or replace the origin of ``origin.account_id``."""
        check_account_id(origin.account_id)
        norm = origin_from_fields(origin.account_id, origin.to_dict())
        item: dict[str, Any] = {"account_id": {"S": norm.account_id}, "kyc": {"S": norm.kyc}}
        for k in ("country", "hq_country", "parent_hq_country", "reseller", "name"):
            v = getattr(norm, k)
            if v is not None:
                item[k] = {"S": v}
        self.client.put_item(TableName=self.table, Item=item)


class OrganizationsAccountDirectory:
    """Account directory read from AWS Organizations account tags, with a short TTL cache.

    Tags: ``origin:country``, ``origin:hq-country``, ``origin:parent-hq-country``, ``kyc:status``
    (verified|pending|none), ``reseller:id``. An account of the organisation without tags gives
    an origin with unknown countries and KYC ``none``; an account outside it gives None.

    Parameters
    ----------
    org_client
        A boto3 Organizations client (management or delegated-administrator account).
    ttl
        Seconds a looked-up origin (or absence) is reused.
    clock
        Monotonic clock, injectable for tests.
    """

    def __init__(
        self, org_client: Any, ttl: float = 300, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = org_client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, AccountOrigin | None]] = {}

    def _tags(self, account_id: str) -> dict[str, str] | None:
        tags: dict[str, str] = {}
        try:
            for page in self.client.get_paginator("list_tags_for_resource").paginate(ResourceId=account_id):
                for t in page.get("Tags", []):
                    tags[str(t["Key"])] = str(t["Value"])
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise
        return tags

    def get(self, account_id: str) -> AccountOrigin | None:
        """Return the origin of ``account_id`` (cached for ``ttl`` seconds) or None when unknown."""
        check_account_id(account_id)
        now = self.clock()
        hit = self._cache.get(account_id)
        if hit is not None and now < hit[0]:
            return hit[1]
        tags = self._tags(account_id)
        origin = None if tags is None else origin_from_tags(account_id, tags)
        self._cache[account_id] = (now + self.ttl, origin)
        return origin

    def invalidate(self, account_id: str | None = None) -> None:
        """Forget one cached account, or all."""
        if account_id is None:
            self._cache.clear()
        else:
            self._cache.pop(account_id, None)
