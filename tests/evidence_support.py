"""Helpers for the issue-14 tests: a real MMDB built with mmdb-writer, CloudTrail launches from an IP."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.conftest import EVENTS, ROOT

CSL_CSV = ROOT / "tests" / "data" / "csl_sample.csv"
CSL_JSON = ROOT / "tests" / "data" / "csl_sample.json"
#: Documentation ranges (RFC 5737 / RFC 3849) given countries, GeoLite2-Country style records.
NETWORKS = {
    "198.51.100.0/24": "CN",
    "203.0.113.0/24": "US",
    "192.0.2.0/24": "SG",
    "2001:db8::/32": "DE",
}


def build_mmdb(path: Path, networks: dict[str, str] | None = None, flat: bool = False) -> Path:
    """Write an IPv6 MMDB (IPv4 mapped) whose records look like GeoLite2-Country (or IPinfo "lite")."""
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country", languages=["en"],
                   description="test database")  # fmt: skip
    for cidr, cc in (networks or NETWORKS).items():
        rec: dict[str, Any] = {"country_code": cc} if flat else {"country": {"iso_code": cc}}
        w.insert_network(IPSet([cidr]), rec)
    w.to_db_file(str(path))
    return path


def runinstances(
    ip: str,
    account: str = "111122223333",
    region: str = "us-east-1",
    count: int = 1,
    itype: str = "p5.48xlarge",
    instance_ids: list[str] | None = None,
    event_id: str | None = None,
    when: str = "2026-11-30T10:00:00Z",
) -> dict[str, Any]:
    """The repository's RunInstances CloudTrail fixture, from ``ip``, in ``account``/``region``."""
    ev = copy.deepcopy(json.loads((EVENTS / "cloudtrail_runinstances.json").read_text()))
    d = ev["detail"]
    ev["account"], ev["region"], ev["time"] = account, region, when
    d["recipientAccountId"], d["awsRegion"], d["sourceIPAddress"], d["eventTime"] = account, region, ip, when
    d["userIdentity"]["accountId"] = account
    d["userIdentity"]["arn"] = f"arn:aws:iam::{account}:user/dev"
    if event_id is not None:
        ev["id"] = d["eventID"] = event_id
    d["requestParameters"].pop("tagSpecificationSet", None)  # no attestation reference tag
    d["requestParameters"]["instanceType"] = itype
    d["requestParameters"]["instancesSet"]["items"][0]["minCount"] = count
    d["requestParameters"]["instancesSet"]["items"][0]["maxCount"] = count
    seed = f"{account}/{region}/{event_id}/{when}"
    ids = instance_ids or [
        f"i-{hashlib.sha256(f'{seed}/{n}'.encode()).hexdigest()[:17]}" for n in range(count)
    ]
    template = d["responseElements"]["instancesSet"]["items"][0]
    d["responseElements"]["instancesSet"]["items"] = [
        {**template, "instanceId": i, "instanceType": itype} for i in ids
    ]
    return ev


def state_change(instance_id: str, state: str, account: str = "111122223333", region: str = "us-east-1",
                 when: str = "2026-11-30T12:00:00Z") -> dict[str, Any]:  # fmt: skip
    """An EC2 state-change notification as EventBridge delivers it."""
    ev = json.loads((EVENTS / "state_change_running.json").read_text())
    ev.update(account=account, region=region, time=when)
    ev["detail"] = {"instance-id": instance_id, "state": state}
    return ev
