"""Reseller attestations: format, signing (for resellers), registry and verification.

An attestation is a compact JWS (ES256 or EdDSA, pinned by the reseller's registered key) whose
claims say which AWS account (``sub``) a reseller (``iss``) vouches for and what it knows about
the end customer. See docs/design.md, "Attestation".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from enforcer.attestation import config
from enforcer.attestation.claims import ClaimsError, EndCustomer, build_claims, name_hash, validate_claims
from enforcer.attestation.constants import (
    ALGORITHMS,
    DEFAULT_AUDIENCE,
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_VALIDITY_DAYS,
    MAX_TOKEN_BYTES,
    TOKEN_TYPE,
)
from enforcer.attestation.keys import (
    AttestationKeyError,
    SigningKey,
    generate_private_key_pem,
    load_public_key_pem,
    load_signing_key,
)
from enforcer.attestation.local_registry import LocalRegistry
from enforcer.attestation.provider import RegistryAttestationProvider
from enforcer.attestation.reasons import reason_code, status_reason_codes
from enforcer.attestation.registry import (
    AttestationRegistry,
    RegistryError,
    Reseller,
    ResellerKey,
    StoredAttestation,
    TrustConfig,
)
from enforcer.attestation.token import TokenFormatError, parse_unverified, sign_token
from enforcer.attestation.verify import check_time, check_token, verify_token

if TYPE_CHECKING:
    from enforcer.attestation.dynamodb_registry import DynamoDBRegistry, create_tables

_LAZY = {"DynamoDBRegistry", "create_tables"}


def __getattr__(name: str) -> Any:
    """Import the DynamoDB backend (and boto3) only when it is asked for."""
    if name in _LAZY:
        from enforcer.attestation import dynamodb_registry

        return getattr(dynamodb_registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_provider(registry_dir: Path | str, audience: str | None = None) -> RegistryAttestationProvider:
    """The attestation provider over the local file registry in ``registry_dir`` (``STATE/registry``).

    Parameters
    ----------
    registry_dir
        The registry directory.
    audience
        Expected ``aud``; default from ``ENFORCER_ATTEST_AUDIENCE`` or ``gpu-launch-enforcer``.
    """
    return RegistryAttestationProvider(
        LocalRegistry(registry_dir),
        audience=audience or config.audience(),
        max_validity_days=config.max_validity_days(),
    )


__all__ = [
    "ALGORITHMS",
    "DEFAULT_AUDIENCE",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_MAX_VALIDITY_DAYS",
    "MAX_TOKEN_BYTES",
    "TOKEN_TYPE",
    "AttestationKeyError",
    "AttestationRegistry",
    "ClaimsError",
    "DynamoDBRegistry",
    "EndCustomer",
    "LocalRegistry",
    "RegistryAttestationProvider",
    "RegistryError",
    "Reseller",
    "ResellerKey",
    "SigningKey",
    "StoredAttestation",
    "TokenFormatError",
    "TrustConfig",
    "build_claims",
    "check_time",
    "check_token",
    "create_tables",
    "generate_private_key_pem",
    "load_public_key_pem",
    "load_signing_key",
    "local_provider",
    "name_hash",
    "parse_unverified",
    "reason_code",
    "sign_token",
    "status_reason_codes",
    "validate_claims",
    "verify_token",
]
