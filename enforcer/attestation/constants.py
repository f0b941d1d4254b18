"""Pinned parameters of the attestation format (docs/design.md, "Attestation")."""

from __future__ import annotations

from typing import Final

from enforcer.ids import ACCOUNT_RE as ACCOUNT_RE  # re-exported for the attestation modules
from enforcer.ids import COUNTRY_RE as COUNTRY_RE
from enforcer.ids import ID_RE as ID_RE  # reseller, key and token ids (licences share it, from enforcer.ids)
from enforcer.jws import ALGORITHMS as JWS_ALGORITHMS

#: The only JWS algorithms an attestation may use; the registered key decides which one.
ALGORITHMS: Final = JWS_ALGORITHMS

#: ``typ`` header of every attestation (explicit typing, RFC 8725 section 3.11).
TOKEN_TYPE: Final = "gpu-attestation+jwt"  # noqa: S105 - a media type, not a secret

#: Default ``aud`` claim the verifier expects.
DEFAULT_AUDIENCE: Final = "gpu-launch-enforcer"

#: Allowed clock skew in seconds for ``nbf``/``exp``/``iat``.
DEFAULT_CLOCK_SKEW: Final = 60

#: Longest validity (``exp - nbf``) a reseller may sign, in days.
DEFAULT_MAX_VALIDITY_DAYS: Final = 90

#: Tokens larger than this (in bytes) are rejected before any parsing.
MAX_TOKEN_BYTES: Final = 8 * 1024

#: Header members an attestation may carry; anything else (``b64``, ``crit``, ``jwk``, ``jku``...) is invalid.
ALLOWED_HEADER_KEYS: Final = frozenset({"alg", "kid", "typ", "x5c"})


#: Accepted ``end_customer.kyc_level`` values.
KYC_LEVELS: Final = ("none", "pending", "basic", "verified", "enhanced")

#: Longest ``end_use`` text accepted.
MAX_END_USE_CHARS: Final = 512
