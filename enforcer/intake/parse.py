"""Size-bounded, strict JSON parsing of raw event bytes."""

from __future__ import annotations

import json
import zlib
from typing import Any

from enforcer.model import InputError
from enforcer.strict_json import DuplicateMember, reject_duplicates

DEFAULT_MAX_BYTES = 1_048_576
_GZIP_MAGIC = b"\x1f\x8b"


def _no_constants(name: str) -> Any:
    raise InputError(f"invalid JSON: {name} is not allowed")


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise InputError("invalid gzip data") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise InputError(f"event larger than {max_bytes} bytes once decompressed")
    return out


def parse_event_bytes(
    raw: bytes | bytearray | memoryview | str, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, Any]:
    """Parse one JSON event document with a hard size bound.

    Parameters
    ----------
    raw
        UTF-8 bytes (optionally gzip-compressed, e.g. a CloudTrail log file) or text.
    max_bytes
        Largest accepted document, after decompression.

    Returns
    -------
    dict
        The top-level JSON object.

    Raises
    ------
    InputError
        Oversize payload, bad gzip, invalid UTF-8, invalid or truncated JSON, NaN/Infinity,
        duplicate keys, nesting too deep, or a top level that is not an object. The message is
        one line and never contains the payload.
    """
    if isinstance(raw, str):
        if len(raw) > max_bytes:
            raise InputError(f"event larger than {max_bytes} bytes")
        text = raw
        size = len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        if len(data) > max_bytes:
            raise InputError(f"event larger than {max_bytes} bytes")
        if data.startswith(_GZIP_MAGIC):
            data = _gunzip(data, max_bytes)
        size = len(data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("event is not valid UTF-8") from None
    else:
        raise InputError(f"expected bytes or text, got {type(raw).__name__}")
    if size > max_bytes:
        raise InputError(f"event larger than {max_bytes} bytes")
    if not text.strip():
        raise InputError("empty event")
    try:
        doc = json.loads(text, parse_constant=_no_constants, object_pairs_hook=reject_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError("invalid JSON: nesting too deep") from None
    except InputError:
        raise
    except DuplicateMember as exc:
        raise InputError(f"invalid JSON: duplicate key {exc.name!r}") from None
    except ValueError:  # e.g. an integer literal longer than the interpreter's digit limit
        raise InputError("invalid JSON: number out of range") from None
    if not isinstance(doc, dict):
        kind = "list" if isinstance(doc, list) else type(doc).__name__
        raise InputError(f"event must be a JSON object, got {kind}")
    return doc
