"""The policy compiled by OPA's own compiler to WebAssembly (``opa build -t wasm``), and where it comes from.

Two sources, both bound to the exact Rego the engine loaded (:func:`modules_digest`: the data documents
are handed to the module at run time, so editing data never needs a rebuild):

* an **artifact directory** (``$ENFORCER_POLICY_WASM``; ``make package`` writes ``policy-wasm/`` beside
  ``policies/`` in the Lambda artifact): ``policy.wasm``, ``manifest.json`` and, for a cold start without
  compiling, ``policy.<target>.cwasm`` precompiled by the same wasmtime for the function's architecture.
  It is code of the artifact, trusted as its shared libraries are; a manifest whose digest differs from the
  loaded modules is ignored (a policy edited after packaging);
* otherwise, **compiled now** by the OPA binary (``$ENFORCER_OPA_BIN``, ``.tools/bin/opa`` of a checkout,
  or ``opa`` on PATH) into memory, never into a shared cache.

Neither present: :class:`WasmUnavailable`, and the factory uses the embedded Go evaluator instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enforcer.policy import DECISION_PATH
from enforcer.policy.loader import PolicyBundle

MANIFEST = "manifest.json"
WASM_FILE = "policy.wasm"
#: ``opa build`` of our policy takes ~0.3 s; a hung or runaway build must not hold a CLI forever
BUILD_TIMEOUT_S = 120.0
MAX_WASM_BYTES = 16 * 1024 * 1024
TARGETS = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}


class WasmUnavailable(RuntimeError):
    """No compiled policy matching the loaded modules, and no OPA binary to compile one."""


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A ``policy.wasm`` for the modules whose digest it carries; ``cwasm`` when precompiled for here."""

    wasm: bytes
    digest: str
    source: str
    cwasm: Path | None = None
    cwasm_sha256: str = ""
    #: the OPA version that compiled the module (``opa version``), recorded as the decisions' engine version
    opa_version: str = ""


def modules_digest(bundle: PolicyBundle) -> str:
    """SHA-256 over the bundle's Rego modules (path and text), tests excluded."""
    h = hashlib.sha256()
    for path in sorted(bundle.modules):
        h.update(path.encode() + b"\0" + hashlib.sha256(bundle.modules[path].encode()).digest())
    return h.hexdigest()


