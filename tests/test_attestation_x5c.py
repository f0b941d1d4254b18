"""Optional trust chain: reseller keys certified by the operator CA (``x5c``)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from enforcer.attestation import (
    RegistryAttestationProvider,
    StoredAttestation,
    load_signing_key,
    sign_token,
    verify_token,
)
from enforcer.attestation.x5c import reseller_uri
from tests.test_attestation_support import (
    ACC_X,
    BACKENDS,
    DAY,
    RA,
    T0,
    World,
    cli_invoke,
    make_world,
    registry_backend,
    rfc3339,
)

UTC = dt.UTC
START = dt.datetime.fromtimestamp(T0 - 30 * DAY, UTC)


@dataclass
class Pki:
    ca_pem: str
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "Operator Attestation CA") -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pki(cert.public_bytes(serialization.Encoding.PEM).decode(), key, cert)


def issue_leaf(
    pki: Pki, reseller: str, days: int = 365, serial: int | None = None
) -> tuple[bytes, list[str], int]:
    """Issue a reseller leaf; return (private PEM, x5c list, serial)."""
    key = ec.generate_private_key(ec.SECP256R1())
    serial = serial or x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{reseller} attestation key"))
        .issuer_name(pki.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(reseller_uri(reseller))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.ca_key.public_key()), critical=False
        )
        .sign(pki.ca_key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    return pem, x5c, serial


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        yield make_world(registry)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_ca()


def _token(w: World, pem: bytes, x5c: list[str], issuer: str = RA) -> str:
    return sign_token(load_signing_key(pem), "ca-cert-1", w.claims(issuer=issuer), x5c=x5c)


def test_certified_key_is_accepted_without_registration(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, _ = issue_leaf(pki, RA)
    r = verify_token(_token(world, pem, x5c), world.origin(ACC_X), world.registry, T0)
    assert r.status == "valid", r.detail
    assert r.issuer == RA and r.kid == "ca-cert-1"


def test_no_anchor_or_foreign_ca_is_unknown_issuer(world: World, pki: Pki) -> None:
    pem, x5c, _ = issue_leaf(pki, RA)
    token = _token(world, pem, x5c)
    assert verify_token(token, world.origin(ACC_X), world.registry, T0).status == "unknown_issuer"
    world.registry.add_trust_anchor(make_ca("Someone Else").ca_pem)
    r = verify_token(token, world.origin(ACC_X), world.registry, T0)
    assert r.status == "unknown_issuer" and "chain" in r.detail


def test_self_made_chain_for_the_right_reseller_is_refused(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    rogue = make_ca(pki.ca_cert.subject.rfc4514_string().split("=", 1)[1])  # same name, other key
    pem, x5c, _ = issue_leaf(rogue, RA)
    assert (
        verify_token(_token(world, pem, x5c), world.origin(ACC_X), world.registry, T0).status
        == "unknown_issuer"
    )


def test_certificate_for_another_reseller_is_unknown_issuer(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, _ = issue_leaf(pki, "reseller-b")
    r = verify_token(_token(world, pem, x5c), world.origin(ACC_X), world.registry, T0)
    assert r.status == "unknown_issuer" and "not issued to this reseller" in r.detail


def test_revoked_serial_and_expired_certificate(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, serial = issue_leaf(pki, RA)
    token = _token(world, pem, x5c)
    world.registry.put_attestation(
        StoredAttestation(ACC_X, "x5c-1", token, RA, "ca-cert-1", T0, T0, T0 + DAY, T0)
    )
    provider = RegistryAttestationProvider(world.registry)
    assert provider.for_account(world.origin(ACC_X), T0).status == "valid"
    world.registry.revoke_serial(serial)
    assert provider.for_account(world.origin(ACC_X), T0).status == "key_revoked"
    short_pem, short_x5c, _ = issue_leaf(pki, RA, days=31)  # expires one day after T0
    late = sign_token(load_signing_key(short_pem), "k", world.claims(now=T0 + 2 * DAY), x5c=short_x5c)
    r = verify_token(late, world.origin(ACC_X), world.registry, T0 + 2 * DAY)
    assert r.status == "key_revoked" and "expired" in r.detail


def test_malformed_x5c_is_invalid(world: World, pki: Pki) -> None:
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, _, _ = issue_leaf(pki, RA)
    for bad in (["%%%not-base64"], [base64.b64encode(b"not a certificate").decode()]):
        r = verify_token(_token(world, pem, bad), world.origin(ACC_X), world.registry, T0)
        assert r.status == "invalid", r.detail


def test_cli_trust_sign_submit_revoke(world: World, pki: Pki, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(pki.ca_pem)
    assert cli_invoke(world, tmp_path, ["reseller", "trust-ca", "--cert", str(ca_file)]).exit_code == 0
    pem, x5c, serial = issue_leaf(pki, RA)
    key_file, chain_file = tmp_path / "leaf.key", tmp_path / "chain.pem"
    key_file.write_bytes(pem)
    der = base64.b64decode(x5c[0])
    chain_file.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    sign = cli_invoke(world, tmp_path, [
        "attest", "sign", "--key", str(key_file), "--kid", "ca-cert-1", "--issuer", RA, "--account", ACC_X,
        "--end-customer-country", "DE", "--end-customer-hq-country", "DE", "--end-customer-parent-hq-country", "DE",
        "--now", rfc3339(T0), "--cert-chain", str(chain_file),
    ])  # fmt: skip
    assert sign.exit_code == 0, sign.output
    token_file = tmp_path / "t.jwt"
    token_file.write_text(sign.output)
    ok = cli_invoke(world, tmp_path, ["attest", "submit", str(token_file), "--now", rfc3339(T0)])
    assert ok.exit_code == 0, ok.output
    assert cli_invoke(world, tmp_path, ["reseller", "revoke-cert", hex(serial)]).exit_code == 0
    bad = cli_invoke(world, tmp_path, ["attest", "submit", str(token_file), "--now", rfc3339(T0)])
    assert bad.exit_code == 2 and "ATTESTATION_KEY_REVOKED" in bad.output
    assert cli_invoke(world, tmp_path, ["reseller", "revoke-cert", "zz"]).exit_code == 2


def test_cached_result_does_not_outlive_the_certificate(world: World, pki: Pki) -> None:
    """The provider's cache must not keep a CA-certified token valid after its certificate expired."""
    world.registry.add_trust_anchor(pki.ca_pem)
    pem, x5c, _ = issue_leaf(pki, RA, days=31)  # expires one day after T0
    token = _token(world, pem, x5c)
    world.registry.put_attestation(
        StoredAttestation(ACC_X, "x5c-2", token, RA, "ca-cert-1", T0, T0, T0 + 5 * DAY, T0)
    )
    provider = RegistryAttestationProvider(world.registry)
    assert provider.for_account(world.origin(ACC_X), T0).status == "valid"
    assert provider.for_account(world.origin(ACC_X), T0 + 2 * DAY).status == "key_revoked"
