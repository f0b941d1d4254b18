"""Issue 13 through ``decide``: real signed attestations in a real registry (local and DynamoDB in moto).

Incomplete end customers, KYC, the reseller's own origin, several attestations (most restrictive
wins, ``supersedes``, the tag only narrows), dated country groups and region location.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.accounts import StaticAccountDirectory
from enforcer.attestation import RegistryAttestationProvider
from enforcer.attestation.submit import submit_token
from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer
from tests.test_attestation_support import ACC_X, BACKENDS, DAY, RA, T0, World, make_world, registry_backend


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        yield make_world(registry)


def ec(
    country: str, hq: str | None = None, parent: str | None = None, kyc: str | None = "verified"
) -> dict[str, Any]:
    out = {"country": country, "hq_country": hq or country, "parent_hq_country": parent or hq or country}
    if kyc is not None:
        out["kyc_level"] = kyc
    return out


def sign(w: World, end_customer: dict[str, Any], jti: str, at: float = T0, **claims: Any) -> str:
    return w.token(now=at, end_customer=end_customer, jti=jti, **claims)


def store(w: World, token: str, now: float = T0 + 60) -> None:
    submit_token(token, w.directory(), w.registry, now)


def decide(
    w: World, engine: Any, catalog: Any, *, now: float = T0 + 120, ref: str | None = None,
    account: str = ACC_X, region: str = "us-east-1", origins: list[AccountOrigin] | None = None,
) -> Any:  # fmt: skip
    enf = Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory(origins or list(w.origins.values())),
        engine=engine,
        attestations=RegistryAttestationProvider(w.registry),
    )
    req = LaunchRequest(
        "cloudtrail", "ec2:RunInstances", account, region, items=[LaunchItem("p5.48xlarge", 1)]
    )
    req.attestation_ref = ref
    return enf.decide(req, now)


def codes(d: Any) -> set[str]:
    return set(d.reason_codes)


def test_complete_attestation_allows(world: World, engine: Any, catalog: Any) -> None:
    store(world, sign(world, ec("DE"), "t-ok"))
    d = decide(world, engine, catalog)
    assert d.effect == "allow", d.to_dict()["reasons"]


@pytest.mark.parametrize(
    "end_customer",
    [
        {"country": "SG", "kyc_level": "verified"},  # a foreign subsidiary that names no parent
        {"country": "SG", "hq_country": "SG", "kyc_level": "verified"},
        {"country": "SG", "hq_country": "SG", "parent_hq_country": "XX", "kyc_level": "verified"},
        {"country": "ZZ", "hq_country": "SG", "parent_hq_country": "SG", "kyc_level": "verified"},
    ],
)
def test_incomplete_end_customer_is_refused_and_denied(
    world: World, engine: Any, catalog: Any, end_customer: dict[str, Any]
) -> None:
    token = sign(world, end_customer, "t-part")
    with pytest.raises(Exception, match=r"missing or not an ISO 3166-1 country"):
        store(world, token)
    # smuggled past submit, it still denies at decision time
    from tests.test_attestation_decide import _smuggle

    _smuggle(world, ACC_X, token)
    d = decide(world, engine, catalog)
    assert d.effect == "deny" and codes(d) == {"ATTESTATION_INCOMPLETE"}, d.to_dict()["reasons"]


@pytest.mark.parametrize("kyc", ["none", "pending", None])
def test_end_customer_kyc_must_be_verified(world: World, engine: Any, catalog: Any, kyc: str | None) -> None:
    store(world, sign(world, ec("DE", kyc=kyc), "t-kyc"))
    d = decide(world, engine, catalog)
    assert d.effect == "deny" and codes(d) == {"KYC_NOT_VERIFIED"}


def test_reseller_registered_in_china_is_denied(world: World, engine: Any, catalog: Any) -> None:
    world.registry.put_reseller(RA, country="CN")
    store(world, sign(world, ec("SG"), "t-sg"))
    d = decide(world, engine, catalog)
    assert d.effect == "deny" and codes(d) == {"RESELLER_RESTRICTED"}
    assert d.input["reseller"]["country"] == "CN"


def test_reseller_with_hong_kong_parent_or_suspended_is_denied(
    world: World, engine: Any, catalog: Any
) -> None:
    store(world, sign(world, ec("SG"), "t-sg"))
    world.registry.put_reseller(RA, parent_hq_country="HK")
    assert codes(decide(world, engine, catalog)) == {"RESELLER_RESTRICTED"}
    world.registry.put_reseller(RA, parent_hq_country="DE", status="suspended")
    assert codes(decide(world, engine, catalog)) == {"RESELLER_RESTRICTED"}
    world.registry.put_reseller(RA, status="active")
    assert decide(world, engine, catalog).effect == "allow"


def test_most_restrictive_current_attestation_wins(world: World, engine: Any, catalog: Any) -> None:
    store(world, sign(world, ec("SG", parent="CN"), "t-old", at=T0))
    store(world, sign(world, ec("SG"), "t-new", at=T0 + 30), now=T0 + 90)
    d = decide(world, engine, catalog)
    assert d.effect == "deny" and codes(d) == {"END_CUSTOMER_RESTRICTED"}


def test_the_tag_cannot_pick_the_favourable_one(world: World, engine: Any, catalog: Any) -> None:
    store(world, sign(world, ec("SG"), "t-old", at=T0))
    store(world, sign(world, ec("SG", parent="CN"), "t-new", at=T0 + 30), now=T0 + 90)
    assert codes(decide(world, engine, catalog, ref="t-old")) == {"END_CUSTOMER_RESTRICTED"}
    # narrowing: naming an attestation that does not exist (or is not valid) denies
    assert codes(decide(world, engine, catalog, ref="t-none")) == {"ATTESTATION_MISSING"}


def test_an_explicit_supersedes_replaces_the_older_answer(world: World, engine: Any, catalog: Any) -> None:
    store(world, sign(world, ec("SG", parent="CN"), "t-old", at=T0))
    store(world, sign(world, ec("SG"), "t-new", at=T0 + 30, supersedes="t-old"), now=T0 + 90)
    d = decide(world, engine, catalog)
    assert d.effect == "allow", d.to_dict()["reasons"]
    assert d.attestation["jti"] == "t-new"
    # the superseded one can no longer be chosen by tag
    named = decide(world, engine, catalog, ref="t-old")
    assert codes(named) == {"ATTESTATION_INVALID"} and "superseded" in named.reasons[0].message


def test_an_older_token_cannot_supersede_a_newer_one(world: World, engine: Any, catalog: Any) -> None:
    store(world, sign(world, ec("SG"), "t-new", at=T0 + 30), now=T0 + 90)
    store(world, sign(world, ec("SG", parent="CN"), "t-old", at=T0, supersedes="t-new"), now=T0 + 90)
    assert codes(decide(world, engine, catalog)) == {"END_CUSTOMER_RESTRICTED"}


def test_an_expired_superseding_token_restores_the_older_one(world: World, engine: Any, catalog: Any) -> None:
    store(world, sign(world, ec("DE"), "t-old", at=T0, valid_days=30))
    store(world, sign(world, ec("SG", parent="CN"), "t-new", at=T0 + 30, supersedes="t-old", valid_days=1),
          now=T0 + 90)  # fmt: skip
    assert codes(decide(world, engine, catalog)) == {"END_CUSTOMER_RESTRICTED"}
    assert decide(world, engine, catalog, now=T0 + 2 * DAY).effect == "allow"


# -- dated country groups and the region ------------------------------------------------------------
NOW_2026_12 = 1_796_083_200  # 2026-12-01T00:00:00Z


def direct(country: str, hq: str | None = None) -> AccountOrigin:
    return AccountOrigin("555566667777", country, hq or country, hq or country, "verified")


@pytest.mark.parametrize(
    ("origin", "now", "effect", "expected"),
    [
        (direct("NI"), NOW_2026_12, "deny", {"ORIGIN_RESTRICTED"}),
        (direct("NI"), 1_710_374_400, "allow", set()),  # 14 Mar 2024: before Nicaragua's move
        (direct("KH"), NOW_2026_12, "audit", {"ORIGIN_LICENSE_REVIEW"}),
        (direct("KH"), 1_767_225_600, "deny", {"ORIGIN_RESTRICTED"}),  # 1 Jan 2026: still D:5
        (direct("CY", "US"), NOW_2026_12, "allow", set()),  # destination carve-out (A:5/A:6)
        (direct("US", "CY"), NOW_2026_12, "deny", {"ORIGIN_RESTRICTED"}),  # HQ test: no carve-out
        (direct("US", "CY"), 1_780_000_000, "allow", set()),  # May 2026: FY2026 suspension in force
    ],
)
def test_dated_groups_through_decide(
    world: World,
    engine: Any,
    catalog: Any,
    origin: AccountOrigin,
    now: float,
    effect: str,
    expected: set[str],
) -> None:
    d = decide(world, engine, catalog, now=now, account=origin.account_id, origins=[origin])
    assert (d.effect, codes(d)) == (effect, expected), d.to_dict()["reasons"]


@pytest.mark.parametrize(
    ("region", "expected"),
    [("ap-east-1", {"REGION_RESTRICTED"}), ("cn-north-1", {"REGION_RESTRICTED"}),
     ("me-central-1", {"ORIGIN_LICENSE_REVIEW"}), ("eu-west-1", set())],
)  # fmt: skip
def test_region_location(world: World, engine: Any, catalog: Any, region: str, expected: set[str]) -> None:
    us = direct("US")
    d = decide(world, engine, catalog, account=us.account_id, origins=[us], region=region, now=NOW_2026_12)
    assert codes(d) == expected


def test_flooding_with_favourable_attestations_fails_closed(world: World, engine: Any, catalog: Any) -> None:
    """A reseller cannot push a restrictive attestation out of view by submitting many newer ones."""
    from enforcer.attestation.provider import MAX_CANDIDATES

    store(world, sign(world, ec("SG", parent="CN"), "t-bad", at=T0))
    for n in range(MAX_CANDIDATES):
        store(world, sign(world, ec("SG"), f"t-good-{n}", at=T0 + 1 + n), now=T0 + 90)
    d = decide(world, engine, catalog)
    assert d.effect == "deny" and codes(d) == {"ATTESTATION_INVALID"}
    assert "unexpired attestations" in d.reasons[0].message
    # once they have expired, the account is judged on what is current again
    assert codes(decide(world, engine, catalog, now=T0 + 31 * DAY)) == {"ATTESTATION_EXPIRED"}


def test_too_many_licences_count_as_none() -> None:
    from enforcer.licences import MAX_PER_ACCOUNT, Licence, LicenceError, policy_view

    many = [
        Licence(f"L-{n}", "111122223333", ("CN",), "2027-01-01T00:00:00Z") for n in range(MAX_PER_ACCOUNT + 1)
    ]
    with pytest.raises(LicenceError):
        policy_view(many)
    assert len(policy_view(many[:MAX_PER_ACCOUNT])) == MAX_PER_ACCOUNT


def test_licence_register_failure_fails_closed(make_enforcer: Any) -> None:
    class Broken:
        def for_account(self, account_id: str) -> list[dict[str, Any]]:
            raise OSError("register unreachable")

    class One:
        def for_account(self, account_id: str) -> list[dict[str, Any]]:
            return [
                {
                    "id": "L-1",
                    "account_id": account_id,
                    "countries": ["CN"],
                    "expires": "2099-01-01T00:00:00Z",
                }
            ]

    cn = AccountOrigin("555566667777", "CN", "CN", "CN", "verified")
    req = LaunchRequest(
        "cloudtrail", "ec2:RunInstances", cn.account_id, "us-east-1", items=[LaunchItem("p5.48xlarge", 1)]
    )
    ok = make_enforcer([cn], licences=One()).decide(req, NOW_2026_12)
    assert ok.effect == "audit" and codes(ok) == {"LICENSED"}
    enf = make_enforcer([cn], licences=Broken())
    req2 = LaunchRequest(
        "cloudtrail", "ec2:RunInstances", cn.account_id, "us-east-1", items=[LaunchItem("p5.48xlarge", 1)]
    )
    d = enf.decide(req2, NOW_2026_12)
    assert d.effect == "deny" and codes(d) == {"ORIGIN_RESTRICTED"}
    assert enf.counters["licence_lookup_failures"] == 1


def test_end_customers_in_the_input_carry_no_names(world: World, engine: Any, catalog: Any) -> None:
    """The audit log keeps the policy input: the end customers passed to the policy hold no name."""
    from enforcer.attestation import name_hash

    hashed = {**ec("DE"), "name_hash": name_hash("Example Holdings Ltd", b"0123456789abcdef")}
    store(world, sign(world, hashed, "t-named"))
    d = decide(world, engine, catalog)
    assert d.effect == "allow"
    assert d.input["attestation"]["end_customers"] == [ec("DE")]
