"""Forged, tampered and misused attestations.

Every case must give the right status through ``verify_token`` AND make ``attest submit`` exit 2
with the matching reason code; none may crash. Each runs on both registry backends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enforcer.attestation import (
    MAX_TOKEN_BYTES,
    TOKEN_TYPE,
    generate_private_key_pem,
    load_signing_key,
    reason_code,
    sign_token,
    verify_token,
)
from enforcer.model import ATTESTATION_STATUSES
from tests.test_attestation_support import (
    ACC_X,
    ACC_Y,
    ACC_Z,
    BACKENDS,
    DAY,
    RA,
    T0,
    World,
    b64u,
    b64u_json,
    cli_invoke,
    make_world,
    raw_sign,
    registry_backend,
    rfc3339,
    unb64u,
)


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        yield make_world(registry)


@dataclass
class Case:
    """A hostile token, the account it is presented for, when, and the status it must get."""

    token: str
    account: str
    now: float
    status: str


def _alg_none(w: World) -> Case:
    header = b64u_json({"alg": "none", "kid": "a-es", "typ": TOKEN_TYPE})
    payload = b64u_json(w.claims())
    # both shapes: empty signature (the classic) and some bytes
    return Case(f"{header}.{payload}.", ACC_X, T0, "invalid")


def _alg_none_with_sig(w: World) -> Case:
    header = b64u_json({"alg": "none", "kid": "a-es", "typ": TOKEN_TYPE})
    return Case(f"{header}.{b64u_json(w.claims())}.{b64u(b'x' * 64)}", ACC_X, T0, "invalid")


def _hs256_with_public_pem(w: World) -> Case:
    header = b64u_json({"alg": "HS256", "kid": "a-es", "typ": TOKEN_TYPE})
    payload = b64u_json(w.claims())
    secret = w.keys["a-es"].public_pem.encode()
    sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return Case(f"{header}.{payload}.{b64u(sig)}", ACC_X, T0, "invalid")


def _alg_swapped_to_other_pinned(w: World) -> Case:
    # header claims EdDSA for the ES256 key a-es, signed with reseller A's Ed25519 key
    header = b64u_json({"alg": "EdDSA", "kid": "a-es", "typ": TOKEN_TYPE})
    return Case(raw_sign(w.pems["a-ed"], header, b64u_json(w.claims())), ACC_X, T0, "invalid")


def _flipped_signature_byte(w: World) -> Case:
    h, p, s = w.token().split(".")
    sig = bytearray(unb64u(s))
    sig[10] ^= 0x01
    return Case(f"{h}.{p}.{b64u(bytes(sig))}", ACC_X, T0, "invalid")


def _payload_edited(w: World) -> Case:
    h, p, s = w.token().split(".")
    claims = json.loads(unb64u(p))
    claims["end_customer"]["country"] = "CN"
    return Case(f"{h}.{b64u_json(claims)}.{s}", ACC_X, T0, "invalid")


def _other_resellers_key_with_our_kid(w: World) -> Case:
    # reseller B's ES256 key signs a token that names reseller A and A's kid
    return Case(sign_token(w.keys["b-es"], "a-es", w.claims()), ACC_X, T0, "invalid")


def _attacker_key_with_our_kid(w: World) -> Case:
    attacker = load_signing_key(generate_private_key_pem("ES256"))
    return Case(sign_token(attacker, "a-es", w.claims()), ACC_X, T0, "invalid")


def _reseller_a_token_on_reseller_b_account(w: World) -> Case:
    return Case(w.token(account=ACC_Z), ACC_Z, T0, "unknown_issuer")


def _reseller_b_token_claiming_reseller_a(w: World) -> Case:
    # B signs with its own kid but writes iss = A: kid does not belong to A
    return Case(sign_token(w.keys["b-es"], "b-es", w.claims(issuer=RA)), ACC_X, T0, "unknown_issuer")


def _replay_x_on_y(w: World) -> Case:
    return Case(w.token(account=ACC_X), ACC_Y, T0, "account_mismatch")


def _expired(w: World) -> Case:
    return Case(w.token(now=T0 - 40 * DAY, valid_days=30), ACC_X, T0, "expired")


def _not_yet_valid(w: World) -> Case:
    return Case(w.token(now=T0 + DAY), ACC_X, T0, "not_yet_valid")


def _revoked_key(w: World) -> Case:
    token = w.token()
    w.registry.revoke_key(RA, "a-es", T0 - 10)
    return Case(token, ACC_X, T0, "key_revoked")


def _unknown_kid(w: World) -> Case:
    stranger = load_signing_key(generate_private_key_pem("ES256"))
    return Case(sign_token(stranger, "a-unknown", w.claims()), ACC_X, T0, "unknown_issuer")


def _oversized(w: World) -> Case:
    h, p, s = w.token().split(".")
    return Case(f"{h}.{p}{'A' * MAX_TOKEN_BYTES}.{s}", ACC_X, T0, "invalid")


def _oversized_but_well_signed(w: World) -> Case:
    header = b64u_json({"alg": "ES256", "kid": "a-es", "typ": TOKEN_TYPE})
    payload = b64u_json(w.claims(end_use="x" * (MAX_TOKEN_BYTES)))
    return Case(raw_sign(w.pems["a-es"], header, payload), ACC_X, T0, "invalid")


def _garbage(w: World) -> Case:
    return Case("not a token at all !!! %%% \u00e9", ACC_X, T0, "invalid")


def _garbage_three_segments(w: World) -> Case:
    return Case("a.b.c", ACC_X, T0, "invalid")


def _unencoded_payload_b64_false(w: World) -> Case:
    header = b64u_json({"alg": "ES256", "kid": "a-es", "typ": TOKEN_TYPE, "b64": False, "crit": ["b64"]})
    return Case(raw_sign(w.pems["a-es"], header, b64u_json(w.claims())), ACC_X, T0, "invalid")


def _embedded_jwk_header(w: World) -> Case:
    attacker = load_signing_key(generate_private_key_pem("ES256"))
    header = b64u_json(
        {"alg": "ES256", "kid": "a-es", "typ": TOKEN_TYPE, "jwk": attacker.key.as_dict(private=False)}
    )
    pem = attacker.key.as_pem(private=True)
    return Case(raw_sign(pem, header, b64u_json(w.claims())), ACC_X, T0, "invalid")


def _duplicate_claim(w: World) -> Case:
    header = b64u_json({"alg": "ES256", "kid": "a-es", "typ": TOKEN_TYPE})
    body = json.dumps(w.claims(), separators=(",", ":"))
    body = body[:-1] + f',"sub":"{ACC_Y}"}}'
    return Case(raw_sign(w.pems["a-es"], header, b64u(body.encode())), ACC_Y, T0, "invalid")


def _wrong_audience(w: World) -> Case:
    return Case(w.token(audience="someone-else"), ACC_X, T0, "invalid")


def _validity_too_long(w: World) -> Case:
    return Case(w.token(valid_days=365), ACC_X, T0, "invalid")


def _clear_personal_data_in_claims(w: World) -> Case:
    # A clear ``name``/``aliases`` is accepted for restricted-party screening (issue 14: screened, then
    # stripped from the input and never logged); any other member (an e-mail, a phone) stays refused.
    claims = w.claims()
    claims["end_customer"]["email"] = "ceo@example.com"
    return Case(sign_token(w.keys["a-es"], "a-es", claims), ACC_X, T0, "invalid")


def _missing_typ(w: World) -> Case:
    header = b64u_json({"alg": "ES256", "kid": "a-es"})
    return Case(raw_sign(w.pems["a-es"], header, b64u_json(w.claims())), ACC_X, T0, "invalid")


CASES: dict[str, Callable[[World], Case]] = {
    "alg_none": _alg_none,
    "alg_none_with_signature": _alg_none_with_sig,
    "hs256_public_pem_as_secret": _hs256_with_public_pem,
    "header_alg_differs_from_registered": _alg_swapped_to_other_pinned,
    "flipped_signature_byte": _flipped_signature_byte,
    "payload_edited_after_signing": _payload_edited,
    "other_reseller_key_with_our_kid": _other_resellers_key_with_our_kid,
    "attacker_key_with_our_kid": _attacker_key_with_our_kid,
    "reseller_a_token_on_reseller_b_account": _reseller_a_token_on_reseller_b_account,
    "kid_not_of_issuer": _reseller_b_token_claiming_reseller_a,
    "replay_account_x_on_y": _replay_x_on_y,
    "expired": _expired,
    "not_yet_valid": _not_yet_valid,
    "revoked_key": _revoked_key,
    "unknown_kid": _unknown_kid,
    "oversized": _oversized,
    "oversized_well_signed": _oversized_but_well_signed,
    "garbage_not_base64": _garbage,
    "garbage_three_segments": _garbage_three_segments,
    "b64_false_header": _unencoded_payload_b64_false,
    "embedded_jwk_header": _embedded_jwk_header,
    "duplicate_claim": _duplicate_claim,
    "wrong_audience": _wrong_audience,
    "validity_longer_than_cap": _validity_too_long,
    "clear_personal_data_in_end_customer": _clear_personal_data_in_claims,
    "missing_typ": _missing_typ,
}


@pytest.mark.parametrize("name", list(CASES))
def test_verify_token_rejects(world: World, name: str) -> None:
    case = CASES[name](world)
    result = verify_token(case.token, world.origin(case.account), world.registry, case.now)
    assert result.status == case.status, result.detail
    assert result.status in ATTESTATION_STATUSES
    assert result.detail
    if case.status == "invalid":
        assert result.claims == {}  # nothing unverified leaks into the policy input


@pytest.mark.parametrize("name", list(CASES))
def test_submit_rejects(world: World, tmp_path: Path, name: str) -> None:
    case = CASES[name](world)
    file = tmp_path / "token.jwt"
    file.write_text(case.token + "\n", encoding="utf-8")
    args = ["attest", "submit", str(file), "--now", rfc3339(case.now), "--account", case.account]
    result = cli_invoke(world, tmp_path, args)
    assert result.exit_code == 2, result.output
    assert f"{reason_code(case.status)}:" in result.output
    assert "Traceback" not in result.output
    assert world.registry.attestations_for(case.account) == []


def test_control_case_is_accepted(world: World, tmp_path: Path) -> None:
    """The untampered token behind the cases verifies and is stored (the suite tests what it claims)."""
    token = world.token()
    assert verify_token(token, world.origin(ACC_X), world.registry, T0).status == "valid"
    file = tmp_path / "token.jwt"
    file.write_text(token)
    result = cli_invoke(world, tmp_path, ["attest", "submit", str(file), "--now", rfc3339(T0)])
    assert result.exit_code == 0, result.output
    jti = json.loads(unb64u(token.split(".")[1]))["jti"]
    assert result.output.strip() == jti
    assert [a.jti for a in world.registry.attestations_for(ACC_X)] == [jti]
