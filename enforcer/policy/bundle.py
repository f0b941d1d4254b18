"""``enforcer policy build``: an ``opa build``-compatible bundle (``.tar.gz``) from a policy directory.

The archive holds ``/.manifest`` (``revision``, ``roots``, ``rego_version``), every ``.rego`` module and
every ``data.json`` at its path, and -- when a signing key is given -- ``/.signatures.json``: one JWT
(ES256 or EdDSA, pinned by the key type) whose payload lists every file *including* ``.manifest`` with
its SHA-256 hashed the way OPA hashes it (raw bytes for modules; the parsed, key-sorted document for
``data.json`` and ``.manifest``). A real OPA loads it with ``opa run --bundle --verification-key
pub.pem --verification-key-id KID --signing-alg ES256`` and refuses it when any file was changed.

Test modules (``*_test.rego``) are left out unless asked for. The revision defaults to the directory's
revision (``load_bundle(...).revision``), the one the engines record, so the revision an OPA server
reports for the bundle can be compared with the local one.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jws

from enforcer.jws import pinned_registry
from enforcer.model import InputError
from enforcer.policy.loader import PolicyBundle, load_bundle
from enforcer.policy.signing import (
    HASH_ALGORITHM,
    MAX_SIGNATURES_BYTES,
    SIGNATURES_FILE,
    PolicySignatureError,
    bundle_files,
    file_hash,
)
from enforcer.policy.signing_keys import KID_RE, private_key

MANIFEST = ".manifest"
#: Most bytes of a built bundle (compressed); larger is refused rather than written.
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class BuiltBundle:
    """What ``build_bundle`` wrote."""

    path: Path
    revision: str
    roots: list[str]
    files: list[str] = field(default_factory=list)
    signed: bool = False
    kid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.path),
            "revision": self.revision,
            "roots": self.roots,
            "files": self.files,
            "signed": self.signed,
            "kid": self.kid,
        }


def bundle_roots(bundle: PolicyBundle, include_tests: bool = False) -> list[str]:
    """Top-level names the bundle owns: the first segment of every package and data path."""
    roots: set[str] = set()
    sources = {**bundle.modules, **(bundle.tests if include_tests else {})}
    for rel, src in sources.items():
        for line in src.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "package":
                roots.add(words[1].split(".")[0])
                break
        else:
            raise InputError(f"{rel}: no package line", "POLICY_LOAD_ERROR")
    for d in bundle.data_files:
        if not d:
            raise InputError(
                "a data.json at the top of the directory has no root; move it under a package dir",
                "POLICY_LOAD_ERROR",
            )
        roots.add(d.split("/")[0])
    return sorted(roots)


def _signatures(files: dict[str, bytes], private_key_pem: bytes, kid: str) -> bytes:
    if not KID_RE.match(kid):
        raise PolicySignatureError(f"key id must match {KID_RE.pattern}: {kid[:64]!r}")
    alg, key = private_key(private_key_pem)
    payload = {
        "files": [
            {"name": n, "hash": file_hash(n, raw), "algorithm": HASH_ALGORITHM} for n, raw in files.items()
        ],
        "keyid": kid,
        "iat": int(time.time()),
    }
    token = jws.serialize_compact(
        {"alg": alg, "typ": "JWT", "kid": kid},
        json.dumps(payload, sort_keys=True, separators=(",", ":")),
        key,
        registry=pinned_registry(alg, 4096, MAX_SIGNATURES_BYTES),
    )
    return json.dumps({"signatures": [token]}).encode()


def build_bundle(
    policy_dir: Path | str,
    out: Path | str,
    private_key_pem: bytes | None = None,
    kid: str | None = None,
    revision: str | None = None,
    include_tests: bool = False,
) -> BuiltBundle:
    """Write ``out`` (``.tar.gz``): an OPA bundle of ``policy_dir``, signed when a key is given.

    Parameters
    ----------
    policy_dir
        The policy directory (``*.rego`` and ``data.json`` files, as ``load_bundle`` reads them).
    out
        Archive to write (replaced atomically).
    private_key_pem, kid
        EC P-256 or Ed25519 private key and its key id; both or neither.
    revision
        Manifest revision; default the directory's revision.
    include_tests
        Also ship ``*_test.rego`` modules.

    Raises
    ------
    model.InputError
        For a directory that does not load, a bad key or key id (``POLICY_SIGNATURE_INVALID``).
    """
    if (private_key_pem is None) != (kid is None):
        raise InputError("a signing key needs a key id (--kid) and the other way round", "BAD_INPUT")
    bundle = load_bundle(policy_dir)
    raw = bundle_files(policy_dir)
    files = {n: b for n, b in raw.items() if include_tests or not Path(n).stem.endswith("_test")}
    roots = bundle_roots(bundle, include_tests)
    manifest = {"revision": revision or bundle.revision, "roots": roots, "rego_version": 1}
    entries: dict[str, bytes] = {MANIFEST: json.dumps(manifest, sort_keys=True).encode(), **files}
    if private_key_pem is not None and kid is not None:
        entries[SIGNATURES_FILE] = _signatures(dict(entries), private_key_pem, kid)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo("/" + name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    if buf.tell() > MAX_BUNDLE_BYTES:
        raise InputError(f"bundle larger than {MAX_BUNDLE_BYTES} bytes", "POLICY_LOAD_ERROR")
    target = Path(out)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(target)
    return BuiltBundle(
        target, str(manifest["revision"]), roots, sorted(files), private_key_pem is not None, kid
    )
