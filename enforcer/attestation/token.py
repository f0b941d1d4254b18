"""Compact JWS handling for attestations, on top of joserfc.

* :func:`sign_token` signs a claim set with a reseller key (alg from the key type).
* :func:`parse_unverified` checks size and shape and decodes header and payload **without**
  trusting them (used to find ``kid``/``iss`` and by ``attest inspect``).
* :func:`verify_signature` checks the signature with a registered key under a registry pinned
  to that key's algorithm: the header's ``alg`` is never used to choose the algorithm.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.util import urlsafe_b64decode

from enforcer.attestation.constants import ALGORITHMS, ALLOWED_HEADER_KEYS, ID_RE, MAX_TOKEN_BYTES, TOKEN_TYPE
from enforcer.attestation.keys import SigningKey, VerifyingKey
from enforcer.jws import pinned_registry
from enforcer.model import InputError
from enforcer.strict_json import loads_strict

_SEGMENTS_RE = re.compile(rb"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
#: An x5c chain: at most this many certificates.
MAX_X5C_CERTS = 4


class TokenFormatError(InputError):
    """The token is not a well-formed attestation (size, segments, base64url, JSON, header)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="ATTESTATION_INVALID")


_REGISTRIES = {alg: pinned_registry(alg, MAX_TOKEN_BYTES, MAX_TOKEN_BYTES) for alg in ALGORITHMS}


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split and decoded, NOT verified."""

    raw: bytes
    header: dict[str, Any]
    payload: Any

    @property
    def kid(self) -> str:
        kid = self.header["kid"]
        assert isinstance(kid, str)
        return kid

    @property
    def alg(self) -> str:
        alg = self.header["alg"]
        assert isinstance(alg, str)
        return alg


def to_token_bytes(token: object, max_bytes: int = MAX_TOKEN_BYTES) -> bytes:
    """Return the token as ASCII bytes after the size bound, or raise TokenFormatError."""
    if isinstance(token, str):
        if len(token) > max_bytes:
            raise TokenFormatError(f"token larger than {max_bytes} bytes")
        try:
            data = token.encode("ascii")
        except UnicodeEncodeError as exc:
            raise TokenFormatError("token has non-ASCII characters") from exc
    elif isinstance(token, bytes | bytearray):
        data = bytes(token)
    else:
        raise TokenFormatError(f"token must be a string, not {type(token).__name__}")
    if len(data) > max_bytes:
        raise TokenFormatError(f"token larger than {max_bytes} bytes")
    return data


def parse_unverified(token: object, max_bytes: int = MAX_TOKEN_BYTES) -> ParsedToken:
    """Split and decode a compact JWS without verifying it.

    Checks: size bound, exactly three non-empty base64url segments (canonical, unpadded), header
    a JSON object with only ``alg``/``kid``/``typ``/``x5c``, ``typ`` equal to the attestation type,
    ``kid`` an identifier, ``alg`` one of the pinned algorithms, payload a JSON object.

    Raises
    ------
    TokenFormatError
        With a short reason, on any failure.
    """
    data = to_token_bytes(token, max_bytes)
    if not _SEGMENTS_RE.match(data):
        raise TokenFormatError("not a compact JWS (three base64url segments)")
    h_seg, p_seg, s_seg = data.split(b".")
    try:
        header = loads_strict(urlsafe_b64decode(h_seg))
    except (ValueError, TypeError) as exc:
        raise TokenFormatError("header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise TokenFormatError("header is not a JSON object")
    extra = set(header) - ALLOWED_HEADER_KEYS
    if extra:
        raise TokenFormatError(f"header has unsupported members {sorted(extra)[:5]}")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenFormatError("header has no alg")
    if alg not in ALGORITHMS:
        raise TokenFormatError(f"algorithm {alg[:16]!r} is not allowed (ES256 or EdDSA only)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not ID_RE.match(kid):
        raise TokenFormatError("header has no valid kid")
    if header.get("typ") != TOKEN_TYPE:
        raise TokenFormatError(f"header typ must be {TOKEN_TYPE!r}")
    x5c = header.get("x5c")
    if x5c is not None and (
        not isinstance(x5c, list)
        or not 1 <= len(x5c) <= MAX_X5C_CERTS
        or not all(isinstance(c, str) for c in x5c)
    ):
        raise TokenFormatError(f"header x5c must be a list of 1..{MAX_X5C_CERTS} base64 certificates")
    try:
        payload = loads_strict(urlsafe_b64decode(p_seg))
        urlsafe_b64decode(s_seg)
    except (ValueError, TypeError) as exc:
        raise TokenFormatError("payload or signature is not base64url (JSON)") from exc
    if not isinstance(payload, dict):
        raise TokenFormatError("payload is not a JSON object")
    return ParsedToken(data, header, payload)


def verify_signature(token: bytes, key: VerifyingKey) -> bool:
    """Verify the JWS signature of ``token`` with ``key`` under ``key.algorithm`` only.

    Returns False (never raises) on a bad signature, a header ``alg`` other than the key's,
    or any decoding problem.
    """
    registry = _REGISTRIES.get(key.algorithm)
    if registry is None:
        return False
    try:
        obj = jws.extract_compact(token, registry=registry)
        if obj.headers().get("alg") != key.algorithm:
            return False
        return bool(jws.validate_compact(obj, key.key, registry=registry))
    except (JoseError, ValueError, TypeError):
        return False


def sign_token(key: SigningKey, kid: str, claims: dict[str, Any], x5c: list[str] | None = None) -> str:
    """Sign ``claims`` as a compact JWS with the key's pinned algorithm.

    Parameters
    ----------
    key
        From :func:`enforcer.attestation.keys.load_signing_key`.
    kid
        Key id registered for the reseller.
    claims
        A claim set from :func:`enforcer.attestation.claims.build_claims`.
    x5c
        Optional certificate chain (base64 DER, leaf first) for CA-certified keys.

    Returns
    -------
    str
        The compact JWS.
    """
    if not ID_RE.match(kid):
        raise InputError(f"kid must be an identifier ([A-Za-z0-9._:-], at most 128 chars): {kid[:64]!r}")
    header: dict[str, Any] = {"alg": key.algorithm, "kid": kid, "typ": TOKEN_TYPE}
    if x5c:
        header["x5c"] = list(x5c)
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    token = jws.serialize_compact(header, payload, key.key, registry=_REGISTRIES[key.algorithm])
    if len(token) > MAX_TOKEN_BYTES:
        raise InputError(f"signed token would exceed {MAX_TOKEN_BYTES} bytes")
    return token
