"""The licence register: export licences and authorisations as first-class data.

A licence (e.g. a BIS licence granted under the case-by-case review of 91 FR 1684 for H200-class
items to China) is recorded for one AWS account with its scope: destination countries, chip
classes, a TPP cap, validity dates and evidence. The pipeline passes an account's licences to the
policy as ``input.licences``; the policy (not this module) decides whether one covers a deny and
turns it into a ``LICENSED`` audit, never beyond its scope or dates.

Backends: :class:`LocalLicenceStore` (``STATE/licences.json``) and :class:`DynamoDBLicenceStore`
(table ``<registry prefix>licences``, partition key ``account_id``, sort key ``licence_id``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from enforcer.ids import ACCOUNT_RE, ID_RE  # not attestation.constants: that loads the JWS stack
from enforcer.model import InputError
from enforcer.policy.datafiles import is_iso_country

#: Chip classes a licence may name (a licence covers identified items only, never ``unknown``).
LICENSABLE_CLASSES = ("3A090.a", "3A090.b")
STATUSES = ("active", "revoked")
MAX_COUNTRIES = 64
MAX_TEXT = 512
#: Licences passed to the policy per account; more is refused (fail closed: no licence then counts).
MAX_PER_ACCOUNT = 64


class LicenceError(InputError):
    """A licence is malformed, duplicated or unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="LICENCE_ERROR")


