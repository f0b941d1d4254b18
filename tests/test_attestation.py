"""Attestation keys, claims, signing and verification (status by status)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.attestation_bench import bench_attestation
from enforcer.attestation import (
    ALGORITHMS,
    AttestationKeyError,
    ClaimsError,
    EndCustomer,
    RegistryAttestationProvider,
    build_claims,
    generate_private_key_pem,
    load_public_key_pem,
    load_signing_key,
    local_provider,
    name_hash,
    parse_unverified,
    reason_code,
    sign_token,
    status_reason_codes,
    validate_claims,
    verify_token,
)
from enforcer.model import ATTESTATION_STATUSES, AccountOrigin
from enforcer.ports import AttestationProvider
from tests.test_attestation_support import (
    ACC_D,
    ACC_X,
    DAY,
    RA,
    T0,
    World,
    make_world,
    registry_backend,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with registry_backend("local", tmp_path) as registry:
        yield make_world(registry)


# -- keys ------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_generated_key_pins_its_algorithm(alg: str) -> None:
    key = load_signing_key(generate_private_key_pem(alg))
    assert key.algorithm == alg
    assert load_public_key_pem(key.public_pem) == (alg, key.public_pem)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ed448.Ed448PrivateKey.generate(),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "ed448", "rsa"],
)
def test_other_key_types_are_refused(make: object) -> None:
    priv = make()  # type: ignore[operator]
    pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(AttestationKeyError):
        load_signing_key(pem)
    with pytest.raises(AttestationKeyError):
        load_public_key_pem(pub)


def test_garbage_and_private_pem_are_not_public_keys() -> None:
    with pytest.raises(AttestationKeyError):
        load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(AttestationKeyError):
        load_public_key_pem(generate_private_key_pem("ES256"))
    with pytest.raises(AttestationKeyError):
        load_signing_key(b"x" * 100_000)
    with pytest.raises(AttestationKeyError):
        generate_private_key_pem("HS256")


# -- claims ----------------------------------------------------------------------------------
def _claims(**kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "issuer": RA,
        "account": ACC_X,
        "end_customer": EndCustomer("DE", "DE", "US", "verified"),
        "now": T0,
        "valid_days": 30,
        "max_valid_days": 90,
        "audience": "gpu-launch-enforcer",
    }
    args.update(kw)
    return build_claims(**args)  # type: ignore[arg-type]


def test_build_claims_has_the_contract_fields() -> None:
    c = _claims(end_use="fine-tuning")
    assert set(c) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "end_customer", "end_use"}
    assert c["exp"] - c["nbf"] == 30 * DAY
    assert c["end_customer"] == {
        "country": "DE",
        "hq_country": "DE",
        "parent_hq_country": "US",
        "kyc_level": "verified",
    }
    assert _claims()["jti"] != _claims()["jti"]


@pytest.mark.parametrize("days", [0, 91, -1])
def test_validity_is_capped(days: int) -> None:
    with pytest.raises(ClaimsError):
        _claims(valid_days=days)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.pop("exp"),
        lambda c: c.update(sub="12345"),
        lambda c: c.update(iat=True),
        lambda c: c.update(exp=float("inf")),
        lambda c: c.update(nbf=-5),
        lambda c: c.update(exp=c["nbf"]),
        lambda c: c.update(email="someone@example.com"),
        lambda c: c["end_customer"].update(country="de"),
        lambda c: c["end_customer"].update(name=12345),  # a clear name (issue 14) must be a string
        lambda c: c["end_customer"].update(name="x" * 257),
        lambda c: c["end_customer"].update(aliases="Example Ltd"),
        lambda c: c["end_customer"].update(aliases=["a"] * 11),
        lambda c: c["end_customer"].update(kyc_level="trust-me"),
        lambda c: c["end_customer"].update(name_hash="sha1:abc"),
        lambda c: c.update(end_customer=["DE"]),
        lambda c: c.update(end_use="x" * 513),
        lambda c: c.update(iss="../../etc"),
    ],
)
def test_malformed_claims_are_refused(mutate: object) -> None:
    c = json.loads(json.dumps(_claims()))
    mutate(c)  # type: ignore[operator]
    with pytest.raises(ClaimsError):
        validate_claims(c)


def test_name_hash_is_salted_normalised_and_accepted() -> None:
    salt = b"s" * 16
    h = name_hash("Example  Holdings LTD", salt)
    assert h == name_hash("example holdings ltd", salt)
    assert h != name_hash("Example Holdings Ltd", b"t" * 16)
    assert "Example" not in h
    c = _claims(end_customer=EndCustomer("DE", name_hash=h))
    assert validate_claims(c)["end_customer"]["name_hash"] == h
    with pytest.raises(ValueError):
        name_hash("x", b"short")


# -- sign / verify ---------------------------------------------------------------------------
@pytest.mark.parametrize("kid", ["a-es", "a-ed"])
def test_round_trip_is_valid_with_verified_claims(world: World, kid: str) -> None:
    token = world.token(kid=kid)
    assert parse_unverified(token).header["alg"] == world.keys[kid].algorithm
    r = verify_token(token, world.origin(ACC_X), world.registry, T0 + 5)
    assert r.status == "valid", r.detail
    assert (r.kid, r.issuer, r.jti) == (kid, RA, r.claims["jti"])
    assert r.claims["end_customer"]["parent_hq_country"] == "US"
    assert r.claims["sub"] == ACC_X


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (-60, "valid"),  # nbf - skew
        (-61, "not_yet_valid"),
        (30 * DAY + 59, "valid"),  # exp + skew - 1
        (30 * DAY + 60, "expired"),
    ],
)
def test_clock_skew_boundaries(world: World, offset: int, status: str) -> None:
    token = world.token()
    assert verify_token(token, world.origin(ACC_X), world.registry, T0 + offset).status == status


def test_issued_in_the_future_is_not_yet_valid(world: World) -> None:
    claims = world.claims()
    claims["iat"] = T0 + 3600
    token = sign_token(world.keys["a-es"], "a-es", claims)
    assert verify_token(token, world.origin(ACC_X), world.registry, T0 + 10).status == "not_yet_valid"


def test_configured_audience(world: World) -> None:
    token = world.token(audience="acme-cloud")
    assert verify_token(token, world.origin(ACC_X), world.registry, T0).status == "invalid"
    assert verify_token(token, world.origin(ACC_X), world.registry, T0, "acme-cloud").status == "valid"


def test_key_past_not_after_is_key_revoked(world: World) -> None:
    world.add_key(RA, "a-short", "ES256", not_after=float(T0 + DAY))
    token = world.token(kid="a-short")
    origin = world.origin(ACC_X)
    assert verify_token(token, origin, world.registry, T0).status == "valid"
    r = verify_token(token, origin, world.registry, T0 + 2 * DAY)
    assert r.status == "key_revoked" and "expired" in r.detail


def test_direct_account_token_has_no_issuer(world: World) -> None:
    token = world.token(account=ACC_D)
    assert verify_token(token, world.origin(ACC_D), world.registry, T0).status == "unknown_issuer"


def test_unregistered_reseller_is_unknown_issuer(world: World) -> None:
    origin = AccountOrigin(ACC_X, reseller="reseller-c")
    token = sign_token(world.keys["a-es"], "a-es", world.claims(issuer="reseller-c"))
    assert verify_token(token, origin, world.registry, T0).status == "unknown_issuer"


def test_every_failure_status_has_a_reason_code_in_the_policy_data() -> None:
    failing = set(ATTESTATION_STATUSES) - {"valid", "not_required"}
    codes = status_reason_codes(Path(__file__).resolve().parents[1] / "policies")
    assert set(codes) == failing
    reasons = json.loads((Path(__file__).resolve().parents[1] / "policies/gpu/reasons/data.json").read_text())
    assert set(codes.values()) <= set(json.dumps(reasons).split('"'))  # every code is a known reason
    assert reason_code("valid") is None and reason_code("not_required") is None
    assert reason_code("account_mismatch") == "ATTESTATION_ACCOUNT_MISMATCH"


def test_the_intake_reads_the_code_from_the_policy_it_is_given(tmp_path: Path) -> None:
    cfg = tmp_path / "gpu" / "config"
    cfg.mkdir(parents=True)
    (cfg / "data.json").write_text(json.dumps({"attestation_codes": {"expired": "ATTESTATION_STALE"}}))
    assert reason_code("expired", tmp_path) == "ATTESTATION_STALE"
    assert reason_code("key_revoked", tmp_path) == "ATTESTATION_INVALID"  # not named: fail closed
    assert reason_code("expired", tmp_path / "missing") == "ATTESTATION_INVALID"  # unreadable: fail closed
    (cfg / "data.json").write_text('{"attestation_codes": ["x"]}')
    assert reason_code("expired", tmp_path) == "ATTESTATION_INVALID"


@settings(max_examples=150, deadline=None)
@given(
    junk=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.lists(st.text(alphabet="ABCDEFabcdef0123456789-_", max_size=60), min_size=1, max_size=5).map(
            ".".join
        ),
        st.none(),
        st.integers(),
    )
)
def test_verify_never_raises_on_junk(tmp_path_factory: pytest.TempPathFactory, junk: object) -> None:
    with registry_backend("local", tmp_path_factory.mktemp("junk")) as registry:
        r = verify_token(junk, AccountOrigin(ACC_X, reseller=RA), registry, T0)
    assert r.status == "invalid" or r.status == "unknown_issuer"
    assert r.claims == {}


def test_provider_satisfies_the_port(tmp_path: Path) -> None:
    provider = local_provider(tmp_path / "registry")
    assert isinstance(provider, AttestationProvider)
    assert isinstance(provider, RegistryAttestationProvider)
    assert provider.for_account(AccountOrigin(ACC_D), T0).status == "not_required"
    assert provider.for_account(AccountOrigin(ACC_X, reseller=RA), T0).status == "missing"


def test_bench_reports_cold_and_cached_percentiles() -> None:
    out = bench_attestation(runs=5)
    assert set(out["algorithms"]) == {"ES256", "EdDSA"}
    for figures in out["algorithms"].values():
        assert figures["status"] == "valid"
        for kind in ("cold_us", "cached_us"):
            assert 0 < figures[kind]["p50"] <= figures[kind]["p99"] <= figures[kind]["max"]


def test_keygen_mode_is_private(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from enforcer.cli.attest import attest_group

    out = tmp_path / "k.pem"
    r = CliRunner().invoke(attest_group, ["keygen", "--out", str(out), "--alg", "EdDSA"])
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert load_public_key_pem(r.output)[0] == "EdDSA"
    assert load_signing_key(out.read_bytes()).public_pem == r.output
