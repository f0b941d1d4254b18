"""Policy bundle integrity: OPA's ``.signatures.json`` for a policy directory.

The file holds ``{"signatures": [JWT]}``; the JWT (header ``alg``, ``typ: JWT``, ``kid``) carries
``{"files": [{"name", "hash", "algorithm": "SHA-256"}], "keyid", "iat"}``. Hashes follow OPA: the raw
bytes for ``.rego`` files; for ``data.json`` the parsed document re-encoded with object keys sorted,
numbers as written and Go's string escaping, so whitespace does not matter but every value does.

Signing keys are EC P-256 (``ES256``) or Ed25519 (``EdDSA``); the algorithm is pinned by the key
type, never read from the token. Verification refuses a bad signature, a missing, extra (unsigned)
or changed file, and names the offending file. ``load_verified_bundle`` verifies, loads, then checks
that what was loaded is byte-for-byte what was verified (no window between check and use).
"""

from __future__ import annotations

import hmac
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.util import urlsafe_b64decode

from enforcer.jws import pinned_registry
from enforcer.policy.file_hash import (
    HASH_ALGORITHM,
    MAX_FILES,
    SIGNATURES_FILE,
    PolicySignatureError,
    bundle_files,
    file_hash,
)
from enforcer.policy.loader import PolicyBundle, load_bundle
from enforcer.policy.signing_keys import (
    KID_RE,
    MAX_PEM_BYTES,
    private_key,
    public_key,
    read_public_key_setting,
)
from enforcer.strict_json import loads_strict

__all__ = [
    "HASH_ALGORITHM",
    "MAX_PEM_BYTES",
    "MAX_SIGNATURES_BYTES",
    "SIGNATURES_FILE",
    "PolicySignatureError",
    "bundle_files",
    "file_hash",
    "load_verified_bundle",
    "read_public_key_setting",
    "sign_bundle",
    "verify_bundle",
]

MAX_SIGNATURES_BYTES = 512 * 1024
_HEX64_RE = re.compile(r"^[0-9a-f]{64}\Z")


# -- sign --------------------------------------------------------------------------------------
def sign_bundle(root: Path | str, private_key_pem: bytes | str, keyid: str, iat: int | None = None) -> Path:
    """Write ``root/.signatures.json`` covering every policy and data file under ``root``.

    Parameters
    ----------
    root
        The policy directory.
    private_key_pem
        EC P-256 or Ed25519 private key (unencrypted PEM); it fixes the algorithm.
    keyid
        Key id put in the JWT header (``kid``) and payload (``keyid``).
    iat
        Signing time (epoch seconds, informational); default now.

    Returns
    -------
    Path
        The signatures file written.

    Raises
    ------
    PolicySignatureError
        On a bad key, key id or directory.
    """
    if not KID_RE.match(keyid):
        raise PolicySignatureError(f"key id must match {KID_RE.pattern}: {keyid[:64]!r}")
    alg, key = private_key(private_key_pem)
    files = bundle_files(root)
    if not files:
        raise PolicySignatureError(f"no policy or data files under {root}")
    payload = {
        "files": [
            {"name": n, "hash": file_hash(n, raw), "algorithm": HASH_ALGORITHM} for n, raw in files.items()
        ],
        "keyid": keyid,
        "iat": int(time.time()) if iat is None else int(iat),
    }
    header = {"alg": alg, "typ": "JWT", "kid": keyid}
    token = jws.serialize_compact(
        header,
        json.dumps(payload, sort_keys=True, separators=(",", ":")),
        key,
        registry=pinned_registry(alg, 4096, MAX_SIGNATURES_BYTES),
    )
    target = Path(root) / SIGNATURES_FILE
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".signatures.")
    with os.fdopen(fd, "w") as fh:
        json.dump({"signatures": [token]}, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, target)
    return target


# -- verify ------------------------------------------------------------------------------------
def _strict_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = loads_strict(raw)
    except (ValueError, UnicodeError) as exc:
        raise PolicySignatureError(f"{what} is not valid JSON ({exc})", SIGNATURES_FILE) from exc
    if not isinstance(value, dict):
        raise PolicySignatureError(f"{what} is not a JSON object", SIGNATURES_FILE)
    return value


def _read_token(root: Path) -> str:
    path = root / SIGNATURES_FILE
    try:
        if path.stat().st_size > MAX_SIGNATURES_BYTES:
            raise PolicySignatureError(f"larger than {MAX_SIGNATURES_BYTES} bytes", SIGNATURES_FILE)
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise PolicySignatureError("missing: the policy directory is not signed", SIGNATURES_FILE) from exc
    except OSError as exc:
        raise PolicySignatureError(f"cannot read ({exc.strerror})", SIGNATURES_FILE) from exc
    doc = _strict_object(raw, "the file")
    sigs = doc.get("signatures")
    if (
        set(doc) != {"signatures"}
        or not isinstance(sigs, list)
        or len(sigs) != 1
        or not isinstance(sigs[0], str)
    ):
        raise PolicySignatureError('must be {"signatures": [one JWT]}', SIGNATURES_FILE)
    return sigs[0]


