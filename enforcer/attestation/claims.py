"""Attestation claims: building them for signing and validating them after verification.

The claim set is closed: unknown top-level claims or ``end_customer`` members make a token
invalid, so that no personal data can ride along in clear. Names appear as a salted hash
(``end_customer.name_hash``, see :func:`name_hash`) or, for restricted-party screening (issue 14),
as ``end_customer.name`` and ``end_customer.aliases``: the pipeline screens them, then removes them
from the policy input, so the audit log never holds them in clear (``enforcer.evidence.collect``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from enforcer.attestation.constants import (
    ACCOUNT_RE,
    COUNTRY_RE,
    ID_RE,
    KYC_LEVELS,
    MAX_END_USE_CHARS,
)
from enforcer.model import InputError
from enforcer.policy.datafiles import is_iso_country

REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "end_customer")
ALLOWED_CLAIMS = frozenset((*REQUIRED_CLAIMS, "end_use", "supersedes"))
#: The end customer's origin: each must be a real ISO 3166-1 alpha-2 code, else ``incomplete``.
ORIGIN_KEYS = ("country", "hq_country", "parent_hq_country")
END_CUSTOMER_KEYS = frozenset(
    {"country", "hq_country", "parent_hq_country", "kyc_level", "name_hash", "name", "aliases"}
)
#: Screening names: at most this many aliases, each name at most this many characters.
MAX_ALIASES = 10
MAX_NAME_CHARS = 256
NAME_HASH_PREFIX = "hmac-sha256:"
#: Timestamps outside [0, 2**33) are refused (no year-2300 tricks, no negative times).
MAX_TIMESTAMP = 2**33


class ClaimsError(InputError):
    """The claims are malformed (missing, wrong type, unknown member)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="ATTESTATION_INVALID")


