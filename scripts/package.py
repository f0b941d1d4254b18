"""Build the Lambda artifact exactly as deployed: ``build/lambda/`` (``make package``).

The artifact is the directory the template's functions run from (``/var/task``):

* every runtime dependency, resolved for the *Lambda* interpreter and platform (CPython 3.12 on
  Amazon Linux 2023, glibc 2.34) -- not for the Python that runs this script -- and pinned to the
  versions installed in the development venv (``pip freeze`` as constraints), so the artifact runs the
  same library versions the tests ran;
* the embedded OPA engine (``opa-golib-python-bindings``, hash-pinned per architecture, installed
  with ``--no-deps --ignore-requires-python`` as in ``make install``) with its ``libopabridge.so``;
* our code: ``enforcer/`` (with ``enforcer/data``), ``lambdas/`` and ``policies/`` (Rego tests excluded).

pip installs with ``--no-compile`` and ``__pycache__`` is never copied, so two builds of the same tree give
byte-identical sources (``tests/test_artifact.py`` compares hashes with ``sam build``); then every module
is byte-compiled once by a Python of the runtime's version, when one is here (``byte_compile``): the
artifact's handlers then import in 0.48 s instead of 2.2 s in CPython 3.12 (``make smoke`` prints both).

Usage::

    python scripts/package.py [--arch x86_64|arm64] [--out build/lambda] [--python-version 3.12]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Lambda runtime the artifact targets (template ``Runtime: python3.12``: Amazon Linux 2023).
PYTHON_VERSION = "3.12"
#: glibc of Amazon Linux 2023 (the python3.12+ runtimes); the smoke test checks every .so against it.
RUNTIME_GLIBC = (2, 34)
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
#: sha256 of the engine wheel per architecture (PyPI, opa-golib-python-bindings 0.4.4).
OPA_WHEEL = "opa-golib-python-bindings==0.4.4"
OPA_HASHES = {
    "x86_64": "d411c901e14b8c7c3023e23e4a944f4cf429c1d31baf80e959e57d11efbfd24a",
    "aarch64": "2becc213edd9bec00e366162889effd29becf0bf0adacfa9c2b43f4b9368f5f2",
}
OUR_CODE = ("enforcer", "lambdas")
SKIP_NAMES = {"__pycache__", ".mypy_cache", ".pytest_cache"}


def platforms(machine: str) -> list[str]:
    """Wheel platform tags the Lambda runtime accepts for ``machine`` (glibc <= 2.34)."""
    tags = ["manylinux2014", "manylinux_2_28", "manylinux_2_34"]
    return [f"{t}_{machine}" for t in tags]


def runtime_requirements() -> list[str]:
    """The ``[project] dependencies`` of pyproject.toml (the dev extras stay out of the artifact)."""
    with (ROOT / "pyproject.toml").open("rb") as fh:
        project = tomllib.load(fh)["project"]
    deps: list[str] = project["dependencies"]
    return deps


def freeze_constraints(dest: Path) -> Path:
    """Pin the artifact to the versions the development venv runs (``pip freeze``)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if "==" in ln and not ln.startswith("opa-golib")]
    path = dest / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def pip_target(out: Path, machine: str, python_version: str, args: list[str]) -> None:
    """``pip install --target`` for the runtime's interpreter and platform, binaries only."""
    plat: list[str] = []
    for tag in platforms(machine):
        plat += ["--platform", tag]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--upgrade",
        "--target",
        str(out),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        *plat,
        *args,
    ]
    subprocess.run(cmd, check=True)


def copy_tree(src: Path, dst: Path, skip_suffixes: tuple[str, ...] = ()) -> None:
    """Copy ``src`` to ``dst`` without caches, byte code or ``skip_suffixes`` files."""

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {
            n for n in names if n in SKIP_NAMES or n.endswith((".pyc", ".pyo")) or n.endswith(skip_suffixes)
        }

    shutil.copytree(src, dst, ignore=ignore)


