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

import hashlib
import hmac
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from joserfc.util import urlsafe_b64decode

from enforcer.jws import pinned_registry
from enforcer.model import InputError
from enforcer.policy.loader import MAX_POLICY_BYTES, PolicyBundle, load_bundle

SIGNATURES_FILE = ".signatures.json"
HASH_ALGORITHM = "SHA-256"
MAX_SIGNATURES_BYTES = 512 * 1024
MAX_FILES = 1000
MAX_PEM_BYTES = 16 * 1024
_KID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}\Z")

JoseKey = ECKey | OKPKey


class PolicySignatureError(InputError):
    """The policy directory is not signed as required; ``file`` names the offending file if one is."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(f"{file}: {message}" if file else message, "POLICY_SIGNATURE_INVALID")
        self.file = file


# -- keys --------------------------------------------------------------------------------------
def _pem_bytes(pem: bytes | str) -> bytes:
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    if len(data) > MAX_PEM_BYTES:
        raise PolicySignatureError(f"key PEM larger than {MAX_PEM_BYTES} bytes")
    return data


def _private_key(pem: bytes | str) -> tuple[str, JoseKey]:
    data = _pem_bytes(pem)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PolicySignatureError(f"not an unencrypted PEM private key ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", ECKey.import_key(data)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", OKPKey.import_key(data)
    raise PolicySignatureError("signing key must be EC P-256 (ES256) or Ed25519 (EdDSA)")


def _public_key(pem: bytes | str) -> tuple[str, JoseKey]:
    data = _pem_bytes(pem)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise PolicySignatureError(f"not a PEM public key ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", ECKey.import_key(data)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA", OKPKey.import_key(data)
    raise PolicySignatureError("verification key must be EC P-256 (ES256) or Ed25519 (EdDSA)")


def read_public_key_setting(value: str) -> bytes:
    """Resolve ``ENFORCER_POLICY_PUBKEY``: inline PEM text, or the path of a PEM file.

    Raises
    ------
    PolicySignatureError
        When the file cannot be read.
    """
    if value.lstrip().startswith("-----BEGIN"):
        return _pem_bytes(value)
    path = Path(value)
    try:
        if path.stat().st_size > MAX_PEM_BYTES:
            raise PolicySignatureError(f"key file larger than {MAX_PEM_BYTES} bytes", str(path))
        return path.read_bytes()
    except OSError as exc:
        raise PolicySignatureError(f"cannot read policy public key ({exc.strerror})", str(path)) from exc


# -- hashing -----------------------------------------------------------------------------------
class _Number(str):
    """A JSON number kept as written (OPA decodes with ``UseNumber`` before hashing)."""


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _go_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x20 or ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _walk(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _walk(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    else:  # pragma: no cover - json.loads produces nothing else
        raise TypeError(type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def file_hash(name: str, raw: bytes) -> str:
    """SHA-256 (hex) of one bundle file the way OPA computes it.

    Raises
    ------
    PolicySignatureError
        When a ``.json`` file or a ``.manifest`` is not valid UTF-8 JSON.
    """
    if not (name.endswith(".json") or name.rsplit("/", 1)[-1] == ".manifest"):
        return hashlib.sha256(raw).hexdigest()
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_int=_Number, parse_float=_Number, parse_constant=_reject_constant
        )
        out: list[str] = []
        _walk(value, out)
        return hashlib.sha256("".join(out).encode("utf-8")).hexdigest()
    except (ValueError, UnicodeError) as exc:
        raise PolicySignatureError(f"not valid JSON ({exc})", name) from exc


def bundle_files(root: Path | str) -> dict[str, bytes]:
    """The files a signature covers: exactly those ``load_bundle`` reads (``*.rego``, ``data.json``).

    Raises
    ------
    PolicySignatureError
        When the directory is missing, too large, or holds too many files.
    """
    base = Path(root)
    if not base.is_dir():
        raise PolicySignatureError(f"policy directory not found: {base}")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel_parts = path.relative_to(base).parts
        if any(part.startswith(".") for part in rel_parts[:-1]):
            continue
        if not (path.suffix == ".rego" or path.name == "data.json"):
            continue
        raw = path.read_bytes()
        total += len(raw)
        if total > MAX_POLICY_BYTES or len(files) >= MAX_FILES:
            raise PolicySignatureError(
                f"policy directory larger than {MAX_POLICY_BYTES} bytes or {MAX_FILES} files"
            )
        files[path.relative_to(base).as_posix()] = raw
    return files


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
    if not _KID_RE.match(keyid):
        raise PolicySignatureError(f"key id must match {_KID_RE.pattern}: {keyid[:64]!r}")
    alg, key = _private_key(private_key_pem)
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
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate member {k!r}")
            out[k] = v
        return out

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=no_dupes, parse_constant=_reject_constant)
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
    alg, key = _public_key(public_key_pem)
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