def parse_time(value: str, what: str) -> str:
    """Normalise a DATE (``YYYY-MM-DD``, midnight UTC) or RFC 3339 time to ``YYYY-MM-DDTHH:MM:SSZ``."""
    text = value.strip()
    try:
        if len(text) == 10:
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError("no time zone")
    except ValueError as exc:
        raise LicenceError(f"{what} must be a date (YYYY-MM-DD) or an RFC 3339 time: {value[:40]!r}") from exc
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Licence:
    """One licence and its scope.

    ``expires`` is the first instant the licence no longer covers a launch; ``valid_from`` the first
    it does (default: when recorded). ``classes`` empty means every licensable class.
    """

    licence_id: str
    account_id: str
    countries: tuple[str, ...]
    expires: str
    classes: tuple[str, ...] = ()
    max_tpp: float | None = None
    valid_from: str | None = None
    end_customer: str | None = None
    evidence: str | None = None
    status: str = "active"
    created_at: str | None = None
    revoked_at: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.licence_id, str) or not ID_RE.match(self.licence_id):
            raise LicenceError(
                f"licence id must match [A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}: {self.licence_id!r}"
            )
        if not isinstance(self.account_id, str) or not ACCOUNT_RE.match(self.account_id):
            raise LicenceError(f"account must be a 12-digit AWS account id: {self.account_id!r}")
        if not self.countries or len(self.countries) > MAX_COUNTRIES:
            raise LicenceError(f"a licence names 1 to {MAX_COUNTRIES} countries")
        bad = [c for c in self.countries if not is_iso_country(c)]
        if bad:
            raise LicenceError(f"not ISO 3166-1 alpha-2 country codes: {', '.join(map(str, bad[:5]))}")
        wrong = [c for c in self.classes if c not in LICENSABLE_CLASSES]
        if wrong:
            raise LicenceError(f"classes must be among {', '.join(LICENSABLE_CLASSES)}: {wrong[:3]}")
        if self.max_tpp is not None and (
            isinstance(self.max_tpp, bool)
            or not isinstance(self.max_tpp, int | float)
            or not self.max_tpp > 0
        ):
            raise LicenceError("max TPP must be a positive number")
        parse_time(self.expires, "expires")
        if self.valid_from is not None and parse_time(self.valid_from, "valid from") >= self.expires:
            raise LicenceError("the licence expires before it starts")
        if self.status not in STATUSES:
            raise LicenceError(f"status must be one of {', '.join(STATUSES)}")
        for name in ("end_customer", "evidence"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or len(v) > MAX_TEXT):
                raise LicenceError(f"{name} must be text of at most {MAX_TEXT} characters")

    def to_policy(self) -> dict[str, Any]:
        """The licence as ``input.licences[]``: scope and dates only (no names, no evidence)."""
        doc: dict[str, Any] = {
            "id": self.licence_id,
            "account_id": self.account_id,
            "countries": list(self.countries),
            "expires": self.expires,
            "status": self.status,
        }
        if self.classes:
            doc["classes"] = list(self.classes)
        if self.max_tpp is not None:
            doc["max_tpp"] = self.max_tpp
        if self.valid_from is not None:
            doc["valid_from"] = self.valid_from
        if self.revoked_at is not None:
            doc["revoked_at"] = self.revoked_at
        return doc

    def to_dict(self) -> dict[str, Any]:
        """The full record (``licence list``, storage)."""
        return {
            "licence_id": self.licence_id,
            "account_id": self.account_id,
            "countries": list(self.countries),
            "classes": list(self.classes),
            "max_tpp": self.max_tpp,
            "valid_from": self.valid_from,
            "expires": self.expires,
            "end_customer": self.end_customer,
            "evidence": self.evidence,
            "status": self.status,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Licence:
        """Rebuild (and re-validate) a stored licence."""
        max_tpp = d.get("max_tpp")
        return cls(
            licence_id=str(d["licence_id"]),
            account_id=str(d["account_id"]),
            countries=tuple(d.get("countries") or ()),
            classes=tuple(d.get("classes") or ()),
            max_tpp=None if max_tpp is None else float(max_tpp),
            valid_from=d.get("valid_from"),
            expires=str(d["expires"]),
            end_customer=d.get("end_customer"),
            evidence=d.get("evidence"),
            status=str(d.get("status") or "active"),
            created_at=d.get("created_at"),
            revoked_at=d.get("revoked_at"),
        )


class LicenceStore(Protocol):
    """Where licences live (local file or DynamoDB)."""

    def add(self, licence: Licence) -> None:
        """Record a new licence; raise LicenceError when the id is taken."""
        ...

    def entries(self, account_id: str | None = None) -> list[Licence]:
        """Every licence (of one account), sorted by account then id."""
        ...

    def revoke(self, licence_id: str, at: str) -> Licence:
        """Mark a licence revoked; raise LicenceError when unknown."""
        ...

    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """The account's licences as the policy sees them (``pipeline.LicenceSource``)."""
        ...


def policy_view(items: list[Licence]) -> list[dict[str, Any]]:
    """``input.licences`` for one account: in-scope fields only, bounded.

    Raises
    ------
    LicenceError
        When the account has more than :data:`MAX_PER_ACCOUNT` licences (the pipeline then passes none).
    """
    if len(items) > MAX_PER_ACCOUNT:
        raise LicenceError(f"more than {MAX_PER_ACCOUNT} licences for one account; revoke or remove old ones")
    return [x.to_policy() for x in items]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalLicenceStore:
    """Licences in one JSON file (``STATE/licences.json``), re-read when it changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._items: dict[str, Licence] = {}

    def _load(self) -> dict[str, Licence]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._items = None, {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            raw = json.loads(self.path.read_text() or "{}")
            self._items = {d["licence_id"]: Licence.from_dict(d) for d in raw.get("licences", [])}
            self._stamp = stamp
        return dict(self._items)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _save(self, items: dict[str, Licence]) -> None:
        doc = {"licences": [items[k].to_dict() for k in sorted(items)]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".licences.")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        os.replace(tmp, self.path)

    def add(self, licence: Licence) -> None:
        """Record a new licence; raise LicenceError when the id is taken."""
        with self._locked():
            items = self._load()
            if licence.licence_id in items:
                raise LicenceError(f"licence {licence.licence_id} already exists (revoke it, add a new id)")
            items[licence.licence_id] = replace(licence, created_at=licence.created_at or _now())
            self._save(items)

    def entries(self, account_id: str | None = None) -> list[Licence]:
        """Every licence (of one account), sorted by account then id."""
        out = [x for x in self._load().values() if account_id is None or x.account_id == account_id]
        return sorted(out, key=lambda x: (x.account_id, x.licence_id))

    def revoke(self, licence_id: str, at: str) -> Licence:
        """Mark a licence revoked (kept for the record); raise LicenceError when unknown."""
        with self._locked():
            items = self._load()
            old = items.get(licence_id)
            if old is None:
                raise LicenceError(f"no licence {licence_id!r}")
            items[licence_id] = new = replace(old, status="revoked", revoked_at=at)
            self._save(items)
            return new

    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """The account's licences as ``input.licences``."""
        return policy_view(self.entries(account_id))


def licences_table(prefix: str) -> str:
    """The DynamoDB table name of the licence register for a registry prefix."""
    return f"{prefix}licences"


def create_licence_table(client: Any, prefix: str) -> str:
    """Create the licence table (on-demand) if it does not exist, wait for it, return its name."""
    from enforcer.dynamo import ensure_table

    return ensure_table(client, licences_table(prefix), "account_id", "licence_id")


class DynamoDBLicenceStore:
    """Licences in DynamoDB; reads that feed a decision are strongly consistent.

    Parameters
    ----------
    client
        A boto3 DynamoDB client (passed in, never created here).
    table
        The table name (see :func:`licences_table`).
    """

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    @staticmethod
    def _to_item(x: Licence) -> dict[str, Any]:
        from enforcer.attestation.dynamodb_registry import _item

        d = {k: v for k, v in x.to_dict().items() if v is not None and v != []}
        return _item(d)

    @staticmethod
    def _from_item(item: dict[str, Any]) -> Licence:
        from enforcer.attestation.dynamodb_registry import _plain

        return Licence.from_dict(_plain(item))

    def add(self, licence: Licence) -> None:
        """Record a new licence; raise LicenceError when the id is taken (in any account)."""
        from botocore.exceptions import ClientError

        from enforcer.aws_errors import error_code

        if self._find(licence.licence_id) is not None:
            raise LicenceError(f"licence {licence.licence_id} already exists (revoke it, add a new id)")
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._to_item(replace(licence, created_at=licence.created_at or _now())),
                ConditionExpression="attribute_not_exists(licence_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LicenceError(f"licence {licence.licence_id} already exists") from exc
            raise

    def _scan(self) -> list[Licence]:
        out: list[Licence] = []
        for page in self.client.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
            out.extend(self._from_item(i) for i in page.get("Items", []))
        return out

    def _find(self, licence_id: str) -> Licence | None:
        return next((x for x in self._scan() if x.licence_id == licence_id), None)

    def _query(self, account_id: str) -> list[Licence]:
        out: list[Licence] = []
        for page in self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="account_id = :a",
            ExpressionAttributeValues={":a": {"S": account_id}},
            ConsistentRead=True,
        ):
            out.extend(self._from_item(i) for i in page.get("Items", []))
        return out

    def entries(self, account_id: str | None = None) -> list[Licence]:
        """Every licence (of one account), sorted by account then id."""
        out = self._scan() if account_id is None else self._query(account_id)
        return sorted(out, key=lambda x: (x.account_id, x.licence_id))

    def revoke(self, licence_id: str, at: str) -> Licence:
        """Mark a licence revoked; raise LicenceError when unknown."""
        old = self._find(licence_id)
        if old is None:
            raise LicenceError(f"no licence {licence_id!r}")
        self.client.update_item(
            TableName=self.table,
            Key={"account_id": {"S": old.account_id}, "licence_id": {"S": licence_id}},
            UpdateExpression="SET #s = :r, revoked_at = :t",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":r": {"S": "revoked"}, ":t": {"S": at}},
            ConditionExpression="attribute_exists(licence_id)",
        )
        return replace(old, status="revoked", revoked_at=at)

    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """The account's licences as ``input.licences`` (a failure raises; the pipeline fails closed)."""
        return policy_view(self._query(account_id))
