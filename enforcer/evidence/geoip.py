"""Caller IP country from an offline MaxMind DB (MMDB) file, read by the ``maxminddb`` library.

The deployer supplies the database (GeoLite2-Country, DB-IP Lite, IPinfo Lite ... all publish MMDB):
a path, or an S3 object copied to the Lambda's /tmp once per cold start. Records are read the
GeoIP2 way (``country.iso_code``, then ``registered_country.iso_code``) or the flat way of the
IPinfo/DB-IP "lite" files (``country_code`` / ``country``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import maxminddb

from enforcer.model import InputError

_MAX_IP_CHARS = 64
#: Four decimal octets without leading zeros (ASCII digits only, as ``ipaddress`` reads them).
_DOTTED_QUAD = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")


def parse_ip(value: Any) -> str | None:
    """The IP address in a CloudTrail ``sourceIPAddress`` (None for a service name)."""
    if not isinstance(value, str) or len(value) > _MAX_IP_CHARS:
        return None
    text: str = value.strip()
    if _DOTTED_QUAD.fullmatch(text) and max(map(int, text.split("."))) <= 255:
        return text  # the common case: IPv4 in canonical form (what str(ip_address(text)) gives)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):  # an IPv4 caller in IPv6 clothing is looked up as IPv4
        v4 = ip.ipv4_mapped or ip.sixtofour
        if v4 is None and ip in _NAT64:
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if v4 is not None:
            return str(v4)
    return str(ip)


#: NAT64's well-known prefix (RFC 6052): the last 32 bits are the IPv4 caller.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _iso(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for path in (
        ("country", "iso_code"),
        ("registered_country", "iso_code"),
        ("country_code",),
        ("country",),
    ):
        node: Any = record
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and len(node) == 2 and node.isascii() and node.isalpha():
            return node.upper()
    return None


class GeoIp:
    """Country lookups in one MMDB file (the C extension over a memory map when installed)."""

    def __init__(self, path: Path) -> None:
        try:
            self._reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise InputError(f"cannot open MMDB {path}: {exc}", "BAD_GEOIP_DB") from exc
        meta = self._reader.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, UTC).strftime("%Y-%m-%d")
        self.source = f"mmdb:{meta.database_type} ({built})"

    def country(self, ip: str) -> str | None:
        """ISO 3166-1 alpha-2 country of ``ip``, or None when the database does not know it."""
        try:
            return _iso(self._reader.get(ip))
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None

    def close(self) -> None:
        self._reader.close()


def geoip_from_s3(s3: Any, bucket: str, key: str, cache_dir: Path) -> GeoIp:
    """Copy the MMDB at ``s3://bucket/key`` to ``cache_dir`` (once: Lambda's /tmp) and open it."""
    digest = hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:16]
    local = cache_dir / f"geoip-{digest}.mmdb"
    if not local.exists():
        s3.download_file(bucket, key, str(local))
    return GeoIp(local)
