"""Policy bundle integrity: OPA-format ``.signatures.json``, tamper detection, the env-driven factory check."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from enforcer.policy import load_bundle
from enforcer.policy.signing import (
    SIGNATURES_FILE,
    PolicySignatureError,
    file_hash,
    load_verified_bundle,
    sign_bundle,
    verify_bundle,
)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = "gpu/launch/launch.rego"
CONFIG = "gpu/config/data.json"


def b64(data: bytes) -> bytes:
    return urlsafe_b64encode(data)


def keypair(kind: str = "ES256") -> tuple[bytes, bytes]:
    priv: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if kind == "ES256":
        priv = ec.generate_private_key(ec.SECP256R1())
    elif kind == "EdDSA":
        priv = ed25519.Ed25519PrivateKey.generate()
    elif kind == "P384":
        priv = ec.generate_private_key(ec.SECP384R1())
    else:
        priv = rsa.generate_private_key(65537, 2048)
    pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, pub


@pytest.fixture(scope="module")
def es_keys() -> tuple[bytes, bytes]:
    return keypair("ES256")


@pytest.fixture
def signed_dir(tmp_path: Path, es_keys: tuple[bytes, bytes]) -> Path:
    d = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", d)
    sign_bundle(d, es_keys[0], "policy-key-1")
    return d


def flip_byte(path: Path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    assert raw.count(old) >= 1 and len(old) == len(new)
    path.write_bytes(raw.replace(old, new, 1))


def refused(d: Path, pub: bytes) -> PolicySignatureError:
    with pytest.raises(PolicySignatureError) as ei:
        load_verified_bundle(d, pub)
    assert ei.value.code == "POLICY_SIGNATURE_INVALID"
    return ei.value


# -- format ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_signature_file_is_opa_format_and_untouched_dir_loads(tmp_path: Path, alg: str) -> None:
    pem, pub = keypair(alg)
    d = tmp_path / "p"
    shutil.copytree(ROOT / "policies", d)
    target = sign_bundle(d, pem, "k1", iat=1_700_000_000)
    doc = json.loads(target.read_text())
    assert list(doc) == ["signatures"] and len(doc["signatures"]) == 1
    h_seg, p_seg, _ = doc["signatures"][0].split(".")
    header = json.loads(urlsafe_b64decode(h_seg.encode()))
    payload = json.loads(urlsafe_b64decode(p_seg.encode()))
    assert header == {"alg": alg, "typ": "JWT", "kid": "k1"}
    assert payload["keyid"] == "k1" and payload["iat"] == 1_700_000_000
    names = {f["name"] for f in payload["files"]}
    assert {LAUNCH, CONFIG, "gpu/launch/launch_test.rego"} <= names
    assert all(f["algorithm"] == "SHA-256" and len(f["hash"]) == 64 for f in payload["files"])
    bundle = load_verified_bundle(d, pub)
    assert bundle.revision == load_bundle(d).revision
    assert set(verify_bundle(d, pub, keyid="k1")) == names


def test_json_hash_follows_opa_normalisation() -> None:
    a = file_hash("x/data.json", b'{"b": [1, 2.50, "x<&>"], "a": {"z": null, "y": true}}')
    b = file_hash("x/data.json", b'{\n  "a": {"y": true, "z": null},\n  "b": [1,2.50,"x<&>"]\n}\n')
    assert a == b  # key order and whitespace are not content
    assert file_hash("x/data.json", b'{"a": 2.5}') != file_hash(
        "x/data.json", b'{"a": 2.50}'
    )  # numbers as written
    # OPA's encoding: keys sorted, no spaces, Go string escaping without HTML escaping.
    expected = hashlib.sha256(b'{"a":"\\u2028<\\n>","b":[1e3,false]}').hexdigest()
    assert file_hash("d/data.json", '{"b":[1e3,false],"a":"\u2028<\\n>"}'.encode()) == expected
    assert file_hash("m.rego", b"package m\n") == hashlib.sha256(b"package m\n").hexdigest()
    with pytest.raises(PolicySignatureError, match="not valid JSON"):
        file_hash("d/data.json", b"{nope")


# -- tampering ---------------------------------------------------------------------------------
def test_one_byte_changed_in_rego_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    flip_byte(signed_dir / LAUNCH, b"deny contains", b"deny c0ntains")
    err = refused(signed_dir, es_keys[1])
    assert err.file == LAUNCH and "changed" in str(err)


def test_one_byte_changed_in_data_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    flip_byte(signed_dir / CONFIG, b"1000000", b"9000000")
    err = refused(signed_dir, es_keys[1])
    assert err.file == CONFIG and CONFIG in str(err)


def test_whitespace_only_change_in_data_is_not_content(
    signed_dir: Path, es_keys: tuple[bytes, bytes]
) -> None:
    path = signed_dir / CONFIG
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    load_verified_bundle(signed_dir, es_keys[1])  # OPA hashes JSON by value, not by layout


def test_added_unsigned_rego_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    (signed_dir / "gpu" / "launch" / "override.rego").write_text(
        'package gpu.launch\n\nimport rego.v1\n\nextra contains "x" if true\n'
    )
    err = refused(signed_dir, es_keys[1])
    assert err.file == "gpu/launch/override.rego" and "unsigned" in str(err)


def test_added_unsigned_data_file_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    (signed_dir / "gpu" / "extra").mkdir()
    (signed_dir / "gpu" / "extra" / "data.json").write_text("{}")
    assert refused(signed_dir, es_keys[1]).file == "gpu/extra/data.json"


def test_deleted_signed_file_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    (signed_dir / "gpu" / "launch" / "launch_test.rego").unlink()
    err = refused(signed_dir, es_keys[1])
    assert err.file == "gpu/launch/launch_test.rego" and "missing" in str(err)


def test_files_the_loader_ignores_need_no_signature(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    (signed_dir / "README.md").write_text("notes")
    (signed_dir / ".git").mkdir()
    (signed_dir / ".git" / "x.rego").write_text("package hidden\n")
    load_verified_bundle(signed_dir, es_keys[1])


# -- keys and tokens ---------------------------------------------------------------------------
def test_unsigned_dir_is_refused(tmp_path: Path, es_keys: tuple[bytes, bytes]) -> None:
    d = tmp_path / "p"
    shutil.copytree(ROOT / "policies", d)
    err = refused(d, es_keys[1])
    assert err.file == SIGNATURES_FILE and "not signed" in str(err)


def test_other_key_is_refused(signed_dir: Path) -> None:
    assert "does not verify" in str(refused(signed_dir, keypair("ES256")[1]))
    assert refused(signed_dir, keypair("EdDSA")[1]).file == SIGNATURES_FILE


def test_wrong_kid_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(PolicySignatureError, match="expected 'other'"):
        verify_bundle(signed_dir, es_keys[1], keyid="other")


def test_hmac_with_public_key_as_secret_is_refused(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    """Algorithm confusion: the algorithm comes from the key type, never from the token."""
    sig_path = signed_dir / SIGNATURES_FILE
    token = json.loads(sig_path.read_text())["signatures"][0]
    payload = urlsafe_b64decode(token.split(".")[1].encode())
    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "policy-key-1"}).encode()) + b"." + b64(payload)
    )
    mac = hmac.new(es_keys[1], signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + b64(mac)).decode()
    sig_path.write_text(json.dumps({"signatures": [forged]}))
    assert "does not verify" in str(refused(signed_dir, es_keys[1]))


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"signatures": []}',
        '{"signatures": ["a.b.c", "d.e.f"]}',
        '{"signatures": ["x"], "more": 1}',
    ],
)
def test_malformed_signatures_file_is_refused(
    signed_dir: Path, es_keys: tuple[bytes, bytes], content: str
) -> None:
    (signed_dir / SIGNATURES_FILE).write_text(content)
    assert refused(signed_dir, es_keys[1]).file == SIGNATURES_FILE


@pytest.mark.parametrize("kind", ["P384", "RSA"])
def test_unsupported_key_types_are_refused(tmp_path: Path, kind: str) -> None:
    pem, _ = keypair(kind)
    with pytest.raises(PolicySignatureError, match="P-256"):
        sign_bundle(ROOT / "policies", pem, "k")


def test_bad_kid_is_refused(es_keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(PolicySignatureError, match="key id"):
        sign_bundle(ROOT / "policies", es_keys[0], "bad kid with spaces")


# -- wiring: factory env and CLI ---------------------------------------------------------------
def test_factory_honours_policy_pubkey_env(
    signed_dir: Path, es_keys: tuple[bytes, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from enforcer.policy.factory import make_engine

    key_file = tmp_path / "policy-pub.pem"
    key_file.write_bytes(es_keys[1])
    monkeypatch.setenv("ENFORCER_POLICY_PUBKEY", str(key_file))
    assert make_engine("embedded", signed_dir).revision == load_bundle(signed_dir).revision
    monkeypatch.setenv("ENFORCER_POLICY_PUBKEY", es_keys[1].decode())  # inline PEM works too
    make_engine("embedded", signed_dir)
    flip_byte(signed_dir / LAUNCH, b"deny contains", b"deny c0ntains")
    with pytest.raises(PolicySignatureError, match=r"launch\.rego"):
        make_engine("embedded", signed_dir)
    monkeypatch.setenv("ENFORCER_POLICY_PUBKEY", str(tmp_path / "missing.pem"))
    with pytest.raises(PolicySignatureError, match="cannot read"):
        make_engine("embedded", signed_dir)


def test_sign_and_verify_cli(tmp_path: Path, es_keys: tuple[bytes, bytes]) -> None:
    from enforcer.cli.policy import sign_command, verify_command

    d = tmp_path / "p"
    shutil.copytree(ROOT / "policies", d)
    (tmp_path / "k.pem").write_bytes(es_keys[0])
    (tmp_path / "pub.pem").write_bytes(es_keys[1])
    runner = CliRunner()
    res = runner.invoke(sign_command, [str(d), "--key", str(tmp_path / "k.pem"), "--kid", "ops-2026"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["kid"] == "ops-2026" and (d / SIGNATURES_FILE).is_file()
    res = runner.invoke(verify_command, [str(d), "--pubkey", str(tmp_path / "pub.pem"), "--kid", "ops-2026"])
    assert res.exit_code == 0 and json.loads(res.output)["verified"] is True
    (d / "gpu" / "launch" / "sneaky.rego").write_text("package sneaky\n")
    res = runner.invoke(verify_command, [str(d), "--pubkey", str(tmp_path / "pub.pem")])
    assert res.exit_code == 2 and "gpu/launch/sneaky.rego" in res.output and "Traceback" not in res.output
    res = runner.invoke(sign_command, [str(d), "--key", str(tmp_path / "nokey.pem"), "--kid", "k"])
    assert res.exit_code == 2


def test_push_refuses_a_tampered_dir_before_uploading(signed_dir: Path, es_keys: tuple[bytes, bytes]) -> None:
    from enforcer.policy.push import push_policies
    from tests.opa_server import OpaTestServer

    with OpaTestServer() as server:
        push_policies(signed_dir, server.url, public_key_pem=es_keys[1])
        modules = [p for p in signed_dir.rglob("*.rego") if not p.stem.endswith("_test")]
        assert server.requests[("PUT", "policies")] == len(modules)  # test modules stay home by default
        flip_byte(signed_dir / CONFIG, b"1000000", b"9000000")
        server.requests.clear()
        with pytest.raises(PolicySignatureError, match=CONFIG):
            push_policies(signed_dir, server.url, public_key_pem=es_keys[1])
        assert sum(server.requests.values()) == 0
