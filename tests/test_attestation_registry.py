"""Registry backends (local files, DynamoDB under moto) and the caching provider, same cases for both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from enforcer.attestation import (
    DynamoDBRegistry,
    LocalRegistry,
    RegistryAttestationProvider,
    RegistryError,
    ResellerKey,
    StoredAttestation,
    create_tables,
    parse_unverified,
)
from enforcer.attestation.registry import AttestationRegistry
from enforcer.model import AccountOrigin
from tests.test_attestation_support import (
    ACC_D,
    ACC_X,
    ACC_Y,
    BACKENDS,
    DAY,
    RA,
    RB,
    T0,
    World,
    make_world,
    registry_backend,
)


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        yield make_world(registry)


def _twin(registry: AttestationRegistry) -> AttestationRegistry:
    """A second handle on the same storage (another process, another Lambda)."""
    if isinstance(registry, LocalRegistry):
        return LocalRegistry(registry.path)
    assert isinstance(registry, DynamoDBRegistry)
    return DynamoDBRegistry(registry.client, "test-")


def _store(w: World, token: str, account: str = ACC_X, submitted: float = T0) -> StoredAttestation:
    c = parse_unverified(token).payload
    att = StoredAttestation(account, c["jti"], token, c["iss"], parse_unverified(token).kid,
                            c["iat"], c["nbf"], c["exp"], submitted)  # fmt: skip
    assert w.registry.put_attestation(att)
    return att


# -- resellers and keys ----------------------------------------------------------------------
def test_resellers_and_keys(world: World) -> None:
    reg = world.registry
    assert [r.reseller_id for r in reg.list_resellers()] == [RA, RB]
    a = reg.get_reseller(RA)
    assert a is not None and a.country == "DE" and set(a.keys) == {"a-es", "a-ed"}
    assert a.keys["a-ed"].algorithm == "EdDSA" and a.keys["a-es"].status == "active"
    assert reg.get_reseller("nobody") is None
    reg.put_reseller(RA, name="Renamed")
    a2 = reg.get_reseller(RA)
    assert a2 is not None and a2.name == "Renamed" and a2.country == "DE" and set(a2.keys) == {"a-es", "a-ed"}


def test_key_errors(world: World) -> None:
    reg = world.registry
    key = ResellerKey("a-es", "ES256", world.keys["a-es"].public_pem)
    with pytest.raises(RegistryError):
        reg.add_key(RA, key)
    with pytest.raises(RegistryError):
        reg.add_key("nobody", key)
    with pytest.raises(RegistryError):
        reg.revoke_key(RA, "missing", T0)
    with pytest.raises(RegistryError):
        reg.revoke_key("nobody", "a-es", T0)
    with pytest.raises(RegistryError):
        reg.put_reseller("../escape")
    with pytest.raises(RegistryError):
        ResellerKey("k", "HS256", "pem")


def test_revocation_is_recorded_and_bumps_the_generation(world: World) -> None:
    reg = world.registry
    g0 = reg.revocation_generation()
    reg.revoke_key(RA, "a-es", T0 + 5)
    g1 = reg.revocation_generation()
    assert g1 != g0
    a = reg.get_reseller(RA)
    assert a is not None
    assert a.keys["a-es"].status == "revoked" and a.keys["a-es"].revoked_at == T0 + 5
    assert a.keys["a-ed"].status == "active"
    assert _twin(reg).revocation_generation() == g1


def test_trust_config(world: World) -> None:
    reg = world.registry
    g0 = reg.revocation_generation()
    assert reg.trust().anchors == ()
    reg.add_trust_anchor("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n")
    reg.add_trust_anchor("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n")
    reg.revoke_serial(0xABC)
    t = reg.trust()
    assert len(t.anchors) == 1 and t.revoked_serials == frozenset({0xABC})
    assert reg.revocation_generation() != g0


# -- stored attestations ---------------------------------------------------------------------
def test_put_attestation_is_idempotent_and_jti_unique(world: World) -> None:
    token = world.token()
    att = _store(world, token)
    assert world.registry.put_attestation(att) is False
    other = StoredAttestation(ACC_X, att.jti, world.token(), RA, "a-es", T0, T0, T0 + DAY, T0)
    with pytest.raises(RegistryError):
        world.registry.put_attestation(other)
    assert [a.jti for a in world.registry.attestations_for(ACC_X)] == [att.jti]
    assert _twin(world.registry).attestations_for(ACC_X)[0].token == token


def test_listing_orders_newest_first(world: World) -> None:
    old = _store(world, world.token(now=T0 - 2 * DAY))
    new = _store(world, world.token(now=T0 - DAY))
    y = _store(world, world.token(account=ACC_Y), account=ACC_Y)
    assert [a.jti for a in world.registry.attestations_for(ACC_X)] == [new.jti, old.jti]
    assert [a.jti for a in world.registry.list_attestations()] == [new.jti, old.jti, y.jti]
    assert world.registry.list_attestations(ACC_Y) == [y]
    with pytest.raises(RegistryError):
        world.registry.attestations_for("../../etc/passwd")


# -- provider --------------------------------------------------------------------------------
def test_provider_missing_and_not_required(world: World) -> None:
    p = RegistryAttestationProvider(world.registry)
    assert p.for_account(world.origin(ACC_D), T0).status == "not_required"
    r = p.for_account(world.origin(ACC_X), T0)
    assert r.status == "missing" and r.claims == {}


def test_newest_valid_counts(world: World) -> None:
    p = RegistryAttestationProvider(world.registry)
    valid_old = _store(world, world.token(now=T0 - 10 * DAY))
    _store(world, world.token(now=T0 + DAY))  # newer but not yet valid
    r = p.for_account(world.origin(ACC_X), T0)
    assert r.status == "valid" and r.jti == valid_old.jti
    newest_valid = _store(world, world.token(now=T0 - DAY))
    assert p.for_account(world.origin(ACC_X), T0).jti == newest_valid.jti


def test_none_valid_reports_the_newest(world: World) -> None:
    p = RegistryAttestationProvider(world.registry)
    _store(world, world.token(now=T0 - 100 * DAY, valid_days=30))  # expired long ago
    newest = _store(world, world.token(now=T0 + 5 * DAY))  # not yet valid
    r = p.for_account(world.origin(ACC_X), T0)
    assert r.status == "not_yet_valid" and r.jti == newest.jti


def test_ref_narrows_to_one_attestation(world: World) -> None:
    p = RegistryAttestationProvider(world.registry)
    expired = _store(world, world.token(now=T0 - 100 * DAY, valid_days=30))
    valid = _store(world, world.token(now=T0 - DAY))
    assert p.for_account(world.origin(ACC_X), T0, ref=expired.jti).status == "expired"
    assert p.for_account(world.origin(ACC_X), T0, ref=valid.jti).jti == valid.jti
    assert p.for_account(world.origin(ACC_X), T0, ref="no-such-jti").status == "missing"


def test_stored_token_is_rechecked_against_the_account(world: World) -> None:
    """A token stored under the wrong account (hand edit) is still bound to its sub."""
    token = world.token(account=ACC_X)
    _store(world, token, account=ACC_Y)
    assert RegistryAttestationProvider(world.registry).for_account(world.origin(ACC_Y), T0).status == (
        "account_mismatch"
    )


def test_cache_hits_and_honours_expiry(world: World) -> None:
    p = RegistryAttestationProvider(world.registry)
    _store(world, world.token(valid_days=1))
    origin = world.origin(ACC_X)
    assert p.for_account(origin, T0).status == "valid"
    assert p.for_account(origin, T0 + 10).status == "valid"
    assert (p.stats.misses, p.stats.hits) == (1, 1)
    assert p.for_account(origin, T0 + DAY + 60).status == "expired"
    assert p.for_account(origin, T0 + 10).status == "valid"  # replay of an earlier moment still works


def test_cache_never_outlives_a_revocation(world: World) -> None:
    p = RegistryAttestationProvider(world.registry)
    _store(world, world.token())
    origin = world.origin(ACC_X)
    assert p.for_account(origin, T0).status == "valid"
    assert p.for_account(origin, T0).status == "valid"
    _twin(world.registry).revoke_key(RA, "a-es", T0)  # revoked elsewhere (CLI, another Lambda)
    r = p.for_account(origin, T0 + 1)
    assert r.status == "key_revoked", r.detail
    assert p.stats.invalidations == 1


def test_cache_is_per_account_binding(world: World) -> None:
    """The same token cached for one origin is not reused when the account's reseller changes."""
    p = RegistryAttestationProvider(world.registry)
    _store(world, world.token())
    assert p.for_account(world.origin(ACC_X), T0).status == "valid"
    moved = AccountOrigin(ACC_X, reseller=RB)
    assert p.for_account(moved, T0).status == "unknown_issuer"


def test_registry_failure_fails_closed(tmp_path: Path) -> None:
    broken = tmp_path / "registry"
    broken.mkdir()
    (broken / "resellers.json").write_text("{not json")
    r = RegistryAttestationProvider(LocalRegistry(broken)).for_account(AccountOrigin(ACC_X, reseller=RA), T0)
    assert r.status == "invalid" and "unavailable" in r.detail
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        r = RegistryAttestationProvider(DynamoDBRegistry(client, "absent-")).for_account(
            AccountOrigin(ACC_X, reseller=RA), T0
        )
    assert r.status == "invalid" and "ResourceNotFound" in r.detail


def test_create_tables_is_idempotent() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        names = create_tables(client, "gle-")
        assert (
            create_tables(client, "gle-")
            == names
            == {"resellers": "gle-resellers", "attestations": "gle-attestations"}
        )
        desc = client.describe_table(TableName="gle-attestations")["Table"]["KeySchema"]
        assert {(k["AttributeName"], k["KeyType"]) for k in desc} == {
            ("account_id", "HASH"),
            ("jti", "RANGE"),
        }
