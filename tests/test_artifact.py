"""The Lambda artifact (``make package`` -> build/lambda): what Lambda loads, checked from outside.

The artifact is built by ``make package`` (it needs PyPI, which tests may not reach); ``make test`` runs
``package`` and ``smoke`` before pytest, so these tests read the artifact that was just built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "build" / "lambda"
sys.path.insert(0, str(ROOT / "scripts"))

import package  # noqa: E402
import smoke_artifact  # noqa: E402


@pytest.fixture(scope="module")
def artifact() -> Path:
    assert (ARTIFACT / "lambdas").is_dir(), "build/lambda is missing: run `make package` (make test does)"
    return ARTIFACT


def test_artifact_holds_code_policies_engine_and_dependencies(artifact: Path) -> None:
    for rel in (
        "lambdas/guard.py",
        "enforcer/data/chips.json",
        "policies/gpu/launch/launch.rego",
        "opa_bindings/libopabridge.so",
        "aws_lambda_powertools/__init__.py",
        "joserfc/__init__.py",
        "pydantic_core",
    ):
        assert (artifact / rel).exists(), rel
    # built for the runtime's CPython 3.12, not this machine's interpreter
    (core,) = (artifact / "pydantic_core").glob("_pydantic_core.*.so")
    assert "cpython-312-x86_64-linux-gnu" in core.name
    assert not list(artifact.rglob("*_test.rego"))
    # byte code for the runtime's 3.12 only (checked-hash: flags 0b11), when this machine has a 3.12
    assert not list(artifact.rglob("*.cpython-311.pyc"))
    pyc = artifact / "lambdas" / "__pycache__" / "guard.cpython-312.pyc"
    if package.runtime_python("3.12") is not None:
        assert pyc.read_bytes()[4:8] == b"\x03\x00\x00\x00"
        assert (artifact / "enforcer" / "policy" / "__pycache__" / "wasm.cpython-312.pyc").is_file()
    else:
        assert not list(artifact.rglob("__pycache__"))
    assert not (artifact / "bin").exists() and not (artifact / "moto").exists()  # no dev tools


def test_trimmed_service_models_match_the_artifacts_botocore(artifact: Path) -> None:
    """The cold start's trimmed EC2 model is used only with the botocore it was cut from (else full)."""
    import json

    manifest = json.loads((artifact / "enforcer" / "data" / "botocore" / "manifest.json").read_text())
    (dist,) = artifact.glob("botocore-*.dist-info")
    assert dist.name == f"botocore-{manifest['botocore']}.dist-info", (
        "regenerate: python -m enforcer.aws_models"
    )
    for service, entry in manifest["services"].items():
        assert (
            artifact / "enforcer" / "data" / "botocore" / service / entry["api_version"] / "service-2.json"
        ).is_file()


def test_every_shared_library_loads_on_the_runtime_glibc(artifact: Path) -> None:
    assert smoke_artifact.check_shared_libraries(artifact, "x86_64") == []
    machine, needs = smoke_artifact.glibc_needs(artifact / "opa_bindings" / "libopabridge.so")
    assert machine == "EM_X86_64" and max(needs) == (2, 34)  # why python3.11 (AL2, glibc 2.26) fails
    assert smoke_artifact.unzipped_size(artifact) < smoke_artifact.LAMBDA_UNZIPPED_LIMIT


def test_glibc_check_rejects_a_library_the_runtime_cannot_load(tmp_path: Path) -> None:
    """Real ELF files: the engine's library rebuilt against a newer glibc, and one for the wrong machine."""
    fake = tmp_path / "artifact"
    (fake / "opa_bindings").mkdir(parents=True)
    lib = fake / "opa_bindings" / "libopabridge.so"
    data = (ARTIFACT / "opa_bindings" / "libopabridge.so").read_bytes()
    assert b"GLIBC_2.34" in data
    lib.write_bytes(data.replace(b"GLIBC_2.34", b"GLIBC_2.38"))  # same length: a valid ELF needing 2.38
    assert smoke_artifact.check_shared_libraries(fake, "x86_64") == [
        "opa_bindings/libopabridge.so: needs GLIBC_2.38, the runtime has 2.34"
    ]
    lib.write_bytes(data)
    # found by its ELF magic, not its name: a helper binary or a versioned library counts too
    (fake / "bin-helper").write_bytes(data.replace(b"GLIBC_2.34", b"GLIBC_2.39"))
    (fake / "x.sort.py").write_text("not ELF, though its name contains .so")
    assert smoke_artifact.check_shared_libraries(fake, "x86_64") == [
        "bin-helper: needs GLIBC_2.39, the runtime has 2.34"
    ]
    (fake / "bin-helper").unlink()
    assert smoke_artifact.check_shared_libraries(fake, "arm64") == [
        "opa_bindings/libopabridge.so: built for EM_X86_64, the function runs on EM_AARCH64"
    ]
    lib.unlink()
    assert smoke_artifact.check_shared_libraries(fake, "x86_64") == [
        "libopabridge.so (embedded OPA engine) is missing"
    ]


def test_smoke_imports_handlers_and_decides_from_the_artifact_alone(artifact: Path) -> None:
    python = smoke_artifact.find_python(None)
    if python is None:  # no CPython 3.12 here: `make smoke` built a copy for this Python (see its docstring)
        copy = smoke_artifact.fallback_copy(artifact)
        assert (copy / "lambdas").is_dir(), "no CPython 3.12 and no fallback copy: run `make smoke`"
        python, artifact = sys.executable, copy
    before = sorted(artifact.rglob("*.pyc"))
    report = smoke_artifact.run_inner(python, artifact)
    assert report["engines"] == ["embedded", "wasm"] and report["effect"] == "deny"
    assert report["reasons"] == ["ACCOUNT_UNKNOWN"]  # an empty directory: the policy's own answer
    assert sorted(artifact.rglob("*.pyc")) == before  # the smoke run leaves the artifact as built


def test_engine_loader_failure_is_a_clear_configuration_error(tmp_path: Path) -> None:
    """A libopabridge.so that does not load (wrong glibc/arch, truncated) -> ConfigError naming the fix."""
    site = tmp_path / "site"
    shutil.copytree(ARTIFACT / "opa_bindings", site / "opa_bindings", ignore=shutil.ignore_patterns("*.so"))
    (site / "opa_bindings" / "libopabridge.so").write_bytes(b"\x7fELF" + b"\0" * 60)  # not loadable
    code = (
        "from enforcer.config import ConfigError\n"
        "from enforcer.policy.factory import make_engine\n"
        "try:\n"
        "    make_engine('embedded', 'policies')\n"
        "except ConfigError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("EngineLoadError the embedded OPA engine cannot load its shared library")
    assert "python3.12" in out.stdout and "ENFORCER_ENGINE=opa" in out.stdout


def test_two_builds_digest_alike_and_digest_sees_a_change(tmp_path: Path) -> None:
    a = package.digest(ARTIFACT)
    copy = tmp_path / "copy"
    shutil.copytree(ARTIFACT, copy)
    assert package.digest(copy) == a
    (copy / "policies" / "gpu" / "launch" / "launch.rego").write_text("package gpu.launch\n")
    b = package.digest(copy)
    assert {k for k in a if a[k] != b.get(k)} == {"policies/gpu/launch/launch.rego"}
