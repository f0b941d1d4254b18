"""Red team (issue 14): a CN caller's IPv4 address written in an IPv6 form must still read as CN.

CloudTrail writes ``sourceIPAddress`` as the endpoint saw it; through NAT64 (``64:ff9b::/96``), 6to4
(``2002::/16``) or an IPv4-mapped socket (``::ffff:0:0/96``) an IPv4 caller appears as IPv6. The MMDB then
answered no country (IPv4-only databases cannot look IPv6 up at all; NAT64 is aliased by none).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from enforcer.evidence.geoip import GeoIp, parse_ip
from tests.evidence_support import build_mmdb

CN_IP = "198.51.100.1"  # CN in the test databases


def _v4_only(path: Path) -> Path:
    w = MMDBWriter(ip_version=4, database_type="GeoLite2-Country")
    w.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "CN"}})
    w.to_db_file(str(path))
    return path


@pytest.mark.parametrize(
    "form", ["::ffff:198.51.100.1", "::FFFF:c633:6401", "64:ff9b::198.51.100.1", "2002:c633:6401::1"]
)
@pytest.mark.parametrize("ipv6_db", [True, False])
def test_ipv4_caller_in_ipv6_form_reads_as_its_country(tmp_path: Path, form: str, ipv6_db: bool) -> None:
    db = build_mmdb(tmp_path / "g.mmdb") if ipv6_db else _v4_only(tmp_path / "g4.mmdb")
    ip = parse_ip(form)
    assert ip == CN_IP
    assert GeoIp(db).country(ip) == "CN"


def test_plain_ipv6_is_kept() -> None:
    assert parse_ip("2001:DB8::1") == "2001:db8::1"
