"""The deployer's own tools, from PyPI in .venv-tools (`make deploy-tools`): sam build and checkov.

* ``sam build`` must produce, for every function, exactly the artifact ``make package`` built (same file
  list, same bytes): its python builder would drop every ``.so`` (the OPA engine's included), so the
  template builds with ``BuildMethod: makefile`` (infra/Makefile copies build/lambda unchanged);
* checkov passes both templates, and every suppression carries its reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sam_render import load

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".venv-tools" / "bin"
TEMPLATES = [ROOT / "infra" / "template.yaml", ROOT / "infra" / "member-account.yaml"]
FUNCTIONS = ("GuardFunction", "CfnHookFunction", "BrokerFunction", "AttestationIntakeFunction")
sys.path.insert(0, str(ROOT / "scripts"))

import package  # noqa: E402


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} is missing: run `make deploy-tools` (make test does)"
    return str(path)


@pytest.mark.slow
def test_sam_build_produces_the_packaged_artifact(tmp_path: Path) -> None:
    artifact = ROOT / "build" / "lambda"
    assert (artifact / "lambdas").is_dir(), "run `make package` (make test does)"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    out = subprocess.run(
        [tool("sam"), "build", "-t", str(TEMPLATES[0]), "--build-dir", str(tmp_path / "sam")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    expected = package.digest(artifact)
    assert "opa_bindings/libopabridge.so" in expected
    for fn in FUNCTIONS:
        built = package.digest(tmp_path / "sam" / fn)
        assert sorted(built) == sorted(expected), fn
        assert built == expected, fn
    assert "CodeUri: GuardFunction" in (tmp_path / "sam" / "template.yaml").read_text()


def test_checkov_passes_both_templates_and_every_suppression_has_a_reason() -> None:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    cmd = [tool("checkov"), "--skip-download", "--framework", "cloudformation", "--compact", "--quiet"]
    for t in TEMPLATES:
        cmd += ["-f", str(t)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0 and "Failed checks: 0" in out.stdout, out.stdout[-4000:]
    skips = 0
    for t in TEMPLATES:
        for name, res in load(t)["Resources"].items():
            for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
                skips += 1
                assert skip["id"].startswith("CKV_") and len(skip.get("comment", "")) > 40, (name, skip)
    assert skips > 0
