"""Write synthetic CloudTrail log files of GPU launch events, laid out as CloudTrail writes them to S3.

Usage: python scripts/synth_cloudtrail.py OUT_DIR [N_EVENTS] [PER_FILE]
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path
from typing import Any

ACCOUNTS = ["111122223333", "222233334444", "333344445555", "444455556666", "555566667777", "999900001111"]
ROLES = ["Dev/alice", "Dev/bob", "CI/build"]
TYPES = [
    "p5.48xlarge",
    "p4d.24xlarge",
    "g6.xlarge",
    "g5.xlarge",
    "g4dn.xlarge",
    "trn1.32xlarge",
    "t3.micro",
    "p5e.48xlarge",
    "inf2.xlarge",
    "c7i.large",
]


def record(i: int, rng: random.Random) -> dict[str, Any]:
    """One CloudTrail RunInstances record (the shape inside a log file's ``Records``)."""
    acct = rng.choice(ACCOUNTS)
    itype = rng.choice(TYPES)
    n = rng.choice([1, 1, 1, 2, 4, 8])
    ts = f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z"
    iid = [f"i-{i:08x}{k:09x}" for k in range(n)]
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{acct}:assumed-role/{rng.choice(ROLES)}",
            "accountId": acct,
        },
        "eventTime": ts,
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "Boto3/1.43.11",
        "requestParameters": {
            "instancesSet": {"items": [{"imageId": "ami-0abc", "minCount": n, "maxCount": n}]},
            "instanceType": itype,
        },
        "responseElements": {
            "instancesSet": {"items": [{"instanceId": x, "instanceType": itype} for x in iid]}
        },
        "eventID": f"{i:08x}-0000-4000-8000-{i:012x}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": acct,
        "eventCategory": "Management",
    }


def write(out: Path, n: int, per_file: int = 1000, seed: int = 7) -> list[Path]:
    """Write ``n`` records in gzipped files of ``per_file`` records; return the file paths."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for start in range(0, n, per_file):
        recs = [record(i, rng) for i in range(start, min(n, start + per_file))]
        path = out / f"111122223333_CloudTrail_us-east-1_{start // per_file:06d}.json.gz"
        with gzip.open(path, "wt") as fh:
            json.dump({"Records": recs}, fh)
        files.append(path)
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    each = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    print(f"{len(write(target, count, each))} files -> {target}")
