"""Optional trust chain: reseller keys certified by the operator's CA through the ``x5c`` header.

The leaf certificate must chain to one of the operator's anchors (``cryptography.x509.verification``),
carry the SAN URI ``urn:gpu-launch-enforcer:reseller:<iss>``, hold an EC P-256 or Ed25519 key
(which pins the algorithm), assert the ``digitalSignature`` key usage and the configured extended
key usage (``TrustConfig.required_eku``, default id-kp-clientAuth), and have no certificate in its
chain revoked: by issuer + serial in the registry, or on a CRL from the registry that is signed by
that certificate's issuer and still current (a stale CRL fails closed).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from enforcer.attestation.keys import AttestationKeyError, VerifyingKey, verifying_key_from
from enforcer.attestation.registry import TrustConfig

RESELLER_URI_PREFIX = "urn:gpu-launch-enforcer:reseller:"
MAX_CHAIN_DEPTH = 3


def reseller_uri(reseller_id: str) -> str:
    """The SAN URI a CA puts in a reseller's leaf certificate."""
    return RESELLER_URI_PREFIX + reseller_id


@dataclass(frozen=True, slots=True)
class ChainResult:
    """Outcome of checking an ``x5c`` chain: a key on success, else a status and detail."""

    key: VerifyingKey | None
    status: str
    detail: str
    not_after: float | None = None
    serial: int | None = None


def _fail(status: str, detail: str) -> ChainResult:
    return ChainResult(None, status, detail)


def _decode(chain: list[str]) -> list[x509.Certificate]:
    certs = []
    for c in chain:
        der = base64.b64decode(c.encode("ascii"), validate=True)
        certs.append(x509.load_der_x509_certificate(der))
    return certs


def _load_anchors(anchors: tuple[str, ...]) -> list[x509.Certificate]:
    out = []
    for pem in anchors:
        out.extend(x509.load_pem_x509_certificates(pem.encode("ascii")))
    return out


def verify_chain(chain: list[str], trust: TrustConfig, issuer: str, now: float) -> ChainResult:
    """Check an ``x5c`` chain (base64 DER, leaf first) for reseller ``issuer`` at time ``now``.

    Returns
    -------
    ChainResult
        ``status`` is ``valid`` with the leaf's verifying key, or ``invalid`` (undecodable, wrong
        key type), ``unknown_issuer`` (no anchors, does not chain, wrong reseller), ``key_revoked``
        (revoked serial, certificate expired). Never raises.
    """
    if not trust.anchors:
        return _fail("unknown_issuer", "x5c given but no operator CA is configured")
    try:
        certs = _decode(chain)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        return _fail("invalid", f"x5c is not base64 DER certificates ({type(exc).__name__})")
    leaf, intermediates = certs[0], certs[1:]
    revoked = [c.serial_number for c in certs if c.serial_number in trust.revoked_serials]
    if revoked:
        return _fail("key_revoked", f"certificate serial {revoked[0]:x} is revoked")
    moment = datetime.fromtimestamp(now, UTC)
    not_after = min(c.not_valid_after_utc for c in certs)
    if moment > not_after:
        return _fail("key_revoked", f"certificate expired at {not_after.isoformat()}")
    try:
        anchors = _load_anchors(trust.anchors)
        verifier = (
            PolicyBuilder()
            .store(Store(anchors))
            .time(moment)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .build_client_verifier()
        )
        verified = verifier.verify(leaf, intermediates)
    except (VerificationError, ValueError) as exc:
        return _fail("unknown_issuer", f"certificate does not chain to the operator CA: {str(exc)[:120]}")
    uris = [n.value for n in (verified.subjects or []) if isinstance(n, x509.UniformResourceIdentifier)]
    if reseller_uri(issuer) not in uris:
        return _fail("unknown_issuer", "certificate is not issued to this reseller")
    try:
        key = verifying_key_from(leaf.public_key())
    except AttestationKeyError as exc:
        return _fail("invalid", str(exc))
    usage = _usage_problem(leaf, trust.required_eku)
    if usage:
        return _fail("invalid", usage)
    chain_revoked = [c.serial_number for c in verified.chain if c.serial_number in trust.revoked_serials]
    if chain_revoked:
        return _fail("key_revoked", f"certificate serial {chain_revoked[0]:x} is revoked")
    revocation = _revoked_in_chain(list(verified.chain), trust, moment)
    if revocation:
        return _fail("key_revoked", revocation)
    return ChainResult(key, "valid", "", not_after.timestamp(), leaf.serial_number)


def _usage_problem(leaf: x509.Certificate, required_eku: str) -> str:
    """Why the leaf may not sign attestations ('' when it may)."""
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "certificate has no key usage extension (digitalSignature required)"
    if not ku.digital_signature:
        return "certificate key usage does not include digitalSignature"
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return f"certificate has no extended key usage ({required_eku} required)"
    if x509.ObjectIdentifier(required_eku) not in list(eku):
        return f"certificate extended key usage lacks {required_eku}"
    return ""


def _revoked_in_chain(chain: list[x509.Certificate], trust: TrustConfig, moment: datetime) -> str:
    """The first revocation of a certificate in ``chain`` (leaf first, anchor last), or ''."""
    crls = []
    for pem in trust.crls:
        try:
            crls.append(x509.load_pem_x509_crl(pem.encode("ascii")))
        except ValueError:
            return "a stored CRL is unreadable (failing closed)"
    for n, cert in enumerate(chain):
        issuer_dn = cert.issuer.rfc4514_string()
        if (issuer_dn, cert.serial_number) in trust.revoked_certs:
            return f"certificate {cert.serial_number:x} of {issuer_dn} is revoked"
        if n + 1 >= len(chain):
            break  # the anchor itself: trusted by configuration
        issuer = chain[n + 1]
        for crl in crls:
            if crl.issuer != cert.issuer:
                continue
            try:
                signed = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError):
                signed = False
            if not signed:
                return f"CRL of {issuer_dn} is not signed by the issuing certificate (failing closed)"
            if crl.next_update_utc is not None and crl.next_update_utc < moment:
                return f"CRL of {issuer_dn} is stale since {crl.next_update_utc.isoformat()} (failing closed)"
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return f"certificate {cert.serial_number:x} is on the CRL of {issuer_dn}"
    return ""
