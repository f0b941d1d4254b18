"""The reseller registry: resellers, their keys, the operator CA trust, and stored attestations.

Two backends implement :class:`AttestationRegistry`: local files
(:class:`enforcer.attestation.local_registry.LocalRegistry`) and DynamoDB
(:class:`enforcer.attestation.dynamodb_registry.DynamoDBRegistry`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from enforcer.attestation.constants import ACCOUNT_RE, ALGORITHMS, COUNTRY_RE, ID_RE
from enforcer.model import InputError
from enforcer.policy.datafiles import is_iso_country

KEY_STATUSES = ("active", "revoked")
#: id-kp-clientAuth (RFC 5280 4.2.1.12): the EKU a reseller's signing certificate must carry by default.
CLIENT_AUTH_EKU = "1.3.6.1.5.5.7.3.2"
#: A reseller that is not ``active`` is denied (RESELLER_RESTRICTED) whatever it attests.
RESELLER_STATUSES = ("active", "suspended")
#: The reseller's own origin, passed to the policy as ``input.reseller``.
RESELLER_ORIGIN_FIELDS = ("country", "hq_country", "parent_hq_country")


class RegistryError(InputError):
    """A registry operation was refused (unknown reseller, duplicate kid, bad identifier...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="REGISTRY_ERROR")


