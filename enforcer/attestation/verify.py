"""Attestation verification: token -> status (one of ``model.ATTESTATION_STATUSES``).

Verification is split in two stages so that the expensive, time-independent part can be cached
(:mod:`enforcer.attestation.provider`):

1. :func:`check_token` - size, shape, issuer/kid lookup, algorithm pin, signature, key status,
   claim structure, audience, account binding, maximum validity. Returns :class:`Verified` or a
   failed :class:`~enforcer.model.AttestationResult`.
2. :func:`check_time` - key ``not_after``, ``nbf``/``iat``/``exp`` with clock skew.

:func:`verify_token` runs both. Nothing here raises for a bad token.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from enforcer.attestation.claims import ClaimsError, incomplete_origin, validate_claims
from enforcer.attestation.constants import (
    DEFAULT_AUDIENCE,
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_VALIDITY_DAYS,
    ID_RE,
    MAX_TOKEN_BYTES,
)
from enforcer.attestation.keys import AttestationKeyError, VerifyingKey, verifying_key
from enforcer.attestation.registry import AttestationRegistry, RegistryError
from enforcer.attestation.token import TokenFormatError, parse_unverified, verify_signature
from enforcer.attestation.x5c import verify_chain
from enforcer.model import AccountOrigin, AttestationResult

#: Backend failures that make a verification fail closed (status ``invalid``) instead of raising.
REGISTRY_FAILURES = (RegistryError, BotoCoreError, ClientError, OSError)


@dataclass(frozen=True, slots=True)
class Verified:
    """A token whose signature, issuer, key status, audience and account binding are good."""

    claims: dict[str, Any]
    jti: str
    kid: str
    issuer: str
    iat: int
    nbf: int
    exp: int
    key_not_after: float | None = None


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _short(value: object) -> str:
    return repr(value)[:70]


def _bad(status: str, detail: str, **kw: Any) -> AttestationResult:
    return AttestationResult(status=status, detail=detail, **kw)


@functools.lru_cache(maxsize=256)
def _cached_key(pem: str, algorithm: str) -> VerifyingKey:
    return verifying_key(pem, algorithm)


def check_token(
    token: object,
    origin: AccountOrigin,
    registry: AttestationRegistry,
    now: float,
    audience: str = DEFAULT_AUDIENCE,
    *,
    max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS,
    clock_skew: int = DEFAULT_CLOCK_SKEW,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> Verified | AttestationResult:
    """Run the time-independent checks on ``token`` for the account ``origin``.

    ``now`` is only used to validate an ``x5c`` certificate chain.

    Returns
    -------
    Verified or AttestationResult
        :class:`Verified` when every check passed, else a result with status ``invalid``,
        ``unknown_issuer``, ``key_revoked`` or ``account_mismatch`` and a detail.
    """
    try:
        parsed = parse_unverified(token, max_bytes)
    except TokenFormatError as exc:
        return _bad("invalid", f"malformed token: {exc}")
    iss = parsed.payload.get("iss")
    if not isinstance(iss, str) or not ID_RE.match(iss):
        return _bad("invalid", "token has no valid iss claim")
    kid = parsed.kid
    if origin.reseller is None or origin.reseller != iss:
        return _bad(
            "unknown_issuer",
            f"issuer {_short(iss)} is not the reseller of account {origin.account_id} "
            f"(reseller: {origin.reseller or 'none, direct account'})",
        )
    reseller = registry.get_reseller(iss)
    if reseller is None:
        return _bad("unknown_issuer", f"reseller {_short(iss)} is not registered")

    key_not_after: float | None = None
    x5c = parsed.header.get("x5c")
    if x5c is not None:
        chain = verify_chain(list(x5c), registry.trust(), iss, now)
        if chain.key is None:
            return _bad(chain.status, chain.detail)
        vkey = chain.key
        key_not_after = chain.not_after
        key_status = "active"
    else:
        rkey = reseller.keys.get(kid)
        if rkey is None:
            return _bad("unknown_issuer", f"kid {_short(kid)} is not registered for reseller {_short(iss)}")
        try:
            vkey = _cached_key(rkey.public_key_pem, rkey.algorithm)
        except AttestationKeyError as exc:
            return _bad("invalid", f"registered key {_short(kid)} is unusable: {exc}")
        key_not_after = rkey.not_after
        key_status = rkey.status

    if parsed.alg != vkey.algorithm:
        return _bad(
            "invalid", f"header alg {parsed.alg} does not match the registered key ({vkey.algorithm})"
        )
    if not verify_signature(parsed.raw, vkey):
        return _bad("invalid", "signature does not verify with the registered key")
    if key_status != "active":
        return _bad(
            "key_revoked", f"key {_short(kid)} of reseller {_short(iss)} is revoked", kid=kid, issuer=iss
        )
    try:
        claims = validate_claims(parsed.payload)
    except ClaimsError as exc:
        return _bad("invalid", f"bad claims: {exc}", kid=kid, issuer=iss)
    ids = {"jti": claims["jti"], "kid": kid, "issuer": iss}
    if claims["aud"] != audience:
        return _bad("invalid", f"audience {_short(claims['aud'])} is not {audience!r}", **ids)
    if claims["sub"] != origin.account_id:
        return _bad(
            "account_mismatch",
            f"attestation covers account {claims['sub']}, not {origin.account_id}",
            claims=claims,
            **ids,
        )
    if claims["exp"] - claims["nbf"] > max_validity_days * 86400 + clock_skew:
        return _bad("invalid", f"validity is longer than the {max_validity_days}-day maximum", **ids)
    missing = incomplete_origin(claims["end_customer"])
    if missing:
        return _bad(
            "incomplete",
            f"end_customer {', '.join(missing)} missing or not an ISO 3166-1 country",
            claims=claims,
            **ids,
        )
    return Verified(
        claims=claims,
        jti=claims["jti"],
        kid=kid,
        issuer=iss,
        iat=claims["iat"],
        nbf=claims["nbf"],
        exp=claims["exp"],
        key_not_after=key_not_after,
    )


def check_time(v: Verified, now: float, clock_skew: int = DEFAULT_CLOCK_SKEW) -> AttestationResult:
    """Apply key expiry and the token's time window (with ``clock_skew`` seconds) at ``now``."""
    ids: dict[str, Any] = {"claims": v.claims, "jti": v.jti, "kid": v.kid, "issuer": v.issuer}
    if v.key_not_after is not None and now > v.key_not_after:
        return AttestationResult(
            "key_revoked", detail=f"key {v.kid} expired at {_iso(v.key_not_after)}", **ids
        )
    if now + clock_skew < v.nbf:
        return AttestationResult("not_yet_valid", detail=f"token not valid before {_iso(v.nbf)}", **ids)
    if now + clock_skew < v.iat:
        return AttestationResult("not_yet_valid", detail=f"token issued in the future ({_iso(v.iat)})", **ids)
    if now - clock_skew >= v.exp:
        return AttestationResult("expired", detail=f"token expired at {_iso(v.exp)}", **ids)
    return AttestationResult("valid", detail="", **ids)