def _signed_files(payload: dict[str, Any]) -> dict[str, str]:
    entries = payload.get("files")
    if not isinstance(entries, list) or not entries or len(entries) > MAX_FILES:
        raise PolicySignatureError("payload has no valid files list", SIGNATURES_FILE)
    signed: dict[str, str] = {}
    for e in entries:
        if not isinstance(e, dict) or not all(
            isinstance(e.get(k), str) for k in ("name", "hash", "algorithm")
        ):
            raise PolicySignatureError("payload has a malformed file entry", SIGNATURES_FILE)
        name, digest = e["name"], e["hash"]
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or name in signed:
            raise PolicySignatureError(
                f"payload lists a bad or duplicate file name {name[:100]!r}", SIGNATURES_FILE
            )
        if e["algorithm"] != HASH_ALGORITHM or not _HEX64_RE.match(digest):
            raise PolicySignatureError(f"only {HASH_ALGORITHM} hex hashes are accepted", name)
        signed[name] = digest
    return signed


def verify_bundle(
    root: Path | str, public_key_pem: bytes | str, keyid: str | None = None
) -> dict[str, bytes]:
    """Verify ``root/.signatures.json`` against the files under ``root``.

    Parameters
    ----------
    root
        The policy directory.
    public_key_pem
        EC P-256 or Ed25519 public key (PEM); it fixes the algorithm.
    keyid
        When given, the token's ``kid`` must equal it.

    Returns
    -------
    dict
        Relative file name -> the bytes that were verified.

    Raises
    ------
    PolicySignatureError
        On a missing or malformed signatures file, a bad signature, or a file that is missing,
        unsigned or changed (the error names it).
    """
    base = Path(root)
    alg, key = public_key(public_key_pem)
    token = _read_token(base)
    registry = pinned_registry(alg, 4096, MAX_SIGNATURES_BYTES)
    try:
        header = json.loads(urlsafe_b64decode(token.split(".", 1)[0].encode("ascii")))
        obj = jws.deserialize_compact(token, key, registry=registry)
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise PolicySignatureError(
            f"signature does not verify ({type(exc).__name__})", SIGNATURES_FILE
        ) from exc
    if not isinstance(header, dict) or header.get("alg") != alg:
        raise PolicySignatureError(f"token algorithm is not {alg}", SIGNATURES_FILE)
    payload = _strict_object(obj.payload, "the token payload")
    kid = header.get("kid")
    if "keyid" in payload and payload["keyid"] != kid:
        raise PolicySignatureError("payload keyid differs from the header kid", SIGNATURES_FILE)
    if keyid is not None and kid != keyid:
        raise PolicySignatureError(
            f"signed with key id {str(kid)[:64]!r}, expected {keyid!r}", SIGNATURES_FILE
        )
    signed = _signed_files(payload)
    on_disk = bundle_files(base)
    for name in sorted(set(on_disk) | set(signed)):
        if name not in signed:
            raise PolicySignatureError("file is not covered by the signature (unsigned file added)", name)
        if name not in on_disk:
            raise PolicySignatureError("signed file is missing", name)
        if not hmac.compare_digest(file_hash(name, on_disk[name]), signed[name]):
            raise PolicySignatureError("content does not match its signed hash (file changed)", name)
    return on_disk


def _loaded_files(bundle: PolicyBundle) -> dict[str, Any]:
    loaded: dict[str, Any] = {**bundle.modules, **bundle.tests}
    for d, value in bundle.data_files.items():
        loaded[f"{d}/data.json" if d else "data.json"] = value
    return loaded


def load_verified_bundle(
    root: Path | str, public_key_pem: bytes | str, keyid: str | None = None
) -> PolicyBundle:
    """Verify the signature of ``root``, then load it with ``load_bundle``.

    The loaded modules and data are compared with the verified bytes, so a file swapped between
    verification and loading is refused too.

    Raises
    ------
    PolicySignatureError
        As :func:`verify_bundle`, or when the directory changed while it was being loaded.
    model.InputError
        When the verified directory does not load.
    """
    verified = verify_bundle(root, public_key_pem, keyid)
    bundle = load_bundle(root)
    loaded = _loaded_files(bundle)
    if set(loaded) != set(verified):
        extra = sorted(set(loaded) ^ set(verified))
        raise PolicySignatureError("file set changed while loading", extra[0])
    for name, value in loaded.items():
        raw = verified[name]
        same = raw == value.encode("utf-8") if isinstance(value, str) else json.loads(raw) == value
        if not same:
            raise PolicySignatureError("changed while loading", name)
    return bundle
