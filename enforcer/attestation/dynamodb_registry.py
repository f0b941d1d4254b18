"""DynamoDB-backed reseller registry.

Tables (see :func:`create_tables`):

* ``<prefix>resellers``: partition key ``reseller_id`` (S). One item per reseller with a ``keys``
  map (kid -> key), plus one meta item ``reseller_id = "#meta"`` holding the revocation
  ``generation`` counter and the operator CA trust (``anchors``, ``revoked_serials``).
* ``<prefix>attestations``: partition key ``account_id`` (S), sort key ``jti`` (S).

Every key-material change and the generation bump are written in one transaction, and every
read that feeds a decision is strongly consistent, so a revocation is seen by the next decision.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from enforcer.attestation.registry import (
    CLIENT_AUTH_EKU,
    RegistryError,
    Reseller,
    ResellerKey,
    StoredAttestation,
    TrustConfig,
    check_account,
    check_id,
    merge_crl,
    newest_first,
)
from enforcer.aws_errors import error_code
from enforcer.dynamo import ensure_table

META_ID = "#meta"


def _split_cert(value: str) -> tuple[str, int]:
    serial, _, issuer = str(value).partition("|")
    return issuer, int(serial)


_SER = TypeSerializer()
_DES = TypeDeserializer()


def table_names(prefix: str) -> dict[str, str]:
    """Return ``{"resellers": ..., "attestations": ...}`` table names for ``prefix``."""
    return {"resellers": f"{prefix}resellers", "attestations": f"{prefix}attestations"}


def create_tables(dynamodb_client: Any, prefix: str) -> dict[str, str]:
    """Create the two registry tables (on-demand billing) if they do not exist, and wait for them.

    Parameters
    ----------
    dynamodb_client
        A boto3 DynamoDB client.
    prefix
        Table name prefix, e.g. ``"gle-"``.

    Returns
    -------
    dict
        ``{"resellers": name, "attestations": name}``.
    """
    names = table_names(prefix)
    ensure_table(dynamodb_client, names["resellers"], "reseller_id")
    ensure_table(dynamodb_client, names["attestations"], "account_id", "jti")
    return names


def _to_ddb(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_ddb(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_ddb(v) for v in value]
    return value


def _from_ddb(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_ddb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_ddb(v) for v in value]
    if isinstance(value, set):
        return {_from_ddb(v) for v in value}
    return value


def _item(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in _to_ddb(d).items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_ddb(_DES.deserialize(v)) for k, v in item.items()}


class DynamoDBRegistry:
    """An :class:`~enforcer.attestation.registry.AttestationRegistry` on two DynamoDB tables.

    Parameters
    ----------
    client
        A boto3 DynamoDB client (passed in, never created here).
    prefix
        Table name prefix used with :func:`create_tables`.
    """

    def __init__(self, client: Any, prefix: str = "") -> None:
        self.client = client
        names = table_names(prefix)
        self.resellers_table = names["resellers"]
        self.attestations_table = names["attestations"]

    # -- helpers -------------------------------------------------------------------------------
    def _get(self, table: str, key: dict[str, str]) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=table, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True
        )
        item = resp.get("Item")
        return _plain(item) if item else None

    def _bump(self) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.resellers_table,
                "Key": {"reseller_id": {"S": META_ID}},
                "UpdateExpression": "ADD generation :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }

    def _transact(self, update: dict[str, Any], what: str) -> None:
        try:
            self.client.transact_write_items(TransactItems=[{"Update": update}, self._bump()])
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                raise RegistryError(f"{what}: refused (changed concurrently or does not exist)") from exc
            raise

    @staticmethod
    def _reseller_from_item(item: dict[str, Any]) -> Reseller:
        keys = [ResellerKey.from_dict(k) for k in (item.get("keys") or {}).values()]
        return Reseller(
            reseller_id=str(item["reseller_id"]),
            name=item.get("name"),
            country=item.get("country"),
            keys={k.kid: k for k in keys},
            hq_country=item.get("hq_country"),
            parent_hq_country=item.get("parent_hq_country"),
            status=str(item.get("status") or "active"),
        )

    # -- resellers and keys --------------------------------------------------------------------
    def get_reseller(self, reseller_id: str) -> Reseller | None:
        """Return the reseller (strongly consistent read) or None."""
        if reseller_id == META_ID:
            return None
        item = self._get(self.resellers_table, {"reseller_id": reseller_id})
        return self._reseller_from_item(item) if item else None

    def list_resellers(self) -> list[Reseller]:
        """Return every reseller, sorted by id."""
        out: list[Reseller] = []
        for page in self.client.get_paginator("scan").paginate(
            TableName=self.resellers_table, ConsistentRead=True
        ):
            for raw in page.get("Items", []):
                item = _plain(raw)
                if item.get("reseller_id") != META_ID:
                    out.append(self._reseller_from_item(item))
        return sorted(out, key=lambda r: r.reseller_id)

    def put_reseller(
        self,
        reseller_id: str,
        name: str | None = None,
        country: str | None = None,
        *,
        hq_country: str | None = None,
        parent_hq_country: str | None = None,
        status: str | None = None,
    ) -> Reseller:
        """Create the reseller or update the fields given (None keeps the stored value)."""
        check_id(reseller_id, "reseller id")
        fields = {
            "name": name,
            "country": country,
            "hq_country": hq_country,
            "parent_hq_country": parent_hq_country,
            "status": status,
        }
        Reseller(
            reseller_id, name, country, {}, hq_country, parent_hq_country, status or "active"
        )  # validates
        sets = ["#keys = if_not_exists(#keys, :empty)"]
        names = {"#keys": "keys"}
        values: dict[str, Any] = {":empty": {"M": {}}}
        for f, v in fields.items():
            if v is not None:
                sets.append(f"#{f} = :{f}")
                names[f"#{f}"] = f
                values[f":{f}"] = {"S": v}
        self._transact(
            {
                "TableName": self.resellers_table,
                "Key": {"reseller_id": {"S": reseller_id}},
                "UpdateExpression": "SET " + ", ".join(sets),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            },
            f"put reseller {reseller_id!r}",
        )
        r = self.get_reseller(reseller_id)
        assert r is not None
        return r

    def add_key(self, reseller_id: str, key: ResellerKey) -> None:
        """Add a key to an existing reseller (kid must be new for that reseller)."""
        r = self.get_reseller(reseller_id)
        if r is None:
            raise RegistryError(f"unknown reseller {reseller_id!r}")
        if key.kid in r.keys:
            raise RegistryError(f"reseller {reseller_id!r} already has a key {key.kid!r}")
        self._transact(
            {
                "TableName": self.resellers_table,
                "Key": {"reseller_id": {"S": reseller_id}},
                "UpdateExpression": "SET #keys.#kid = :k",
                "ConditionExpression": "attribute_exists(reseller_id) AND attribute_not_exists(#keys.#kid)",
                "ExpressionAttributeNames": {"#keys": "keys", "#kid": key.kid},
                "ExpressionAttributeValues": {":k": _SER.serialize(_to_ddb(key.to_dict()))},
            },
            f"add key {key.kid!r} to {reseller_id!r}",
        )

    def revoke_key(self, reseller_id: str, kid: str, at: float) -> None:
        """Mark a key revoked and bump the revocation generation in one transaction."""
        r = self.get_reseller(reseller_id)
        if r is None or kid not in r.keys:
            raise RegistryError(f"reseller {reseller_id!r} has no key {kid!r}")
        self._transact(
            {
                "TableName": self.resellers_table,
                "Key": {"reseller_id": {"S": reseller_id}},
                "UpdateExpression": "SET #keys.#kid.#status = :revoked, "
                "#keys.#kid.revoked_at = if_not_exists(#keys.#kid.revoked_at, :at)",
                "ConditionExpression": "attribute_exists(#keys.#kid)",
                "ExpressionAttributeNames": {"#keys": "keys", "#kid": kid, "#status": "status"},
                "ExpressionAttributeValues": {
                    ":revoked": {"S": "revoked"},
                    ":at": {"N": repr(float(at))},
                },
            },
            f"revoke key {kid!r} of {reseller_id!r}",
        )

    def revocation_generation(self) -> str:
        """The meta item's generation counter (strongly consistent read)."""
        item = self._get(self.resellers_table, {"reseller_id": META_ID})
        return str(item.get("generation", 0)) if item else "0"

    # -- CA trust ------------------------------------------------------------------------------
    def trust(self) -> TrustConfig:
        """The operator CA anchors and revoked certificate serials."""
        item = self._get(self.resellers_table, {"reseller_id": META_ID}) or {}
        return TrustConfig(
            anchors=tuple(str(a) for a in item.get("anchors", [])),
            revoked_serials=frozenset(int(s) for s in item.get("revoked_serials", set())),
            revoked_certs=frozenset(_split_cert(c) for c in item.get("revoked_certs", set())),
            crls=tuple(str(c) for c in item.get("crls", [])),
            required_eku=str(item.get("required_eku") or CLIENT_AUTH_EKU),
        )

    def add_trust_anchor(self, pem: str) -> None:
        """Trust an operator CA certificate (PEM) for ``x5c``-certified reseller keys."""
        if pem in self.trust().anchors:
            return
        self.client.update_item(
            TableName=self.resellers_table,
            Key={"reseller_id": {"S": META_ID}},
            UpdateExpression=(
                "SET anchors = list_append(if_not_exists(anchors, :empty), :new) ADD generation :one"
            ),
            ExpressionAttributeValues={
                ":empty": {"L": []},
                ":new": {"L": [{"S": pem}]},
                ":one": {"N": "1"},
            },
        )

    def revoke_serial(self, serial: int) -> None:
        """Stop accepting certificates with this serial number."""
        self.client.update_item(
            TableName=self.resellers_table,
            Key={"reseller_id": {"S": META_ID}},
            UpdateExpression="ADD revoked_serials :s, generation :one",
            ExpressionAttributeValues={":s": {"SS": [str(int(serial))]}, ":one": {"N": "1"}},
        )

    def revoke_certificate(self, issuer: str, serial: int) -> None:
        """Stop accepting the certificate ``serial`` issued by ``issuer`` (RFC 4514 DN)."""
        self.client.update_item(
            TableName=self.resellers_table,
            Key={"reseller_id": {"S": META_ID}},
            UpdateExpression="ADD revoked_certs :c, generation :one",
            ExpressionAttributeValues={":c": {"SS": [f"{int(serial)}|{issuer}"]}, ":one": {"N": "1"}},
        )

    def add_crl(self, pem: str) -> None:
        """Store a CRL (PEM); a newer CRL of the same issuer replaces the older one."""
        crls = merge_crl(list(self.trust().crls), pem)
        self.client.update_item(
            TableName=self.resellers_table,
            Key={"reseller_id": {"S": META_ID}},
            UpdateExpression="SET crls = :l ADD generation :one",
            ExpressionAttributeValues={":l": {"L": [{"S": c} for c in crls]}, ":one": {"N": "1"}},
        )

    # -- attestations --------------------------------------------------------------------------
    def put_attestation(self, att: StoredAttestation) -> bool:
        """Store an attestation; False if this exact token is already stored."""
        try:
            self.client.put_item(
                TableName=self.attestations_table,
                Item=_item(att.to_dict()),
                ConditionExpression="attribute_not_exists(jti)",
            )
            return True
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
        old = self._get(self.attestations_table, {"account_id": att.account_id, "jti": att.jti})
        if old is not None and old.get("token_sha256") == att.token_sha256:
            return False
        raise RegistryError(f"jti {att.jti!r} is already used by another token for this account")

    def attestations_for(self, account_id: str) -> list[StoredAttestation]:
        """Stored attestations of one account, newest first (strongly consistent query)."""
        check_account(account_id)
        out: list[StoredAttestation] = []
        for page in self.client.get_paginator("query").paginate(
            TableName=self.attestations_table,
            KeyConditionExpression="account_id = :a",
            ExpressionAttributeValues={":a": {"S": account_id}},
            ConsistentRead=True,
        ):
            out.extend(StoredAttestation.from_dict(_plain(i)) for i in page.get("Items", []))
        return newest_first(out)

    def list_attestations(self, account_id: str | None = None) -> list[StoredAttestation]:
        """Stored attestations of one account, or of all accounts (sorted by account, newest first)."""
        if account_id is not None:
            return self.attestations_for(account_id)
        out: list[StoredAttestation] = []
        for page in self.client.get_paginator("scan").paginate(TableName=self.attestations_table):
            out.extend(StoredAttestation.from_dict(_plain(i)) for i in page.get("Items", []))
        by_account: dict[str, list[StoredAttestation]] = {}
        for a in out:
            by_account.setdefault(a.account_id, []).append(a)
        return [a for acc in sorted(by_account) for a in newest_first(by_account[acc])]