@dataclass(frozen=True, slots=True)
class EndCustomer:
    """What the reseller attests about its end customer."""

    country: str
    hq_country: str | None = None
    parent_hq_country: str | None = None
    kyc_level: str | None = None
    name_hash: str | None = None

    def to_claim(self) -> dict[str, str]:
        d = {"country": self.country}
        for k in ("hq_country", "parent_hq_country", "kyc_level", "name_hash"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


def name_hash(name: str, salt: bytes) -> str:
    """Hash an end-customer name with a secret salt (HMAC-SHA256), for ``end_customer.name_hash``.

    The name is NFKC-normalised, case-folded and whitespace-collapsed first, so that whoever
    holds the salt can check a candidate name without the token disclosing it.

    Parameters
    ----------
    name
        The clear name (never stored).
    salt
        The reseller's secret salt, at least 16 bytes.

    Returns
    -------
    str
        ``hmac-sha256:<base64url digest>``.
    """
    if len(salt) < 16:
        raise InputError("name hash salt must be at least 16 bytes")
    norm = " ".join(unicodedata.normalize("NFKC", name).casefold().split())
    digest = hmac.new(salt, norm.encode("utf-8"), hashlib.sha256).digest()
    return NAME_HASH_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _country(value: Any, field: str) -> str:
    if not isinstance(value, str) or not COUNTRY_RE.match(value):
        raise ClaimsError(f"{field} must be an ISO 3166-1 alpha-2 code in upper case")
    return value


def _timestamp(claims: dict[str, Any], name: str) -> int:
    v = claims.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        raise ClaimsError(f"claim {name!r} must be a number (epoch seconds)")
    if not 0 <= v < MAX_TIMESTAMP:
        raise ClaimsError(f"claim {name!r} out of range")
    return int(v)


def _ident(claims: dict[str, Any], name: str) -> str:
    v = claims.get(name)
    if not isinstance(v, str) or not ID_RE.match(v):
        raise ClaimsError(f"claim {name!r} must be an identifier ([A-Za-z0-9._:-], at most 128 chars)")
    return v


def _screening_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise ClaimsError(f"{field} must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    return value


def validate_end_customer(value: Any) -> dict[str, Any]:
    """Validate the ``end_customer`` claim and return it normalised.

    Raises
    ------
    ClaimsError
        On a missing country, a malformed code, an unknown member or an unknown KYC level.
    """
    if not isinstance(value, dict):
        raise ClaimsError("claim 'end_customer' must be an object")
    unknown = set(value) - END_CUSTOMER_KEYS
    if unknown:
        raise ClaimsError(
            f"end_customer has unexpected members {sorted(unknown)[:5]} (no clear personal data)"
        )
    out: dict[str, Any] = {}
    for k in ORIGIN_KEYS:  # presence and reality are checked by incomplete_origin (status `incomplete`)
        if value.get(k) is not None:
            out[k] = _country(value[k], f"end_customer.{k}")
    kyc = value.get("kyc_level")
    if kyc is not None:
        if kyc not in KYC_LEVELS:
            raise ClaimsError(f"end_customer.kyc_level must be one of {', '.join(KYC_LEVELS)}")
        out["kyc_level"] = kyc
    nh = value.get("name_hash")
    if nh is not None:
        if (
            not isinstance(nh, str)
            or not nh.startswith(NAME_HASH_PREFIX)
            or len(nh) != len(NAME_HASH_PREFIX) + 43
        ):
            raise ClaimsError("end_customer.name_hash must be an hmac-sha256 hash (see name_hash())")
        out["name_hash"] = nh
    if value.get("name") is not None:
        out["name"] = _screening_name(value["name"], "end_customer.name")
    aliases = value.get("aliases")
    if aliases is not None:
        if not isinstance(aliases, list) or len(aliases) > MAX_ALIASES:
            raise ClaimsError(f"end_customer.aliases must be a list of at most {MAX_ALIASES} names")
        out["aliases"] = [_screening_name(a, "end_customer.aliases[]") for a in aliases]
    return out


def incomplete_origin(end_customer: dict[str, Any]) -> list[str]:
    """The origin fields of a (validated) ``end_customer`` that are missing or not real ISO codes.

    ``XX`` or ``ZZ`` are shaped like codes but assigned to no country: they count as missing.
    """
    return [k for k in ORIGIN_KEYS if not is_iso_country(end_customer.get(k))]


def validate_claims(claims: Any) -> dict[str, Any]:
    """Check the structure of a (signature-verified) claim set and return a normalised copy.

    Audience, account binding and time checks are done by the verifier, not here.

    Raises
    ------
    ClaimsError
        When a required claim is missing or malformed, or an unknown claim is present.
    """
    if not isinstance(claims, dict):
        raise ClaimsError("payload is not a JSON object")
    missing = [c for c in REQUIRED_CLAIMS if c not in claims]
    if missing:
        raise ClaimsError(f"missing claims: {', '.join(missing)}")
    unknown = set(claims) - ALLOWED_CLAIMS
    if unknown:
        raise ClaimsError(f"unexpected claims {sorted(unknown)[:5]}")
    sub = claims["sub"]
    if not isinstance(sub, str) or not ACCOUNT_RE.match(sub):
        raise ClaimsError("claim 'sub' must be a 12-digit AWS account id")
    aud = claims["aud"]
    if not isinstance(aud, str) or not 0 < len(aud) <= 256:
        raise ClaimsError("claim 'aud' must be a string")
    out: dict[str, Any] = {
        "iss": _ident(claims, "iss"),
        "sub": sub,
        "aud": aud,
        "iat": _timestamp(claims, "iat"),
        "nbf": _timestamp(claims, "nbf"),
        "exp": _timestamp(claims, "exp"),
        "jti": _ident(claims, "jti"),
        "end_customer": validate_end_customer(claims["end_customer"]),
    }
    if out["exp"] <= out["nbf"]:
        raise ClaimsError("claim 'exp' is not after 'nbf'")
    end_use = claims.get("end_use")
    if end_use is not None:
        if not isinstance(end_use, str) or len(end_use) > MAX_END_USE_CHARS:
            raise ClaimsError(f"claim 'end_use' must be a string of at most {MAX_END_USE_CHARS} characters")
        out["end_use"] = end_use
    if claims.get("supersedes") is not None:
        out["supersedes"] = _ident(claims, "supersedes")
        if out["supersedes"] == out["jti"]:
            raise ClaimsError("claim 'supersedes' names the token itself")
    return out


def build_claims(
    *,
    issuer: str,
    account: str,
    end_customer: EndCustomer,
    now: float,
    valid_days: int,
    max_valid_days: int,
    audience: str,
    end_use: str | None = None,
    jti: str | None = None,
    supersedes: str | None = None,
) -> dict[str, Any]:
    """Build (and validate) the claim set a reseller signs.

    Parameters
    ----------
    issuer
        Reseller id (``iss``).
    account
        12-digit AWS account id the attestation covers (``sub``).
    end_customer
        Attested end-customer facts.
    now
        Epoch seconds for ``iat`` and ``nbf``.
    valid_days
        Validity in days (``exp = now + valid_days``), 1..``max_valid_days``.
    max_valid_days
        The configured cap.
    audience
        ``aud`` claim.
    end_use
        Optional free-text end use (no personal data).
    jti
        Token id; a random UUID when omitted.
    supersedes
        The ``jti`` of an older attestation for the same account that this one replaces.

    Raises
    ------
    ClaimsError
        When any value is malformed or the validity exceeds the cap.
    """
    if not 1 <= valid_days <= max_valid_days:
        raise ClaimsError(f"validity must be between 1 and {max_valid_days} days, got {valid_days}")
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": account,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat + valid_days * 86400,
        "jti": jti or str(uuid.uuid4()),
        "end_customer": end_customer.to_claim(),
    }
    if end_use is not None:
        claims["end_use"] = end_use
    if supersedes is not None:
        claims["supersedes"] = supersedes
    return validate_claims(claims)