def check_id(value: str, what: str) -> str:
    """Return ``value`` when it is a valid identifier, else raise RegistryError."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise RegistryError(f"{what} must match [A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}: {str(value)[:64]!r}")
    return value


def check_account(value: str) -> str:
    """Return ``value`` when it is a 12-digit AWS account id, else raise RegistryError."""
    if not isinstance(value, str) or not ACCOUNT_RE.match(value):
        raise RegistryError(f"account id must be 12 digits: {str(value)[:64]!r}")
    return value


def token_sha256(token: str) -> str:
    """Hex SHA-256 of a token (cache and idempotency key)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class ResellerKey:
    """A reseller's registered verification key. ``algorithm`` is pinned by the key type."""

    kid: str
    algorithm: str
    public_key_pem: str
    status: str = "active"
    not_after: float | None = None
    created_at: float | None = None
    revoked_at: float | None = None

    def __post_init__(self) -> None:
        check_id(self.kid, "kid")
        if self.algorithm not in ALGORITHMS:
            raise RegistryError(f"key algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.status not in KEY_STATUSES:
            raise RegistryError(f"key status must be one of {', '.join(KEY_STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "algorithm": self.algorithm,
            "public_key_pem": self.public_key_pem,
            "status": self.status,
            "not_after": self.not_after,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResellerKey:
        return cls(
            kid=str(d["kid"]),
            algorithm=str(d["algorithm"]),
            public_key_pem=str(d["public_key_pem"]),
            status=str(d.get("status", "active")),
            not_after=_opt_float(d.get("not_after")),
            created_at=_opt_float(d.get("created_at")),
            revoked_at=_opt_float(d.get("revoked_at")),
        )


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True, slots=True)
class Reseller:
    """A reseller known to the operator, with its keys (by kid)."""

    reseller_id: str
    name: str | None = None
    country: str | None = None
    keys: dict[str, ResellerKey] = field(default_factory=dict)
    hq_country: str | None = None
    parent_hq_country: str | None = None
    status: str = "active"

    def __post_init__(self) -> None:
        check_id(self.reseller_id, "reseller id")
        for f in RESELLER_ORIGIN_FIELDS:
            v = getattr(self, f)
            if v is not None and not (COUNTRY_RE.match(v) and is_iso_country(v)):
                raise RegistryError(f"reseller {f} must be an ISO 3166-1 alpha-2 code in upper case: {v!r}")
        if self.status not in RESELLER_STATUSES:
            raise RegistryError(f"reseller status must be one of {', '.join(RESELLER_STATUSES)}")

    def to_policy(self) -> dict[str, Any]:
        """The reseller as ``input.reseller``: its own origin and status (no keys)."""
        return {
            "id": self.reseller_id,
            "country": self.country,
            "hq_country": self.hq_country,
            "parent_hq_country": self.parent_hq_country,
            "status": self.status,
        }

    def with_key(self, key: ResellerKey) -> Reseller:
        """Return a copy with ``key`` added or replaced."""
        keys = dict(self.keys)
        keys[key.kid] = key
        return replace(self, keys=keys)

    def to_dict(self, include_pem: bool = True) -> dict[str, Any]:
        keys = []
        for k in self.keys.values():
            d = k.to_dict()
            if not include_pem:
                d.pop("public_key_pem")
            keys.append(d)
        return {
            "reseller_id": self.reseller_id,
            "name": self.name,
            "country": self.country,
            "hq_country": self.hq_country,
            "parent_hq_country": self.parent_hq_country,
            "status": self.status,
            "keys": keys,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reseller:
        keys = [ResellerKey.from_dict(k) for k in d.get("keys", [])]
        return cls(
            reseller_id=str(d["reseller_id"]),
            name=d.get("name"),
            country=d.get("country"),
            keys={k.kid: k for k in keys},
            hq_country=d.get("hq_country"),
            parent_hq_country=d.get("parent_hq_country"),
            status=str(d.get("status") or "active"),
        )


@dataclass(frozen=True, slots=True)
class StoredAttestation:
    """An attestation accepted by ``attest submit``; the token is re-verified at every decision."""

    account_id: str
    jti: str
    token: str
    issuer: str
    kid: str
    iat: int
    nbf: int
    exp: int
    submitted_at: float
    token_sha256: str = ""

    def __post_init__(self) -> None:
        check_account(self.account_id)
        check_id(self.jti, "jti")
        if not self.token_sha256:
            object.__setattr__(self, "token_sha256", token_sha256(self.token))

    def to_dict(self, include_token: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "account_id": self.account_id,
            "jti": self.jti,
            "issuer": self.issuer,
            "kid": self.kid,
            "iat": self.iat,
            "nbf": self.nbf,
            "exp": self.exp,
            "submitted_at": self.submitted_at,
            "token_sha256": self.token_sha256,
        }
        if include_token:
            d["token"] = self.token
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoredAttestation:
        return cls(
            account_id=str(d["account_id"]),
            jti=str(d["jti"]),
            token=str(d["token"]),
            issuer=str(d["issuer"]),
            kid=str(d["kid"]),
            iat=int(d["iat"]),
            nbf=int(d["nbf"]),
            exp=int(d["exp"]),
            submitted_at=float(d["submitted_at"]),
            token_sha256=str(d.get("token_sha256") or ""),
        )


def newest_first(items: list[StoredAttestation]) -> list[StoredAttestation]:
    """Order stored attestations newest first (by ``iat``, then submission time, then jti)."""
    return sorted(items, key=lambda a: (a.iat, a.submitted_at, a.jti), reverse=True)


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Operator CA trust for ``x5c``-certified reseller keys.

    ``anchors`` are PEM CA certificates; ``revoked_serials`` are certificate serial numbers
    (of leaves or intermediates) that must no longer be accepted.
    """

    anchors: tuple[str, ...] = ()
    #: Legacy serial-only revocations: match a certificate of any issuer (over-broad, never too narrow).
    revoked_serials: frozenset[int] = frozenset()
    #: ``(issuer DN in RFC 4514, serial)`` of revoked certificates (leaves or intermediates).
    revoked_certs: frozenset[tuple[str, int]] = frozenset()
    #: CRLs (PEM) published by the operator CA or its intermediates; each must be signed by its issuer.
    crls: tuple[str, ...] = ()
    #: Extended key usage a reseller's leaf certificate must carry (default: id-kp-clientAuth).
    required_eku: str = CLIENT_AUTH_EKU


@runtime_checkable
class AttestationRegistry(Protocol):
    """Resellers, keys, CA trust and stored attestations.

    ``revocation_generation()`` returns an opaque value that changes whenever key material or
    trust changes (reseller or key added, key revoked, anchor added, serial revoked); verifier
    caches are dropped when it changes.
    """

    def get_reseller(self, reseller_id: str) -> Reseller | None: ...

    def list_resellers(self) -> list[Reseller]: ...

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
        """Create the reseller or update the fields given (None keeps the stored value); return it."""
        ...

    def add_key(self, reseller_id: str, key: ResellerKey) -> None:
        """Add a key; raise RegistryError for an unknown reseller or an existing kid."""
        ...

    def revoke_key(self, reseller_id: str, kid: str, at: float) -> None:
        """Mark a key revoked; raise RegistryError when it does not exist."""
        ...

    def revocation_generation(self) -> str: ...

    def trust(self) -> TrustConfig: ...

    def add_trust_anchor(self, pem: str) -> None: ...

    def revoke_serial(self, serial: int) -> None: ...

    def revoke_certificate(self, issuer: str, serial: int) -> None:
        """Stop accepting the certificate ``serial`` issued by ``issuer`` (RFC 4514 DN)."""
        ...

    def add_crl(self, pem: str) -> None:
        """Store a CRL (PEM) for ``x5c`` chains; the verifier checks its signature and freshness."""
        ...

    def put_attestation(self, att: StoredAttestation) -> bool:
        """Store an attestation; return False when the same token was already stored.

        Raise RegistryError when the jti is already used by a different token for the account.
        """
        ...

    def attestations_for(self, account_id: str) -> list[StoredAttestation]: ...

    def list_attestations(self, account_id: str | None = None) -> list[StoredAttestation]: ...


def merge_crl(crls: list[str], pem: str) -> list[str]:
    """Add CRL ``pem`` to ``crls``, replacing an older CRL of the same issuer.

    Raises
    ------
    RegistryError
        When ``pem`` is not a PEM CRL.
    """
    from cryptography import x509

    try:
        new = x509.load_pem_x509_crl(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise RegistryError(f"not a PEM certificate revocation list: {exc}") from exc
    kept = []
    for old_pem in crls:
        old = x509.load_pem_x509_crl(old_pem.encode("ascii"))
        if old.issuer == new.issuer and old.last_update_utc > new.last_update_utc:
            return crls  # a newer one is stored already
        if old.issuer != new.issuer:
            kept.append(old_pem)
    return [*kept, pem]
