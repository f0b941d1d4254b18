"""Identifier shapes shared across packages (one definition each).

``ACCOUNT_RE`` is an AWS account id: exactly twelve ASCII digits (``\\d`` would also admit other
scripts' digits, e.g. Arabic-Indic, which AWS never issues). ``COUNTRY_RE`` is an ISO 3166-1 alpha-2
code in upper case. ``ID_RE`` is a registry identifier (reseller ids, key ids, token ids, licence ids):
kept narrow, as they end up in file names and keys. All work with ``match`` and ``fullmatch``.
"""

from __future__ import annotations

import os
import re
from typing import Final

ACCOUNT_RE: Final = re.compile(r"^[0-9]{12}\Z")
COUNTRY_RE: Final = re.compile(r"^[A-Z]{2}\Z")
ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


def is_account_id(value: object) -> bool:
    """Return True when ``value`` is a 12-digit AWS account id (a ``str`` of ASCII digits)."""
    return isinstance(value, str) and ACCOUNT_RE.match(value) is not None


def uuid4_text() -> str:
    """A random (version 4) UUID as text: ``str(uuid.uuid4())`` without building the UUID object.

    The same 122 random bits from ``os.urandom`` and the same version and variant bits; about a third
    of the CPU time (one is made per decision).
    """
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
