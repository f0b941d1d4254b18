"""The shortcuts taken for replay's CPU (38bc80e) answer as the long ways do."""

from __future__ import annotations

import ipaddress
import random
import uuid
from types import MappingProxyType

import pytest

from enforcer.coverage.extract import find_types
from enforcer.evidence.geoip import parse_ip
from enforcer.ids import uuid4_text
from enforcer.ledger.owners import _epoch


def _long_way(value: object) -> str | None:
    """parse_ip before its dotted-quad shortcut."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = ip.ipv4_mapped or ip.sixtofour
        if v4 is None and ip in ipaddress.IPv6Network("64:ff9b::/96"):
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if v4 is not None:
            return str(v4)
    return str(ip)


@pytest.mark.parametrize(
    "value",
    ["1.2.3.4", " 10.0.0.1\n", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3",
     "1.2.3.4.5", "\u0661.2.3.4", "1.2.3.4/32", "::ffff:1.2.3.4", "64:ff9b::102:304", "ec2.amazonaws.com",
     "", None, 7],
)  # fmt: skip
def test_parse_ip_answers_as_ipaddress(value: object) -> None:
    assert parse_ip(value) == _long_way(value)


def test_parse_ip_random_dotted_quads() -> None:
    rnd = random.Random(23)
    for _ in range(20_000):
        octets = [str(rnd.randint(0, 300)).zfill(rnd.choice((1, 1, 2, 3))) for _ in range(4)]
        text = ".".join(octets)
        assert parse_ip(text) == _long_way(text), text


def test_uuid4_text_is_a_version_4_uuid() -> None:
    seen = set()
    for _ in range(2_000):
        text = uuid4_text()
        u = uuid.UUID(text)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, text)
        seen.add(text)
    assert len(seen) == 2_000


def test_epoch_is_the_same_read_twice() -> None:
    for ts in ("2026-10-26T22:04:54Z", "2026-10-26T22:04:54", "2026-10-26T22:04:54+02:00", "nonsense"):
        assert _epoch(ts) == _epoch(ts)
    assert _epoch("2026-10-26T22:04:54Z") == _epoch("2026-10-26T22:04:54")
    assert _epoch("nonsense") is None and _epoch(["x"]) is None


def test_find_types_reads_any_mapping_in_document_order() -> None:
    body = {"b": {"InstanceType": "p5.48xlarge"}, "a": [{"InstanceType": "g5.xlarge"}]}
    names = frozenset({"instancetype"})
    want = [(f.value, f.path) for f in find_types(body, names, "r")]
    proxy = MappingProxyType(body)
    assert [(f.value, f.path) for f in find_types(proxy, names, "r")] == want
    assert want == [("p5.48xlarge", "r.b.InstanceType"), ("g5.xlarge", "r.a[0].InstanceType")]
