"""``enforcer attest …`` and ``enforcer reseller …`` end to end, through the real ``enforcer`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from enforcer.attestation import LocalRegistry, generate_private_key_pem
from enforcer.cli import cli
from tests.test_attestation_support import ACC_X, ACC_Y, DAY, T0, rfc3339

RESELLER = "acme-cloud"


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.state = tmp_path / "state"

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, ["--state", str(self.state), *args], env=env, catch_exceptions=False)

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.exit_code == 0, r.output
        return r.stdout

    def setup(self) -> Path:
        key = self.dir / "acme.pem"
        pub = self.dir / "acme.pub"
        pub.write_text(self.ok("attest", "keygen", "--out", str(key)))
        self.ok("reseller", "add", RESELLER, "--public-key", str(pub), "--kid", "acme-2026", "--name", "Acme Cloud",
                "--country", "nl", "--hq-country", "NL", "--parent-hq-country", "NL")  # fmt: skip
        self.ok("account", "add", ACC_X, "--country", "NL", "--reseller", RESELLER, "--kyc", "verified")
        self.ok("account", "add", ACC_Y, "--country", "NL", "--reseller", RESELLER, "--kyc", "verified")
        return key

    def sign(self, key: Path, *extra: str, account: str = ACC_X, now: float = T0) -> Path:
        token = self.ok("attest", "sign", "--key", str(key), "--kid", "acme-2026", "--issuer", RESELLER,
                        "--account", account, "--end-customer-country", "nl", "--end-customer-hq-country", "NL",
                        "--end-customer-parent-hq-country", "NL", "--end-customer-kyc-level", "verified", "--end-use", "LLM fine-tuning",
                        "--now", rfc3339(now), *extra)  # fmt: skip
        file = self.dir / f"token-{account}-{now}-{len(extra)}.jwt"
        file.write_text(token)
        return file


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_full_flow(env: Env) -> None:
    key = env.setup()
    token_file = env.sign(key)
    inspected = env.run("attest", "inspect", str(token_file))
    assert inspected.exit_code == 0
    assert "UNVERIFIED" in inspected.stderr
    doc = json.loads(inspected.stdout)
    assert doc["UNVERIFIED"] is True
    assert doc["header"]["alg"] == "ES256" and doc["header"]["kid"] == "acme-2026"
    assert doc["claims"]["end_customer"] == {
        "country": "NL",
        "hq_country": "NL",
        "parent_hq_country": "NL",
        "kyc_level": "verified",
    }
    assert doc["claims"]["exp"] - doc["claims"]["nbf"] == 30 * DAY

    jti = env.ok("attest", "submit", str(token_file), "--now", rfc3339(T0 + 60)).strip()
    assert jti == doc["claims"]["jti"]
    again = env.run("attest", "submit", str(token_file), "--now", rfc3339(T0 + 60))
    assert again.exit_code == 0 and again.stdout.strip() == jti and "already stored" in again.stderr

    listed = json.loads(env.ok("attest", "list", "--account", ACC_X))
    assert [a["jti"] for a in listed] == [jti] and "token" not in listed[0]
    assert json.loads(env.ok("attest", "list", "--account", ACC_Y)) == []

    resellers = json.loads(env.ok("reseller", "list"))
    assert resellers[0]["reseller_id"] == RESELLER and resellers[0]["country"] == "NL"
    assert "public_key_pem" not in resellers[0]["keys"][0]

    # the stored attestation now feeds decisions through the wiring's provider
    from enforcer.attestation import local_provider
    from enforcer.model import AccountOrigin

    provider = local_provider(env.state / "registry")
    origin = AccountOrigin(ACC_X, "NL", reseller=RESELLER)
    assert provider.for_account(origin, T0 + 120).status == "valid"

    assert env.ok("reseller", "revoke-key", RESELLER, "acme-2026").startswith("reseller")
    assert provider.for_account(origin, T0 + 120).status == "key_revoked"
    revoked = env.run("attest", "submit", str(token_file), "--now", rfc3339(T0 + 60))
    assert revoked.exit_code == 2 and "ATTESTATION_KEY_REVOKED:" in revoked.stderr


def test_submit_error_paths(env: Env) -> None:
    key = env.setup()
    expired = env.run("attest", "submit", str(env.sign(key)), "--now", rfc3339(T0 + 31 * DAY))
    assert expired.exit_code == 2
    assert "ATTESTATION_EXPIRED: token expired at 2026-01-31T00:00:00Z" in expired.stderr
    unknown = env.run("attest", "submit", str(env.sign(key, account="999999999999")), "--now", rfc3339(T0))
    assert unknown.exit_code == 2 and "ACCOUNT_UNKNOWN" in unknown.stderr
    mismatch = env.run("attest", "submit", str(env.sign(key)), "--account", ACC_Y, "--now", rfc3339(T0))
    assert mismatch.exit_code == 2 and "ATTESTATION_ACCOUNT_MISMATCH" in mismatch.stderr
    missing = env.run("attest", "submit", str(env.dir / "nope.jwt"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    assert LocalRegistry(env.state / "registry").list_attestations() == []


def test_sign_options(env: Env) -> None:
    key = env.setup()
    assert env.run("attest", "sign", "--key", str(key), "--kid", "k", "--issuer", RESELLER, "--account", ACC_X,
                   "--end-customer-country", "NL", "--valid-days", "91").exit_code == 2  # fmt: skip
    capped = env.run("attest", "sign", "--key", str(key), "--kid", "k", "--issuer", RESELLER, "--account", ACC_X,
                     "--end-customer-country", "NL", "--valid-days", "20",
                     env={"ENFORCER_ATTEST_MAX_VALIDITY_DAYS": "14"})  # fmt: skip
    assert capped.exit_code == 2 and "between 1 and 14" in capped.stderr
    for bad in (["--account", "12345"], ["--end-customer-country", "Netherlands"],
                ["--end-customer-kyc-level", "whatever"]):  # fmt: skip
        args = {"--account": ACC_X, "--end-customer-country": "NL"}
        args.update(dict(zip(bad[::2], bad[1::2], strict=True)))
        flat = [x for kv in args.items() for x in kv]
        r = env.run("attest", "sign", "--key", str(key), "--kid", "k", "--issuer", RESELLER, *flat)
        assert r.exit_code == 2 and "Traceback" not in r.output, bad
    ed_key = env.dir / "ed.pem"
    env.ok("attest", "keygen", "--out", str(ed_key), "--alg", "EdDSA")
    token = env.ok("attest", "sign", "--key", str(ed_key), "--kid", "ed", "--issuer", RESELLER, "--account", ACC_X,
                   "--end-customer-country", "NL", "--audience", "other")  # fmt: skip
    inspected = CliRunner().invoke(cli, ["--state", str(env.state), "attest", "inspect", "-"], input=token)
    doc = json.loads(inspected.stdout)
    assert doc["header"]["alg"] == "EdDSA" and doc["claims"]["aud"] == "other"


def test_keygen_refuses_to_overwrite(env: Env) -> None:
    key = env.dir / "k.pem"
    key.write_bytes(b"precious")
    r = env.run("attest", "keygen", "--out", str(key))
    assert r.exit_code == 2 and key.read_bytes() == b"precious"


def test_inspect_malformed(env: Env) -> None:
    half = env.dir / "half.jwt"
    half.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
    r = env.run("attest", "inspect", str(half))
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["header"] == {"alg": "none"} and doc["problems"]
    junk = env.dir / "junk.jwt"
    junk.write_text("@@@")
    assert env.run("attest", "inspect", str(junk)).exit_code == 2


def test_reseller_errors(env: Env) -> None:
    env.setup()
    priv = env.dir / "priv.pem"
    priv.write_bytes(generate_private_key_pem("ES256"))
    r = env.run("reseller", "add", "other", "--public-key", str(priv), "--kid", "x")
    assert r.exit_code == 2 and "public key" in r.stderr
    pub = env.dir / "acme.pub"
    dup = env.run("reseller", "add", RESELLER, "--public-key", str(pub), "--kid", "acme-2026")
    assert dup.exit_code == 2 and "already has a key" in dup.stderr
    assert env.run("reseller", "revoke-key", RESELLER, "nope").exit_code == 2
    assert env.run("reseller", "revoke-key", "nobody", "acme-2026").exit_code == 2
    bad_id = env.run("reseller", "add", "../x", "--public-key", str(pub), "--kid", "k")
    assert bad_id.exit_code == 2
    rotated = env.run("reseller", "add", RESELLER, "--public-key", str(pub), "--kid", "acme-2027",
                      "--not-after", "2027-12-31T00:00:00Z")  # fmt: skip
    assert rotated.exit_code == 0
    keys = {k["kid"]: k for k in json.loads(env.ok("reseller", "list"))[0]["keys"]}
    assert keys["acme-2027"]["not_after"] is not None and keys["acme-2026"]["not_after"] is None