def opa_binary() -> Path | None:
    """``$ENFORCER_OPA_BIN``, else a checkout's ``.tools/bin/opa``, else ``opa`` on PATH (or None)."""
    env = os.environ.get("ENFORCER_OPA_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    local = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "opa"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("opa")
    return Path(found) if found else None


def opa_version(opa: Path) -> str:
    """What ``opa version`` reports (``1.22.3``), or an empty string."""
    import subprocess

    try:
        out = subprocess.run(
            [str(opa), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()[:64]
    return ""


def compile_wasm(bundle: PolicyBundle, opa: Path) -> bytes:
    """``opa build -t wasm -e gpu/launch/decision`` over exactly the bundle's modules; the ``policy.wasm``.

    Raises
    ------
    WasmUnavailable
        When the build fails or times out (its stderr in the message).
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="enforcer-wasm-") as tmp:
        src = Path(tmp) / "src"
        for rel, text in bundle.modules.items():
            dest = src / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
        out = Path(tmp) / "bundle.tar.gz"
        cmd = [str(opa), "build", "-t", "wasm", "-e", DECISION_PATH, "-o", str(out), str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WasmUnavailable(f"opa build -t wasm failed: {exc}") from exc
        if proc.returncode != 0:
            raise WasmUnavailable(f"opa build -t wasm failed: {proc.stderr.strip()[:500]}")
        try:
            return _wasm_from_bundle(out.read_bytes())
        except OSError as exc:  # exited 0 without writing its bundle: not OPA, or a full disk
            raise WasmUnavailable(f"opa build -t wasm wrote no bundle: {exc}") from exc


def _wasm_from_bundle(raw: bytes) -> bytes:
    import io
    import tarfile
    import zlib

    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.name.lstrip("/") == WASM_FILE and member.isfile() and member.size <= MAX_WASM_BYTES:
                    f = tar.extractfile(member)
                    if f is not None:
                        return f.read()
    except (tarfile.TarError, EOFError, zlib.error) as exc:  # not a gzipped tar: the factory falls back
        raise WasmUnavailable(f"opa build -t wasm wrote no readable bundle: {exc}") from exc
    raise WasmUnavailable("opa build -t wasm wrote no policy.wasm")


def host_target() -> str:
    """This machine's target triple, the key of a precompiled module (``x86_64-unknown-linux-gnu``)."""
    return TARGETS.get(platform.machine(), platform.machine())


def write_artifact(bundle: PolicyBundle, out: Path, opa: Path, precompile: bool = True) -> Path:
    """Compile the bundle into ``out``: ``policy.wasm``, ``manifest.json`` and a precompiled module.

    Parameters
    ----------
    bundle
        The policies the artifact ships.
    out
        The directory to write.
    opa
        The OPA binary.
    precompile
        Also write ``policy.<host target>.cwasm`` so a cold start on this architecture deserializes
        instead of compiling (~130 ms). Only for this machine's architecture: the wasmtime wheels ship
        without cross-compilation (asking for another target aborts the process), so an artifact for
        another architecture carries ``policy.wasm`` alone and compiles it at a cold start.
    """
    import importlib.metadata

    import wasmtime

    wasm = compile_wasm(bundle, opa)
    out.mkdir(parents=True, exist_ok=True)
    (out / WASM_FILE).write_bytes(wasm)
    manifest: dict[str, Any] = {
        "entrypoint": DECISION_PATH,
        "modules_digest": modules_digest(bundle),
        "wasm_sha256": hashlib.sha256(wasm).hexdigest(),
        "wasmtime": importlib.metadata.version("wasmtime"),
        "opa_version": opa_version(opa),
        "precompiled": {},
    }
    if precompile:
        target = host_target()
        config = wasmtime.Config()
        config.target = target  # named, not detected: the architecture's baseline, no CPU features of
        # this build machine that a Lambda host may lack (deserializing would refuse the module)
        cw = wasmtime.Module(wasmtime.Engine(config), wasm).serialize()
        name = f"policy.{target}.cwasm"
        (out / name).write_bytes(cw)
        entry = {
            "file": name,
            "sha256": hashlib.sha256(cw).hexdigest(),
            "wasm_sha256": manifest["wasm_sha256"],
        }
        manifest["precompiled"] = {target: entry}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return out


def find_compiled(bundle: PolicyBundle, target: str) -> CompiledPolicy:
    """The compiled policy for ``bundle``: from ``$ENFORCER_POLICY_WASM`` when it matches, else built now.

    Raises
    ------
    WasmUnavailable
        When neither is possible.
    """
    digest = modules_digest(bundle)
    art = os.environ.get("ENFORCER_POLICY_WASM")
    stale = ""
    if art:
        found = _from_artifact(Path(art), digest, target)
        if found is not None:
            return found
        stale = f" ({art} is missing or was built from other modules)"
    opa = opa_binary()
    if opa is None:
        raise WasmUnavailable("no compiled policy for these modules and no OPA binary to build one" + stale)
    return CompiledPolicy(
        compile_wasm(bundle, opa), digest, f"compiled by {opa}", opa_version=opa_version(opa)
    )


def _from_artifact(root: Path, digest: str, target: str) -> CompiledPolicy | None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        if manifest.get("modules_digest") != digest or manifest.get("entrypoint") != DECISION_PATH:
            return None
        wasm = (root / WASM_FILE).read_bytes()
    except (OSError, ValueError, AttributeError):
        return None
    if hashlib.sha256(wasm).hexdigest() != manifest.get("wasm_sha256"):
        return None
    pre = manifest.get("precompiled")
    pre = pre.get(target) if isinstance(pre, dict) else None
    if not isinstance(pre, dict) or pre.get("wasm_sha256") != manifest.get("wasm_sha256"):
        pre = {}  # none for this target, malformed, or compiled from another policy.wasm: compile this one
    cwasm = root / str(pre.get("file", "")) if pre.get("file") else None
    if cwasm is not None and (not cwasm.is_file() or cwasm.parent != root):
        cwasm = None
    version = str(manifest.get("opa_version") or "")[:64]
    return CompiledPolicy(wasm, digest, f"artifact {root}", cwasm, str(pre.get("sha256", "")), version)
