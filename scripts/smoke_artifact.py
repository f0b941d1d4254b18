"""Smoke-test the Lambda artifact (``build/lambda``) as Lambda would load it.

Outer checks (this interpreter, with pyelftools):

* every shared library (``*.so``) is an ELF for the target machine and needs no glibc symbol version
  newer than the runtime's (Amazon Linux 2023: 2.34);
* the unzipped size is below Lambda's 250 MB limit.

Inner check (a subprocess started with ``-I -S``: nothing but the standard library and the artifact on
``sys.path``): import every handler named in the template, load the embedded OPA engine from the
artifact's ``policies/`` and decide one event through the real pipeline (local state in a temp dir).

The inner interpreter should be CPython 3.12, the runtime's; ``--python`` or ``$ENFORCER_SMOKE_PYTHON``
names it, else ``python3.12`` on PATH or under pyenv. Without one (Debian bookworm ships only 3.11),
a copy of the artifact is built the same way for the running Python (same code, same versions, same
engine wheel; only the compiled extension ABI differs) and the imports run there, which the output
says. The glibc and size checks always run on the real artifact.

Usage::

    python scripts/smoke_artifact.py [build/lambda] [--python PATH] [--arch x86_64|arm64]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ("lambdas.guard", "lambdas.cfn_hook", "lambdas.broker", "lambdas.attestation_intake")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
RUNTIME_GLIBC = (2, 34)
ELF_MACHINE = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}
SMOKE_EVENT = ROOT / "tests" / "events" / "cloudtrail_runinstances.json"


# ----------------------------------------------------------------------------- outer checks
def glibc_needs(path: Path) -> tuple[str, list[tuple[int, ...]]]:
    """The ELF machine of ``path`` and every ``GLIBC_x.y`` version it requires."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    versions: list[tuple[int, ...]] = []
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        machine = str(elf["e_machine"])
        for section in elf.iter_sections():
            if not isinstance(section, GNUVerNeedSection):
                continue
            for _verneed, aux_iter in section.iter_versions():
                for aux in aux_iter:
                    name = str(aux.name)
                    if name.startswith("GLIBC_") and name[6:].replace(".", "").isdigit():
                        versions.append(tuple(int(p) for p in name[6:].split(".")))
    return machine, versions


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def check_shared_libraries(artifact: Path, arch: str) -> list[str]:
    """Problems with the artifact's ELF files (empty when all load on the runtime)."""
    problems = []
    libs = sorted(p for p in artifact.rglob("*") if p.is_file() and _is_elf(p))  # by magic, not by name
    if not any(p.name == "libopabridge.so" for p in libs):
        problems.append("libopabridge.so (embedded OPA engine) is missing")
    for lib in libs:
        machine, versions = glibc_needs(lib)
        rel = lib.relative_to(artifact)
        if machine != ELF_MACHINE[arch]:
            problems.append(f"{rel}: built for {machine}, the function runs on {ELF_MACHINE[arch]}")
        newest = max(versions, default=(0,))
        if newest > RUNTIME_GLIBC:
            need = ".".join(map(str, newest))
            problems.append(f"{rel}: needs GLIBC_{need}, the runtime has {'.'.join(map(str, RUNTIME_GLIBC))}")
    return problems


def unzipped_size(artifact: Path) -> int:
    """Bytes of every file in the artifact."""
    return sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file())


def find_python(explicit: str | None) -> str | None:
    """A CPython 3.12 interpreter (the runtime's), or None."""
    for cand in (explicit, os.environ.get("ENFORCER_SMOKE_PYTHON"), shutil.which("python3.12")):
        if cand and _is_312(cand):
            return cand
    for cand in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))):
        if _is_312(cand):
            return cand
    return None


