"""x5c leaves: digitalSignature key usage and the configured EKU; revocation by issuer + serial; CRLs
from the registry (signed by the issuer, current), on both registry backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from enforcer.attestation import load_signing_key, sign_token, verify_token
from enforcer.attestation.x5c import reseller_uri
from tests.test_attestation_support import ACC_X, BACKENDS, DAY, RA, T0, World, make_world, registry_backend
from tests.test_attestation_x5c import START, Pki, _name, make_ca

KU_SIGN = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
KU_AGREE = x509.KeyUsage(False, False, True, False, False, False, False, False, False)


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        w = make_world(registry)
        yield w


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_ca()


def leaf(
    pki: Pki, ku: x509.KeyUsage | None = KU_SIGN, eku: list[x509.ObjectIdentifier] | None = None,
    serial: int | None = None,
) -> tuple[bytes, list[str], int]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    serial = serial or x509.random_serial_number()
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{RA} attestation key"))
        .issuer_name(pki.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(reseller_uri(RA))]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.ca_key.public_key()), critical=False)
    )  # fmt: skip
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    cert = b.sign(pki.ca_key, hashes.SHA256())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    import base64

    return pem, [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()], serial


def status(w: World, pem: bytes, x5c: list[str], now: float = T0) -> tuple[str, str]:
    token = sign_token(load_signing_key(pem), "ca-cert-1", w.claims(), x5c=x5c)
    r = verify_token(token, w.origin(ACC_X), w.registry, now)
    return r.status, r.detail


def crl(pki: Pki, serials: list[int], signer: ec.EllipticCurvePrivateKey | None = None, days: int = 7) -> str:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca_cert.subject)
        .last_update(dt.datetime.fromtimestamp(T0 - DAY, dt.UTC))
        .next_update(dt.datetime.fromtimestamp(T0 + days * DAY, dt.UTC))
    )
    for s in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(START).build()
        )
    return b.sign(signer or pki.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_good_leaf_is_valid(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    assert status(world, *leaf(pki, eku=CLIENT)[:2])[0] == "valid"


@pytest.mark.parametrize(
    ("ku", "eku", "expected"),
    [
        (None, CLIENT, "no key usage"),
        (KU_AGREE, CLIENT, "does not include digitalSignature"),
        (KU_SIGN, None, "no extended key usage"),
        (KU_SIGN, [ExtendedKeyUsageOID.CODE_SIGNING], "EKU"),  # refused by the path validator already
    ],
    ids=["no-key-usage", "no-digital-signature", "no-eku", "wrong-eku"],
)
def test_leaf_usage_is_enforced(
    world: World, pki: Pki, ku: x509.KeyUsage | None, eku: list | None, expected: str
) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    got, detail = status(world, *leaf(pki, ku=ku, eku=eku)[:2])
    assert got in ("invalid", "unknown_issuer") and expected in detail, detail


def test_revocation_is_by_issuer_and_serial(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, serial = leaf(pki, eku=CLIENT)
    other = make_ca("Another CA")
    world.registry.revoke_certificate(other.ca_cert.subject.rfc4514_string(), serial)  # same serial, other CA
    assert status(world, pem, x5c)[0] == "valid"
    world.registry.revoke_certificate(pki.ca_cert.subject.rfc4514_string(), serial)
    got, detail = status(world, pem, x5c)
    assert got == "key_revoked" and "revoked" in detail


def test_crl_from_the_registry(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, serial = leaf(pki, eku=CLIENT)
    world.registry.add_crl(crl(pki, [12345]))
    assert status(world, pem, x5c)[0] == "valid"
    world.registry.add_crl(crl(pki, [12345, serial]))  # the newer CRL replaces the older
    assert len(world.registry.trust().crls) == 1
    got, detail = status(world, pem, x5c)
    assert got == "key_revoked" and "CRL" in detail


def test_forged_or_stale_crl_fails_closed(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, _ = leaf(pki, eku=CLIENT)
    world.registry.add_crl(crl(pki, [], signer=ec.generate_private_key(ec.SECP256R1())))
    got, detail = status(world, pem, x5c)
    assert got == "key_revoked" and "not signed" in detail


def test_stale_crl_fails_closed(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, _ = leaf(pki, eku=CLIENT)
    world.registry.add_crl(crl(pki, [], days=1))
    assert status(world, pem, x5c, now=T0)[0] == "valid"
    got, detail = status(world, pem, x5c, now=T0 + 3 * DAY)
    assert got == "key_revoked" and "stale" in detail