def verify_token(
    token: object,
    origin: AccountOrigin,
    registry: AttestationRegistry,
    now: float,
    audience: str = DEFAULT_AUDIENCE,
    *,
    clock_skew: int = DEFAULT_CLOCK_SKEW,
    max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> AttestationResult:
    """Verify one attestation token for the account ``origin`` at time ``now``.

    Parameters
    ----------
    token
        The compact JWS (str); anything else is ``invalid``.
    origin
        The account the token is presented for (``account_id`` and ``reseller`` are used).
    registry
        Where the reseller's keys (and CA trust) are looked up.
    now
        Epoch seconds.
    audience
        The expected ``aud``.
    clock_skew
        Seconds of tolerance on ``nbf``/``exp``.
    max_validity_days
        Longest accepted ``exp - nbf``.
    max_bytes
        Size bound; larger tokens are ``invalid`` before any parsing.

    Returns
    -------
    AttestationResult
        ``valid`` with verified claims, or a failure status with a detail. Never raises for a bad
        token; a registry that cannot be read gives ``invalid`` (fail closed).
    """
    try:
        checked = check_token(
            token,
            origin,
            registry,
            now,
            audience,
            max_validity_days=max_validity_days,
            clock_skew=clock_skew,
            max_bytes=max_bytes,
        )
    except REGISTRY_FAILURES as exc:
        return _bad("invalid", f"attestation registry unavailable: {type(exc).__name__}: {str(exc)[:160]}")
    if isinstance(checked, AttestationResult):
        return checked
    return check_time(checked, now, clock_skew)