def build(out: Path, arch: str = "x86_64", python_version: str = PYTHON_VERSION) -> Path:
    """Build the artifact into ``out`` (replaced) and return it.

    Parameters
    ----------
    out
        Target directory (deleted first).
    arch
        Lambda architecture, ``x86_64`` or ``arm64``.
    python_version
        The Lambda runtime's Python (``3.12``).
    """
    machine = ARCHES[arch]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        constraints = freeze_constraints(Path(tmp))
        pip_target(out, machine, python_version, ["-c", str(constraints), *runtime_requirements()])
        opa_req = Path(tmp) / "opa.txt"
        opa_req.write_text(f"{OPA_WHEEL} --hash=sha256:{OPA_HASHES[machine]}\n")
        pip_target(
            out,
            machine,
            python_version,
            ["--no-deps", "--ignore-requires-python", "--require-hashes", "-r", str(opa_req)],
        )
    # console scripts carry this machine's interpreter path in their shebang; Lambda never runs them
    shutil.rmtree(out / "bin", ignore_errors=True)
    for name in OUR_CODE:
        copy_tree(ROOT / name, out / name)
    copy_tree(ROOT / "policies", out / "policies", skip_suffixes=("_test.rego",))
    write_policy_wasm(out, machine)
    for cache in out.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    byte_compile(out, python_version)
    return out


def runtime_python(python_version: str) -> str | None:
    """An interpreter of the runtime's Python version that runs (this one, ``pythonX.Y`` on PATH, pyenv's)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python_version:
        return sys.executable
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{python_version}*/bin/python{python_version}"))
    for cand in [shutil.which(f"python{python_version}"), *map(str, pyenv)]:
        if not cand:
            continue
        try:  # a pyenv shim with no such version selected exits non-zero
            out = subprocess.run(
                [cand, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == python_version:
            return cand
    return None


def byte_compile(out: Path, python_version: str) -> None:
    """Ship byte code for the runtime's Python, as pip installs it: without it every cold start compiles
    every module from source (``make smoke``, CPython 3.12: the handlers import in 2.2 s, 0.48 s with it).
    ``checked-hash`` pycs: the source's hash, not its mtime, validates them, so a zip's timestamps do not
    matter and an edited source is recompiled. Without such an interpreter here the artifact ships none (a
    message says so).
    """
    py = runtime_python(python_version)
    if py is None:
        print(f"package: no Python {python_version} here: the artifact ships no byte code", file=sys.stderr)
        return
    # a module that is not valid Python for the runtime (a vendored test file) is skipped, not fatal
    subprocess.run(
        [py, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "checked-hash", str(out)],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def write_policy_wasm(out: Path, machine: str) -> None:
    """``policy-wasm/``: the packaged policies compiled by OPA to wasm (engine ``wasm``), precompiled for
    ``machine`` when this machine is one. Without an OPA binary (no Go toolchain) the artifact carries
    none and the deployed ``wasm`` engine logs that and decides with the embedded Go evaluator; under
    ``CI=true`` a missing OPA is an error.
    """
    from enforcer.policy.loader import load_bundle
    from enforcer.policy.wasm_build import opa_binary, write_artifact

    opa = opa_binary()
    if opa is None:
        if os.environ.get("CI") == "true":
            raise SystemExit("package: CI=true requires the OPA binary (make tools) to compile policy-wasm/")
        print("package: no OPA binary (make tools): the artifact carries no policy-wasm/", file=sys.stderr)
        return
    write_artifact(
        load_bundle(out / "policies"), out / "policy-wasm", opa, precompile=platform.machine() == machine
    )


def digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (to compare two builds)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(ARCHES), default="x86_64")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    ap.add_argument("--python-version", default=PYTHON_VERSION)
    a = ap.parse_args()
    out = build(a.out, a.arch, a.python_version)
    files = digest(out)
    size = sum((out / f).stat().st_size for f in files)
    print(f"built {out} ({a.arch}, python {a.python_version}): {len(files)} files, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
