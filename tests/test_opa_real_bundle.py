"""Bundles a real OPA understands: ``enforcer policy build`` -> ``opa run --bundle --verification-key``.

The real server loads our signed bundle and decides with it; it refuses a bundle with any file changed,
an unsigned one, one signed by another key, and one whose manifest was edited. The REST engine records
the revision the server reports (``?provenance=true``), warning when it differs from the local one.
``policy push`` leaves test modules at home unless asked.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from enforcer.audit.record import build_record
from enforcer.cli import cli
from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
from enforcer.policy.bundle import build_bundle
from enforcer.policy.opa_rest import OpaRestEngine
from tests.opa_real import POLICIES, RealOpa, opa_version

US = AccountOrigin("111122223333", "US", "US", "US", "verified")
KID = "ops-2026"


def _pem(key: Any) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    out: dict[str, Path] = {}
    for name, key in (
        ("es", ec.generate_private_key(ec.SECP256R1())),
        ("other", ec.generate_private_key(ec.SECP256R1())),
    ):
        private, public = _pem(key)
        (d / f"{name}.pem").write_bytes(private)
        (d / f"{name}.pub").write_bytes(public)
        out[name], out[f"{name}.pub"] = d / f"{name}.pem", d / f"{name}.pub"
    private, public = _pem(ed25519.Ed25519PrivateKey.generate())
    (d / "ed.pem").write_bytes(private)
    (d / "ed.pub").write_bytes(public)
    out["ed"], out["ed.pub"] = d / "ed.pem", d / "ed.pub"
    return out


def verifying(bundle: Path, pub: Path, alg: str = "ES256", kid: str = KID) -> RealOpa:
    return RealOpa(
        [bundle],
        ["--bundle", "--verification-key", str(pub), "--verification-key-id", kid, "--signing-alg", alg],
    )


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> Path:
    """Copy a bundle archive, replacing (or, with None, dropping) members."""
    files = members(src)
    for name, data in change.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dst.write_bytes(buf.getvalue())
    return dst


def refused(bundle: Path, pub: Path, alg: str = "ES256") -> str:
    """Start a verifying OPA on ``bundle``; assert it refuses to run; return its log."""
    opa = verifying(bundle, pub, alg)
    opa.start(expect_ready=False)
    try:
        rc = opa.wait_exit(30)
    finally:
        opa.stop()
    assert rc != 0, "OPA must refuse this bundle"
    return opa.log.decode(errors="replace")


def req(itype: str = "p5.48xlarge") -> LaunchRequest:
    return LaunchRequest(
        "cloudtrail", "ec2:RunInstances", US.account_id, "us-east-1", items=[LaunchItem(itype, 1)]
    )


# -- accepted ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "alg"), [("es", "ES256"), ("ed", "EdDSA")])
def test_real_opa_loads_our_signed_bundle_and_reports_its_revision(
    tmp_path: Path, keys: dict[str, Path], key: str, alg: str, make_enforcer: Any, bundle: Any, caplog: Any
) -> None:
    out = tmp_path / "bundle.tar.gz"
    res = CliRunner().invoke(
        cli, ["policy", "build", str(POLICIES), "-o", str(out), "--signing-key", str(keys[key]), "--kid", KID]
    )
    assert res.exit_code == 0, res.output
    built = json.loads(res.output)
    assert built["revision"] == bundle.revision and built["roots"] == ["gpu"] and built["signed"]
    assert not any(f.endswith("_test.rego") for f in members(out)), "test modules stay out by default"
    with verifying(out, keys[f"{key}.pub"], alg) as opa:
        sys_bundles = requests.get(opa.url + "/v1/data/system/bundles", timeout=5).json()["result"]
        assert [b["manifest"]["revision"] for b in sys_bundles.values()] == [bundle.revision]
        engine = OpaRestEngine(opa.url, bundle.revision, timeout=5.0)
        with caplog.at_level(logging.WARNING, "enforcer.policy.opa"):
            d = make_enforcer([US], engine=engine).decide(req())
        assert d.effect == "allow" and d.policy_revision == bundle.revision
        assert engine.revision_mismatches == 0 and not caplog.records
        # The Rego tests are not in the production bundle: querying one is undefined.
        with pytest.raises(Exception, match="undefined"):
            engine.eval_path("gpu.launch_test.test_verified_us_direct_allowed")
        engine.close()


def test_revision_the_server_reports_is_recorded_with_a_warning_when_it_differs(
    tmp_path: Path, keys: dict[str, Path], make_enforcer: Any, bundle: Any, caplog: Any
) -> None:
    out = build_bundle(
        POLICIES, tmp_path / "b.tar.gz", keys["es"].read_bytes(), KID, revision="release-42"
    ).path
    with verifying(out, keys["es.pub"]) as opa:
        engine = OpaRestEngine(opa.url, bundle.revision, timeout=5.0)
        with caplog.at_level(logging.WARNING, "enforcer.policy.opa"):
            decisions = [make_enforcer([US], engine=engine).decide(req()) for _ in range(3)]
        engine.close()
    assert {d.policy_revision for d in decisions} == {"release-42"}
    record = build_record(decisions[0])
    # The server's own OPA version (from the answer's provenance) goes with it: export labels.version.
    assert record["policy"] == {"revision": "release-42", "engine": "opa", "engine_version": opa_version()}
    assert engine.revision_mismatches == 3 and engine.local_revision == bundle.revision
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "release-42" in warnings[0] and bundle.revision in warnings[0]


def test_server_without_a_bundle_records_the_local_revision(make_enforcer: Any, bundle: Any) -> None:
    with RealOpa([]) as opa:
        res = CliRunner().invoke(cli, ["policy", "push", str(POLICIES), "--opa-url", opa.url])
        assert res.exit_code == 0, res.output
        ids = sorted(p["id"] for p in requests.get(opa.url + "/v1/policies", timeout=5).json()["result"])
        assert "gpu/launch/launch.rego" in ids
        assert not [i for i in ids if i.endswith("_test.rego")], (
            "push leaves *_test.rego at home unless --tests"
        )
        engine = OpaRestEngine(opa.url, bundle.revision, timeout=5.0)
        d = make_enforcer([US], engine=engine).decide(req())
        assert d.effect == "allow" and d.policy_revision == bundle.revision
        res = CliRunner().invoke(cli, ["policy", "push", str(POLICIES), "--opa-url", opa.url, "--tests"])
        assert res.exit_code == 0, res.output
        ids = sorted(p["id"] for p in requests.get(opa.url + "/v1/policies", timeout=5).json()["result"])
        assert "gpu/launch/launch_test.rego" in ids
        assert engine.eval_path("gpu.launch_test.test_verified_us_direct_allowed") is True
        engine.close()


# -- refused -------------------------------------------------------------------------------------
def test_real_opa_refuses_a_tampered_bundle(tmp_path: Path, keys: dict[str, Path]) -> None:
    good = build_bundle(POLICIES, tmp_path / "good.tar.gz", keys["es"].read_bytes(), KID).path
    files = members(good)
    config = json.loads(files["/gpu/config/data.json"])
    config["required_kyc"] = "none"
    log = refused(
        rewrite(good, tmp_path / "data.tar.gz", {"/gpu/config/data.json": json.dumps(config).encode()}),
        keys["es.pub"],
    )
    assert "digest mismatch" in log and "gpu/config/data.json" in log
    rego = files["/gpu/launch/launch.rego"] + b"\n# harmless-looking comment\n"
    log = refused(rewrite(good, tmp_path / "rego.tar.gz", {"/gpu/launch/launch.rego": rego}), keys["es.pub"])
    assert "digest mismatch" in log and "launch.rego" in log
    manifest = json.loads(files["/.manifest"])
    manifest["revision"] = "forged"
    log = refused(
        rewrite(good, tmp_path / "man.tar.gz", {"/.manifest": json.dumps(manifest).encode()}), keys["es.pub"]
    )
    assert "digest mismatch" in log and ".manifest" in log
    extra = rewrite(
        good, tmp_path / "extra.tar.gz", {"/gpu/launch/sneaky.rego": b"package gpu.launch\n\nsneaky := 1\n"}
    )
    assert "not included in bundle signature" in refused(extra, keys["es.pub"])
    dropped = rewrite(good, tmp_path / "drop.tar.gz", {"/gpu/reasons/data.json": None})
    refused(dropped, keys["es.pub"])
    unsigned = rewrite(good, tmp_path / "unsigned.tar.gz", {"/.signatures.json": None})
    refused(unsigned, keys["es.pub"])


def test_real_opa_refuses_a_bundle_signed_by_another_key(tmp_path: Path, keys: dict[str, Path]) -> None:
    other = build_bundle(POLICIES, tmp_path / "other.tar.gz", keys["other"].read_bytes(), KID).path
    assert "verify" in refused(other, keys["es.pub"]).lower()
    # Our own verifier agrees with OPA on what a good bundle is: whitespace in data does not matter.
    good = build_bundle(POLICIES, tmp_path / "good.tar.gz", keys["es"].read_bytes(), KID).path
    files = members(good)
    pretty = json.dumps(json.loads(files["/gpu/config/data.json"]), indent=7).encode()
    with verifying(
        rewrite(good, tmp_path / "ws.tar.gz", {"/gpu/config/data.json": pretty}), keys["es.pub"]
    ) as opa:
        assert requests.get(opa.url + "/health?bundles", timeout=5).status_code == 200


def test_build_cli_errors_exit_2(tmp_path: Path, keys: dict[str, Path]) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "policy",
            "build",
            str(POLICIES),
            "-o",
            str(tmp_path / "x.tar.gz"),
            "--signing-key",
            str(keys["es"]),
        ],
    )
    assert res.exit_code == 2 and "key id" in res.output
    res = runner.invoke(cli, ["policy", "build", str(tmp_path / "nope"), "-o", str(tmp_path / "x.tar.gz")])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(
        cli,
        [
            "policy",
            "build",
            str(POLICIES),
            "-o",
            str(tmp_path / "x.tar.gz"),
            "--signing-key",
            str(keys["es.pub"]),
            "--kid",
            "k",
        ],
    )
    assert res.exit_code == 2 and "private key" in res.output
