"""Verify-then-store: the one path by which an attestation enters the registry (CLI and intake API)."""

from __future__ import annotations

from enforcer.attestation.constants import DEFAULT_AUDIENCE, DEFAULT_MAX_VALIDITY_DAYS
from enforcer.attestation.reasons import FALLBACK_CODE, reason_code
from enforcer.attestation.registry import AttestationRegistry, StoredAttestation
from enforcer.attestation.token import TokenFormatError, parse_unverified
from enforcer.attestation.verify import verify_token
from enforcer.ids import ACCOUNT_RE
from enforcer.model import InputError
from enforcer.ports import AccountDirectory


def submit_token(
    token: str,
    directory: AccountDirectory,
    registry: AttestationRegistry,
    now: float,
    *,
    account: str | None = None,
    audience: str = DEFAULT_AUDIENCE,
    max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS,
) -> tuple[StoredAttestation, bool]:
    """Verify ``token`` for the account it covers and store it.

    Parameters
    ----------
    token
        The compact JWS.
    directory, registry
        Account directory (gives the account's reseller) and attestation registry.
    now
        Epoch seconds.
    account
        Check the token against this account instead of its ``sub`` claim.

    Returns
    -------
    tuple
        The stored attestation and whether it was new (False: already stored).

    Raises
    ------
    InputError
        With the reason code (``ATTESTATION_EXPIRED`` ...) when the token is refused; nothing is stored.
    """
    try:
        sub = parse_unverified(token).payload.get("sub")
    except TokenFormatError as exc:
        raise InputError(f"malformed token: {exc}", "ATTESTATION_INVALID") from None
    target = account if account is not None else sub
    if not isinstance(target, str) or not ACCOUNT_RE.match(target):
        raise InputError("no valid 12-digit account id (sub claim or --account)", "ATTESTATION_INVALID")
    origin = directory.get(target)
    if origin is None:
        raise InputError(f"account {target} is not in the account directory", "ACCOUNT_UNKNOWN")
    result = verify_token(token, origin, registry, now, audience, max_validity_days=max_validity_days)
    if result.status != "valid" or not (result.jti and result.kid and result.issuer):
        raise InputError(result.detail or result.status, reason_code(result.status) or FALLBACK_CODE)
    c = result.claims
    att = StoredAttestation(
        account_id=origin.account_id,
        jti=result.jti,
        token=token,
        issuer=result.issuer,
        kid=result.kid,
        iat=int(c["iat"]),
        nbf=int(c["nbf"]),
        exp=int(c["exp"]),
        submitted_at=now,
    )
    return att, registry.put_attestation(att)
