"""Policy authors' tools checked against the real ``opa`` binary.

``enforcer policy test`` must give the exit code ``opa test`` gives (pass, failing test, compile error,
parse error, no test), the same test names under ``--run``, the same pass/fail per test in JSON, each
compile error once; ``enforcer policy eval`` must give ``opa eval``'s value for the same input and never
touch the audit log; ``scripts/opa_checks.py`` (``make opa-check``) must fail on unformatted Rego, a
strict-mode error and coverage under the floor, and fail in CI when the binary is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli
from tests.opa_real import POLICIES, ROOT, require_opa

MODULE = "package p\n\nx := 1\n"
CASES = {
    "pass": "package p\n\ntest_a if x == 1\n\ntest_b if {\n\tx > 0\n}\n",
    "fail": "package p\n\ntest_a if {\n\tx == 2\n}\n\ntest_b if x == 1\n",
    "compile": "package p\n\ntest_a if {\n\ty := z\n}\n\ntest_b if {\n\tq := w\n}\n",
    "parse": "package p\n\ntest_a if {\n\t1 ==\n",
    "none": "package p\n\nhelper := 2\n",
}


def policy_dir(tmp_path: Path, case: str) -> Path:
    d = tmp_path / case
    d.mkdir()
    (d / "p.rego").write_text(MODULE)
    (d / "p_test.rego").write_text(CASES[case])
    return d


def opa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(require_opa()), *args], capture_output=True, text=True, timeout=300)


def ours(*args: str) -> Any:
    return CliRunner().invoke(cli, ["policy", "test", "--no-check", *args])


@pytest.mark.parametrize("case", list(CASES))
def test_policy_test_exit_code_is_opa_tests(tmp_path: Path, case: str) -> None:
    d = policy_dir(tmp_path, case)
    expected = opa("test", str(d)).returncode
    res = ours(str(d))
    assert res.exit_code == expected, (case, res.output)
    assert "Traceback" not in res.output


def test_each_compile_error_is_reported_once(tmp_path: Path) -> None:
    d = policy_dir(tmp_path, "compile")
    res = ours(str(d))
    lines = [ln for ln in res.output.splitlines() if "rego_unsafe_var_error" in ln]
    assert len(lines) == len(set(lines)) and lines, res.output
    for var in ("z", "w"):  # what opa test reports, each once
        assert sum(f"var {var} is unsafe" in ln for ln in lines) == 1
        assert f"var {var} is unsafe" in opa("test", str(d)).stderr
    assert "FAIL" not in res.output and "data.p.test_a" not in res.output


def test_json_output_and_run_filter_match_opa_test(tmp_path: Path) -> None:
    for d, run in ((POLICIES, None), (POLICIES, "reseller|region"), (policy_dir(tmp_path, "fail"), None)):
        extra = ["--run", run] if run else []
        theirs = json.loads(opa("test", "--format", "json", *extra, str(d)).stdout)
        res = ours(str(d), "--format", "json", *extra)
        mine = json.loads(res.output)
        assert sorted((t["package"], t["name"], bool(t.get("fail"))) for t in mine) == sorted(
            (t["package"], t["name"], bool(t.get("fail"))) for t in theirs
        )
        if run:
            assert 0 < len(mine) < len(json.loads(ours(str(d), "--format", "json").output))


def test_explain_fails_names_the_failing_expression(tmp_path: Path) -> None:
    res = ours(str(policy_dir(tmp_path, "fail")), "--explain", "fails")
    assert res.exit_code == 2
    assert "p_test.rego:3:" in res.output and "data.p.test_a: FAIL" in res.output
    assert "p_test.rego:4: data.p.x = 2" in res.output or "x = 2" in res.output, res.output
    full = ours(str(policy_dir(tmp_path, "pass")), "--explain", "full", "--run", "test_a")
    assert full.exit_code == 0 and "Enter" in full.output and "test_b" not in full.output
    assert ours(str(POLICIES), "--run", "(").exit_code == 2  # a bad regex is a usage error


# -- policy eval ----------------------------------------------------------------------------------
def test_policy_eval_matches_opa_eval_and_writes_no_audit(tmp_path: Path, catalog: Any, engine: Any) -> None:
    from tests.test_opa_real_decision_logs import _inputs

    state = tmp_path / "state"
    for i, inp in enumerate(_inputs(catalog, engine, 12)):
        f = tmp_path / f"in{i}.json"
        f.write_text(json.dumps(inp))
        res = CliRunner().invoke(
            cli, ["--state", str(state), "policy", "eval", str(f), "--policy-dir", str(POLICIES)]
        )
        assert res.exit_code == 0, res.output
        theirs = json.loads(
            opa("eval", "-f", "json", "-d", str(POLICIES), "-i", str(f), "data.gpu.launch.decision").stdout
        )
        assert json.loads(res.output)["result"] == theirs["result"][0]["expressions"][0]["value"]
    assert not (state / "audit").exists(), "policy eval must not touch the audit log"
    f = tmp_path / "in0.json"
    undefined = CliRunner().invoke(cli, ["policy", "eval", str(f), "-d", "gpu.launch.nothing"])
    assert undefined.exit_code == 1
    assert CliRunner().invoke(cli, ["policy", "eval", str(f), "-d", "gpu/../x"]).exit_code == 2


# -- make opa-check -------------------------------------------------------------------------------
def checks(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "opa_checks.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_opa_checks_pass_on_policies_and_fail_on_each_problem(tmp_path: Path) -> None:
    require_opa()
    ok = checks(str(POLICIES))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "opa test --coverage" in ok.stdout
    bad = tmp_path / "p"
    shutil.copytree(POLICIES, bad)
    launch = bad / "gpu" / "launch" / "launch.rego"
    launch.write_text(launch.read_text().replace("\t", "    ", 3))
    res = checks(str(bad))
    assert res.returncode == 1 and "opa fmt" in res.stderr and "launch.rego" in res.stderr
    shutil.copy(POLICIES / "gpu" / "launch" / "launch.rego", launch)
    (bad / "gpu" / "launch" / "unused.rego").write_text("package gpu.unused\n\nf(x) := 1\n")
    res = checks(str(bad))
    assert res.returncode == 1 and "check --strict" in res.stderr and "unused argument" in res.stderr
    (bad / "gpu" / "launch" / "unused.rego").write_text(
        "package gpu.unused\n\n" + "".join(f"r{i} := {i} if input.x == {i}\n\n" for i in range(400))
    )
    res = checks(str(bad))
    assert res.returncode == 1 and "under the floor" in res.stderr, res.stderr


def test_opa_checks_without_the_binary_skip_locally_and_fail_in_ci(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-opa")
    local = checks("--opa", missing, env={"CI": "false"})
    assert local.returncode == 0 and "skipped" in local.stderr
    ci = checks("--opa", missing, env={"CI": "true"})
    assert ci.returncode == 2 and "required when CI=true" in ci.stderr


# -- make tools -----------------------------------------------------------------------------------
def test_a_tampered_go_sum_stops_the_opa_build(tmp_path: Path) -> None:
    """The pin is real: with OPA's hash in go.sum changed, `go build -mod=readonly` refuses the module."""
    require_opa()
    go = shutil.which("go")
    cache = ROOT / ".tools" / "gomod"
    if go is None or not cache.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the Go toolchain and .tools/gomod (make tools) are required")
        pytest.skip("no Go toolchain or module cache (make tools)")
    mod = tmp_path / "opa"
    shutil.copytree(ROOT / "tools" / "opa", mod)
    gosum = mod / "go.sum"
    lines = gosum.read_text().splitlines()
    i = next(
        n
        for n, ln in enumerate(lines)
        if ln.startswith("github.com/open-policy-agent/opa v") and " h1:" in ln and "/go.mod" not in ln
    )
    name, version, digest = lines[i].split()
    lines[i] = f"{name} {version} h1:{'A' * 4}{digest[7:]}"
    gosum.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "GOMODCACHE": str(cache),
        "GOCACHE": str(ROOT / ".tools" / "gocache"),
        "GOFLAGS": "-mod=readonly -buildvcs=false",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
    }
    proc = subprocess.run(
        [go, "build", "-o", str(tmp_path / "opa-bin"), "github.com/open-policy-agent/opa"],
        cwd=mod,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode != 0 and "checksum mismatch" in proc.stderr, proc.stderr[-1000:]
    assert not (tmp_path / "opa-bin").exists()