def _is_312(python: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return out.stdout.strip() == "True"


def fallback_copy(artifact: Path) -> Path:
    """Where the copy for the running Python goes when no CPython 3.12 exists (``build/lambda-py3X``)."""
    return artifact.with_name(f"{artifact.name}-py{sys.version_info.major}{sys.version_info.minor}")


def run_inner(python: str, artifact: Path, pyc_prefix: str | None = None) -> dict[str, object]:
    """Run the inner check in ``python -I -S`` and return its JSON report; ``pyc_prefix`` (an empty
    directory) makes the interpreter ignore the artifact's byte code and compile every module."""
    opts = ["-X", f"pycache_prefix={pyc_prefix}"] if pyc_prefix else []
    proc = subprocess.run(
        [
            python,
            "-I",
            "-S",
            "-B",
            *opts,
            str(Path(__file__).resolve()),
            "--inner",
            str(artifact),
            str(SMOKE_EVENT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": tempfile.gettempdir(),
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise SystemExit(f"artifact smoke failed in {python}:\n{proc.stdout}\n{proc.stderr}")
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def outer(artifact: Path, arch: str, python: str | None) -> int:
    problems = check_shared_libraries(artifact, arch)
    size = unzipped_size(artifact)
    if size >= LAMBDA_UNZIPPED_LIMIT:
        problems.append(f"unzipped size {size / 1e6:.1f} MB exceeds Lambda's 250 MB")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"shared libraries: glibc <= {'.'.join(map(str, RUNTIME_GLIBC))}, {ELF_MACHINE[arch]}")
    print(f"unzipped size: {size / 1e6:.1f} MB (limit 262.1 MB)")
    native = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    if arch != native:
        print(f"{arch} artifact on a {platform.machine()} machine: shared-library and size checks only")
        return 0
    py312 = find_python(python)
    if py312:
        report = run_inner(py312, artifact)
        print(f"imports and decision with CPython 3.12 ({py312}), nothing but the artifact on sys.path")
        with tempfile.TemporaryDirectory() as empty:
            bare = run_inner(py312, artifact, pyc_prefix=empty)
        print(
            f"handlers' import: {report['import_ms']} ms with the artifact's byte code, "
            f"{bare['import_ms']} ms compiling every module (same run)"
        )
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        import package

        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        copy = package.build(fallback_copy(artifact), arch, ver)
        report = run_inner(sys.executable, copy)
        print(f"no CPython 3.12 here: imports and decision in a {ver}-targeted copy of the artifact")
    print(json.dumps(report, sort_keys=True))
    return 0


# ----------------------------------------------------------------------------- inner check (stdlib only)
def inner(artifact: str, event_file: str) -> int:
    """Import the handlers, load the engine and decide ``event_file`` from the artifact alone."""
    import importlib

    sys.path.insert(0, artifact)
    t0 = time.perf_counter()
    for mod in HANDLERS:
        handler = importlib.import_module(mod).handler
        assert callable(handler), mod
    import_ms = round((time.perf_counter() - t0) * 1e3, 1)
    import opa_bindings

    import enforcer

    for mod in (enforcer, opa_bindings):
        if not str(mod.__file__).startswith(artifact):
            raise SystemExit(f"{mod.__name__} imported from {mod.__file__}, not the artifact")
    from enforcer.intake import normalise
    from enforcer.state import CliState
    from enforcer.wiring.local import local_enforcer

    # the engine the template deploys (wasm, from the artifact's policy-wasm/ alone: no OPA binary to
    # compile one) must decide as the embedded Go evaluator does
    os.environ["ENFORCER_POLICY_WASM"] = str(Path(artifact) / "policy-wasm")
    os.environ["ENFORCER_OPA_BIN"] = str(Path(artifact) / "no-opa-binary")
    docs = {}
    for engine in ("embedded", "wasm"):
        with tempfile.TemporaryDirectory() as state_dir:
            state = CliState(Path(state_dir))
            enf = local_enforcer(state, mode="dryrun", engine=engine, policy_dir=Path(artifact) / "policies")
            request = normalise(json.loads(Path(event_file).read_text()))
            docs[engine] = enf.decide(request).to_dict()  # type: ignore[arg-type]
    doc, wdoc = docs["embedded"], docs["wasm"]
    same = (wdoc["effect"], wdoc["reasons"]) == (doc["effect"], doc["reasons"])
    if wdoc["policy"]["engine"] != "wasm" or not same:
        raise SystemExit(f"engine wasm from the artifact: {wdoc['policy']}: {wdoc['effect']}")
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "handlers": list(HANDLERS),
                "engines": [doc["policy"]["engine"], wdoc["policy"]["engine"]],
                "import_ms": import_ms,
                "effect": doc["effect"],
                "reasons": sorted({r["code"] for r in doc["reasons"]}),
            }
        )
    )
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--inner":
        return inner(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", nargs="?", type=Path, default=ROOT / "build" / "lambda")
    ap.add_argument("--python", help="a CPython 3.12 interpreter (the runtime's)")
    ap.add_argument("--arch", choices=sorted(ELF_MACHINE), default="x86_64")
    a = ap.parse_args()
    if not (a.artifact / "lambdas").is_dir():
        print(f"{a.artifact} is not a built artifact: run `make package` first", file=sys.stderr)
        return 2
    return outer(a.artifact.resolve(), a.arch, a.python)


if __name__ == "__main__":
    sys.exit(main())
