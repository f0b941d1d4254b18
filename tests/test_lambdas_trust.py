"""Issue 13 through the real handlers on moto: the launch broker (prevents) and the guard (remediates).

Licences in the DynamoDB register, dated country groups, region location, the reseller's own origin
from the DynamoDB registry, and the alert for an accelerator DescribeInstanceTypes reports that the
catalogue lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enforcer.attestation import DynamoDBRegistry, EndCustomer, ResellerKey, build_claims, sign_token
from enforcer.attestation.keys import generate_private_key_pem, load_signing_key
from enforcer.attestation.submit import submit_token
from enforcer.licences import DynamoDBLicenceStore, Licence, licences_table
from enforcer.model import AccountOrigin
from lambdas import broker
from tests.lambda_env import HOME, MEMBER, PREFIX, REGION, LambdaContext, World, broker_event, world_factory

CTX = LambdaContext(function_name="gpu-broker")


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = broker.handler(event, CTX)
    return resp["statusCode"], json.loads(resp["body"])


def launch(
    w: World, account: str, itype: str = "p5.48xlarge", region: str = REGION
) -> tuple[int, dict[str, Any]]:
    body = {"instanceType": itype, "count": 1, "region": region, "imageId": w.ami(account)}
    return call(broker_event(account, body))


def codes(out: dict[str, Any]) -> set[str]:
    return {r["code"] for r in out["reasons"]}


def test_cn_member_with_a_p5_licence_launches_audited_until_revoked(make_world: Any) -> None:
    w: World = make_world()
    status, out = launch(w, MEMBER)
    assert status == 403 and codes(out) == {"ORIGIN_RESTRICTED"}

    store = DynamoDBLicenceStore(w.client("dynamodb"), licences_table(PREFIX))
    store.add(Licence("BIS-D900001", MEMBER, ("CN",), "2099-01-01T00:00:00Z", ("3A090.a",), 500_000.0))
    status, out = launch(w, MEMBER)
    assert status == 200 and out["effect"] == "audit" and codes(out) == {"LICENSED"}, out
    assert len(out["instance_ids"]) == 1 and "BIS-D900001" in out["reasons"][0]["message"]

    store.revoke("BIS-D900001", "2000-01-01T00:00:00Z")
    status, out = launch(w, MEMBER)
    assert status == 403 and codes(out) == {"ORIGIN_RESTRICTED"}


def test_expired_licence_covers_nothing(make_world: Any) -> None:
    w: World = make_world()
    store = DynamoDBLicenceStore(w.client("dynamodb"), licences_table(PREFIX))
    store.add(Licence("BIS-OLD", MEMBER, ("CN",), "2025-01-01T00:00:00Z", valid_from="2024-01-01T00:00:00Z"))
    status, out = launch(w, MEMBER)
    assert status == 403 and codes(out) == {"ORIGIN_RESTRICTED"}


@pytest.mark.parametrize(
    ("country", "status", "effect", "expected"),
    [("NI", 403, "deny", {"ORIGIN_RESTRICTED"}), ("KH", 200, "audit", {"ORIGIN_LICENSE_REVIEW"})],
)
def test_nicaragua_denied_cambodia_audited(
    make_world: Any, country: str, status: int, effect: str, expected: set[str]
) -> None:
    w: World = make_world()
    w.add_account(MEMBER, country)
    got, out = launch(w, MEMBER)
    assert (got, out["effect"], codes(out)) == (status, effect, expected)


def test_hong_kong_region_is_refused(make_world: Any) -> None:
    w: World = make_world()
    body = {"instanceType": "p5.48xlarge", "count": 1, "region": "ap-east-1", "imageId": "ami-12c6146b"}
    status, out = call(broker_event(HOME, body))
    assert status == 403 and codes(out) == {"REGION_RESTRICTED"}
    assert w.client("ec2").describe_instances()["Reservations"] == []


def _signer(w: World, reseller_country: str = "SG") -> tuple[Any, Any]:
    """A registered reseller 'harbour' (DynamoDB registry) serving MEMBER; returns (registry, key)."""
    registry = DynamoDBRegistry(w.client("dynamodb"), PREFIX)
    key = load_signing_key(generate_private_key_pem("ES256"))
    registry.put_reseller("harbour", "Harbour", reseller_country, hq_country=reseller_country,
                          parent_hq_country=reseller_country)  # fmt: skip
    registry.add_key("harbour", ResellerKey("h-1", "ES256", key.public_pem))
    w.directory.put(AccountOrigin(MEMBER, "SG", "SG", "SG", "none", "harbour"))
    return registry, key


def _attest(
    w: World, registry: Any, key: Any, ec: dict[str, Any], jti: str, age: float = 60, **extra: Any
) -> str:
    import time

    claims = build_claims(
        issuer="harbour", account=MEMBER, end_customer=EndCustomer("SG"), now=time.time() - age,
        valid_days=30, max_valid_days=90, audience="gpu-launch-enforcer", jti=jti,
    )  # fmt: skip
    claims["end_customer"] = ec
    claims.update(extra)
    token = sign_token(key, "h-1", claims)
    from enforcer.attestation.registry import StoredAttestation

    # stored as the intake would after verification; the handler re-verifies at decision time
    registry.put_attestation(StoredAttestation(MEMBER, jti, token, "harbour", "h-1", claims["iat"], claims["nbf"],
                                               claims["exp"], time.time()))  # fmt: skip
    return jti


def launch_with(w: World, ref: str | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {
        "instanceType": "p5.48xlarge",
        "count": 1,
        "region": REGION,
        "imageId": w.ami(MEMBER),
    }
    if ref:
        body["attestationId"] = ref
    return call(broker_event(MEMBER, body))


SG = {"country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "kyc_level": "verified"}


@pytest.mark.parametrize(
    ("ec", "expected"),
    [
        ({"country": "SG", "kyc_level": "verified"}, {"ATTESTATION_INCOMPLETE"}),
        ({**SG, "parent_hq_country": "ZZ"}, {"ATTESTATION_INCOMPLETE"}),
        ({**SG, "kyc_level": "none"}, {"KYC_NOT_VERIFIED"}),
        ({**SG, "parent_hq_country": "CN"}, {"END_CUSTOMER_RESTRICTED"}),
    ],
    ids=["no-hq", "made-up-parent", "kyc-none", "chinese-parent"],
)
def test_attestation_gaps_through_the_broker(make_world: Any, ec: dict[str, Any], expected: set[str]) -> None:
    w: World = make_world()
    registry, key = _signer(w)
    _attest(w, registry, key, ec, "t-1")
    status, out = launch_with(w)
    assert status == 403 and codes(out) == expected, out


def test_most_restrictive_supersedes_and_tag_through_the_broker(make_world: Any) -> None:
    w: World = make_world()
    registry, key = _signer(w)
    _attest(w, registry, key, {**SG, "parent_hq_country": "CN"}, "t-old", age=600)
    _attest(w, registry, key, SG, "t-new", age=60)
    status, out = launch_with(w, "t-new")  # the tag cannot choose the favourable one
    assert status == 403 and codes(out) == {"END_CUSTOMER_RESTRICTED"}
    _attest(w, registry, key, SG, "t-newer", age=30, supersedes="t-old")
    status, out = launch_with(w)
    assert status == 200 and out["effect"] == "allow", out
    status, out = launch_with(w, "t-old")  # a superseded attestation cannot be named
    assert status == 403 and codes(out) == {"ATTESTATION_INVALID"}


def _reseller_world(w: World, reseller_country: str) -> None:
    registry = DynamoDBRegistry(w.client("dynamodb"), PREFIX)
    pem = generate_private_key_pem("ES256")
    key = load_signing_key(pem)
    registry.put_reseller("harbour", "Harbour", reseller_country, hq_country=reseller_country,
                          parent_hq_country=reseller_country)  # fmt: skip
    registry.add_key("harbour", ResellerKey("h-1", "ES256", key.public_pem))
    origin = AccountOrigin(MEMBER, "SG", "SG", "SG", "none", "harbour")
    w.directory.put(origin)
    import time

    now = time.time()
    claims = build_claims(
        issuer="harbour", account=MEMBER, end_customer=EndCustomer("SG", "SG", "SG", "verified"),
        now=now - 60, valid_days=30, max_valid_days=90, audience="gpu-launch-enforcer",
    )  # fmt: skip
    submit_token(sign_token(key, "h-1", claims), w.directory, registry, now)


@pytest.mark.parametrize(("country", "status"), [("SG", 200), ("CN", 403)])
def test_reseller_registered_in_china_is_refused(make_world: Any, country: str, status: int) -> None:
    w: World = make_world()
    _reseller_world(w, country)
    got, out = launch(w, MEMBER)
    assert got == status, out
    if status == 403:
        assert codes(out) == {"RESELLER_RESTRICTED"}


def test_unknown_accelerator_from_describe_is_denied_and_alerted(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS reports an accelerator name the catalogue lacks: unknown (controlled), one metric + one log."""
    from moto.ec2.models.instance_types import InstanceTypeBackend

    w: World = make_world()
    entry = next(t for t in InstanceTypeBackend.instance_types if t.get("InstanceType") == "p5.48xlarge")
    gpu = json.loads(json.dumps(entry["GpuInfo"]))
    gpu["Gpus"][0]["Name"] = "R300"  # a name no catalogue entry has
    monkeypatch.setitem(entry, "GpuInfo", gpu)
    capsys.readouterr()
    status, out = launch(w, MEMBER)
    assert status == 403
    item = out["request"]["items"][0] if "request" in out else None
    assert item is None or item["chip_class"] == "unknown"
    printed = capsys.readouterr().out
    metrics = [
        json.loads(x) for x in printed.splitlines() if x.startswith("{") and '"UnknownAccelerator"' in x
    ]
    assert metrics and metrics[0]["accelerator"] == "GpuInfo/R300"
    assert w.rt.enforcer.catalog.unknown_accelerators["GpuInfo/R300"] >= 1
