"""The attestation intake handler: tokens are verified before they are stored; the guard then uses them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enforcer.attestation import (
    DEFAULT_AUDIENCE,
    DynamoDBRegistry,
    EndCustomer,
    ResellerKey,
    build_claims,
    generate_private_key_pem,
    load_signing_key,
    sign_token,
)
from lambdas import attestation_intake, guard
from tests.lambda_env import PREFIX, LambdaContext, World, run_instances_event, world_factory

CTX = LambdaContext(function_name="gpu-attestation-intake")
RESELLER_ACCOUNT = "222233334444"


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


@pytest.fixture
def reseller(make_world: Any) -> tuple[World, Any]:
    """A world with reseller ``acme`` (ES256 key ``k1``) selling account RESELLER_ACCOUNT."""
    w: World = make_world()
    key = load_signing_key(generate_private_key_pem("ES256"))
    registry = DynamoDBRegistry(w.client("dynamodb"), PREFIX)
    registry.put_reseller("acme", "Acme Cloud", "SG", hq_country="SG", parent_hq_country="SG")
    registry.add_key("acme", ResellerKey("k1", "ES256", key.public_pem, created_at=time.time()))
    w.add_account(RESELLER_ACCOUNT, "SG", kyc="none", reseller="acme")
    return w, key


def token(
    key: Any, country: str = "SG", now: float | None = None, days: int = 30, account: str = RESELLER_ACCOUNT
) -> str:
    claims = build_claims(
        issuer="acme",
        account=account,
        end_customer=EndCustomer(country, country, country, "verified"),
        now=time.time() if now is None else now,
        valid_days=days,
        max_valid_days=90,
        audience=DEFAULT_AUDIENCE,
    )
    return sign_token(key, "k1", claims)


def submit(tok: Any, *, b64: bool = False) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"token": tok})
    event = {"resource": "/attestations", "httpMethod": "POST", "body": body, "isBase64Encoded": False}
    if b64:
        event.update(body=base64.b64encode(body.encode()).decode(), isBase64Encoded=True)
    resp = attestation_intake.handler(event, CTX)
    return resp["statusCode"], json.loads(resp["body"])


def test_valid_attestation_is_stored_once(reseller: tuple[World, Any]) -> None:
    w, key = reseller
    tok = token(key)
    status, out = submit(tok)
    assert status == 201 and out["account_id"] == RESELLER_ACCOUNT and out["issuer"] == "acme"
    again, out2 = submit(tok, b64=True)
    assert again == 200 and out2["stored"] is False and out2["jti"] == out["jti"]
    stored = DynamoDBRegistry(w.client("dynamodb"), PREFIX).attestations_for(RESELLER_ACCOUNT)
    assert [a.jti for a in stored] == [out["jti"]]


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda k: token(k, now=time.time() - 40 * 86400), "ATTESTATION_EXPIRED"),
        (lambda k: token(k, account="999999999999"), "ACCOUNT_UNKNOWN"),
        (lambda k: token(k)[:-8] + "AAAAAAAA", "ATTESTATION_INVALID"),
        (lambda k: "not.a.jws", "ATTESTATION_INVALID"),
        (lambda k: token(load_signing_key(generate_private_key_pem("ES256"))), "ATTESTATION_INVALID"),
    ],
)
def test_invalid_attestations_are_refused_and_not_stored(
    reseller: tuple[World, Any], make_token: Any, code: str
) -> None:
    w, key = reseller
    status, out = submit(make_token(key))
    assert status == 422 and out["code"] == code
    assert DynamoDBRegistry(w.client("dynamodb"), PREFIX).attestations_for(RESELLER_ACCOUNT) == []


def test_malformed_body_is_a_400(reseller: tuple[World, Any]) -> None:
    status, out = submit(12345)
    assert status == 400 and out["code"] == "BAD_INPUT"


def test_guard_uses_stored_attestations(reseller: tuple[World, Any]) -> None:
    w, key = reseller
    # the reseller account is reached like any member account: launch there through the assumed role
    before = w.launch(account=RESELLER_ACCOUNT)
    r = guard.handler(run_instances_event(before, RESELLER_ACCOUNT, instanceType="p5.48xlarge"), CTX)[
        "results"
    ][0]
    assert r["effect"] == "deny" and "ATTESTATION_MISSING" in r["reasons"]

    assert submit(token(key, country="SG"))[0] == 201
    after = w.launch(account=RESELLER_ACCOUNT)
    r = guard.handler(run_instances_event(after, RESELLER_ACCOUNT, instanceType="p5.48xlarge"), CTX)[
        "results"
    ][0]
    assert r["effect"] == "allow", r
    assert w.state(after["Instances"][0]["InstanceId"], RESELLER_ACCOUNT) == "running"
