"""What a policy signature covers, hashed the way OPA hashes bundle files.

Hashes follow OPA: the raw bytes for ``.rego`` files; for ``data.json`` the parsed document re-encoded
with object keys sorted, numbers as written and Go's string escaping, so whitespace does not matter but
every value does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from enforcer.model import InputError
from enforcer.policy.loader import MAX_POLICY_BYTES
from enforcer.strict_json import reject_constant

SIGNATURES_FILE = ".signatures.json"
HASH_ALGORITHM = "SHA-256"
MAX_FILES = 1000


class PolicySignatureError(InputError):
    """The policy directory is not signed as required; ``file`` names the offending file if one is."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(f"{file}: {message}" if file else message, "POLICY_SIGNATURE_INVALID")
        self.file = file


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
            raw.decode("utf-8"), parse_int=_Number, parse_float=_Number, parse_constant=reject_constant
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
