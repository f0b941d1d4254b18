"""Synthetic CloudTrail log files, laid out as CloudTrail writes them to S3.

Two generators:

- ``mix`` (the default): a stream shaped like a real organisation's trail -- mostly non-launch calls
  across many services (read-only describes, writes, failed calls), thousands of accounts and
  regions, and launches of every shape the coverage table decides (every decided operation x every
  instance-type path x both CloudTrail spellings, from enforcer.coverage.synth), with the instance
  type, count, account, region, principal and time varied so that inputs are mostly distinct.
- ``runinstances``: the historic stream of RunInstances records only (tests and the parity suite).

Also writes ``accounts.json`` (an ``enforcer`` state directory's account directory) for the mix's
accounts with ``--state DIR``. Run ``python scripts/synth_cloudtrail.py --help``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNTS = [
    "111122223333",
    "222233334444",
    "333344445555",
    "444455556666",
    "555566667777",
    "999900001111",
]
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

#: Non-launch calls seen in an organisation's trail: (eventSource, eventName, readOnly, weight).
NON_LAUNCH: list[tuple[str, str, bool, int]] = [
    ("s3.amazonaws.com", "GetObject", True, 30),
    ("s3.amazonaws.com", "PutObject", False, 14),
    ("s3.amazonaws.com", "ListObjectsV2", True, 8),
    ("s3.amazonaws.com", "HeadObject", True, 6),
    ("sts.amazonaws.com", "AssumeRole", False, 16),
    ("sts.amazonaws.com", "GetCallerIdentity", True, 6),
    ("kms.amazonaws.com", "Decrypt", False, 14),
    ("kms.amazonaws.com", "GenerateDataKey", False, 8),
    ("logs.amazonaws.com", "CreateLogStream", False, 6),
    ("logs.amazonaws.com", "DescribeLogGroups", True, 3),
    ("monitoring.amazonaws.com", "GetMetricData", True, 6),
    ("monitoring.amazonaws.com", "PutMetricAlarm", False, 1),
    ("dynamodb.amazonaws.com", "DescribeTable", True, 4),
    ("lambda.amazonaws.com", "GetFunction", True, 2),
    ("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", False, 1),
    ("iam.amazonaws.com", "GetRole", True, 3),
    ("iam.amazonaws.com", "ListRoles", True, 2),
    ("iam.amazonaws.com", "PassRole", False, 1),
    ("ec2.amazonaws.com", "DescribeInstances", True, 10),
    ("ec2.amazonaws.com", "DescribeInstanceTypes", True, 2),
    ("ec2.amazonaws.com", "DescribeSecurityGroups", True, 3),
    ("ec2.amazonaws.com", "CreateTags", False, 2),
    ("ec2.amazonaws.com", "StopInstances", False, 1),
    ("ec2.amazonaws.com", "TerminateInstances", False, 1),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", False, 1),
    ("ecr.amazonaws.com", "GetAuthorizationToken", True, 3),
    ("ecr.amazonaws.com", "BatchGetImage", True, 3),
    ("ssm.amazonaws.com", "GetParameter", True, 5),
    ("ssm.amazonaws.com", "UpdateInstanceInformation", False, 4),
    ("secretsmanager.amazonaws.com", "GetSecretValue", True, 4),
    ("sns.amazonaws.com", "Publish", False, 2),
    ("sqs.amazonaws.com", "ReceiveMessage", True, 2),
    ("cloudtrail.amazonaws.com", "LookupEvents", True, 1),
    ("config.amazonaws.com", "PutEvaluations", False, 2),
    ("autoscaling.amazonaws.com", "DescribeAutoScalingGroups", True, 2),
    ("elasticloadbalancing.amazonaws.com", "DescribeTargetHealth", True, 2),
    ("rds.amazonaws.com", "DescribeDBInstances", True, 1),
    ("route53.amazonaws.com", "ListHostedZones", True, 1),
    ("organizations.amazonaws.com", "DescribeAccount", True, 1),
    ("cloudformation.amazonaws.com", "DescribeStacks", True, 2),
    ("eks.amazonaws.com", "DescribeCluster", True, 1),
    ("sagemaker.amazonaws.com", "DescribeTrainingJob", True, 1),
    ("glue.amazonaws.com", "GetTable", True, 1),
    ("athena.amazonaws.com", "StartQueryExecution", False, 1),
]
REGIONS = [
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-south-1",
]
COUNTRIES = ["US"] * 12 + ["DE", "GB", "FR", "JP", "IN", "SG", "AE", "BR", "CN", "RU", "IR", "KP"]
#: Instance types placed in synthetic launches (controlled, uncontrolled, unknown to the catalogue).
MIX_TYPES = [
    *("p5.48xlarge", "p5e.48xlarge", "p4d.24xlarge", "p4de.24xlarge", "p3.16xlarge", "g6.xlarge"),
    *("g6e.12xlarge", "g5.xlarge", "g5.48xlarge", "g4dn.xlarge", "trn1.32xlarge", "trn2.48xlarge"),
    *(
        "inf2.xlarge",
        "inf2.48xlarge",
        "dl1.24xlarge",
        "t3.micro",
        "m5.large",
        "c7i.large",
        "r7g.xlarge",
    ),
    "x9z.unheard",
]
ITYPE_MARK = "x0.itype-placeholder"


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
    """Write ``n`` RunInstances records in gzipped files of ``per_file`` records; return the paths."""
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


@dataclass(frozen=True)
class LaunchShape:
    """One launch shape: a decided operation, one instance-type path, one CloudTrail spelling."""

    event_source: str
    operation: str
    path: str
    style: str
    template: str  # requestParameters JSON with ITYPE_MARK where the instance type goes


def launch_shapes() -> list[LaunchShape]:
    """Every decided coverage entry x path x spelling whose synthetic request normalises to a launch."""
    from enforcer.coverage.synth import synth_record, synth_request
    from enforcer.coverage.table import decided
    from enforcer.intake import normalise
    from enforcer.model import LaunchRequest

    shapes = []
    for (source, op), entry in sorted(decided().items()):
        for path in entry.paths:
            for style in ("cloudtrail", "wrapped"):
                try:
                    params = synth_request(entry.service, op, path, ITYPE_MARK, style)
                    probe = synth_request(entry.service, op, path, "p5.48xlarge", style)
                    ok = isinstance(
                        normalise(synth_record(source, op, probe, "111122223333")), LaunchRequest
                    )
                except Exception:  # a shape the synthesiser cannot fill (references): not generated
                    ok = False
                if ok:
                    shapes.append(LaunchShape(source, op, path, style, json.dumps(params)))
    return shapes


def mix_accounts(n: int, seed: int) -> list[str]:
    """``n`` distinct 12-digit account ids."""
    rng = random.Random(seed * 7919 + 1)
    return [f"{x:012d}" for x in rng.sample(range(10**11, 10**12), n)]


def write_accounts(state: Path, accounts: list[str], seed: int) -> Path:
    """An account directory (``STATE/accounts.json``) giving each account a country; some unknown."""
    from enforcer.model import AccountOrigin

    rng = random.Random(seed)
    doc: dict[str, Any] = {}
    for acct in accounts:
        if rng.random() < 0.05:
            continue  # not in the directory: decided as an unknown account
        cc = rng.choice(COUNTRIES)
        doc[acct] = AccountOrigin(
            acct, cc, cc, cc, kyc=rng.choice(["verified", "verified", "pending"])
        ).to_dict()
    state.mkdir(parents=True, exist_ok=True)
    path = state / "accounts.json"
    path.write_text(json.dumps({"accounts": dict(sorted(doc.items()))}))
    return path


class Mix:
    """Random records shaped like an organisation's trail (see the module docstring)."""

    def __init__(self, accounts: list[str], launch_share: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.accounts = accounts
        self.launch_share = launch_share
        self.shapes = launch_shapes()
        self.non_launch = [(s, n, ro) for s, n, ro, w in NON_LAUNCH for _ in range(w)]

    def _base(self, i: int, source: str, name: str, acct: str, region: str) -> dict[str, Any]:
        rng = self.rng
        day, sec = 1 + i % 28, rng.randrange(86400)
        return {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": f"AROA{rng.randrange(16**12):012X}:{rng.choice(ROLES)}",
                "arn": f"arn:aws:sts::{acct}:assumed-role/{rng.choice(ROLES)}-{rng.randrange(50)}",
                "accountId": acct,
            },
            "eventTime": f"2026-10-{day:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z",
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
            "userAgent": rng.choice(
                ["aws-cli/2.17.0", "Boto3/1.35.0", "aws-sdk-go-v2/1.30.0", "console"]
            ),
            "eventID": f"{rng.getrandbits(32):08x}-{i & 0xFFFF:04x}-4000-8000-{rng.getrandbits(48):012x}",
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": acct,
            "eventCategory": "Management",
        }

    def record(self, i: int) -> dict[str, Any]:
        """Record number ``i`` of the stream."""
        rng = self.rng
        acct, region = rng.choice(self.accounts), rng.choice(REGIONS)
        if rng.random() < self.launch_share:
            shape = rng.choice(self.shapes)
            itype = rng.choice(MIX_TYPES)
            rec = self._base(i, shape.event_source, shape.operation, acct, region)
            params = json.loads(shape.template.replace(ITYPE_MARK, itype))
            rec.update(requestParameters=params, responseElements=None, readOnly=False)
            if rng.random() < 0.04:  # denied by IAM or capacity: CloudTrail logs the failed call
                rec["errorCode"] = rng.choice(
                    ["Client.UnauthorizedOperation", "InsufficientInstanceCapacity"]
                )
            return rec
        source, name, ro = rng.choice(self.non_launch)
        rec = self._base(i, source, name, acct, region)
        rec.update(
            readOnly=ro,
            requestParameters={"key": f"obj/{rng.getrandbits(40):x}"} if not ro else None,
            responseElements=None,
        )
        if rng.random() < 0.03:
            rec["errorCode"] = "AccessDenied"
        return rec


def write_mix(
    out: Path,
    n: int,
    *,
    per_file: int = 2000,
    accounts: int = 3000,
    launch_share: float = 0.02,
    seed: int = 16,
    state: Path | None = None,
) -> list[Path]:
    """Write ``n`` records of the realistic mix in gzipped log files; return the paths.

    Parameters
    ----------
    out
        Directory (files named as CloudTrail names them, under ``AWSLogs/<acct>/CloudTrail/<region>``).
    n
        Records in total.
    per_file
        Records per log file.
    accounts
        Distinct accounts in the stream.
    launch_share
        Share of records that are calls the coverage table decides (the rest: non-launch calls).
    state
        When given, ``state/accounts.json`` is written for the accounts (95 % of them).
    """
    ids = mix_accounts(accounts, seed)
    if state is not None:
        write_accounts(state, ids, seed)
    mix = Mix(ids, launch_share, seed)
    files = []
    for k, start in enumerate(range(0, n, per_file)):
        recs = [mix.record(i) for i in range(start, min(n, start + per_file))]
        payer = ids[k % len(ids)]
        region = REGIONS[k % len(REGIONS)]
        folder = (
            out / "AWSLogs" / payer / "CloudTrail" / region / "2026" / "10" / f"{1 + k % 28:02d}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{payer}_CloudTrail_{region}_20261001T0000Z_{k:08x}.json.gz"
        with gzip.open(path, "wb", compresslevel=6) as fh:
            fh.write(json.dumps({"Records": recs}, separators=(",", ":")).encode())
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="synth_cloudtrail.py",
        description="Write synthetic CloudTrail log files (gzipped JSON, as CloudTrail writes to S3).",
    )
    ap.add_argument("out", type=Path, help="output directory")
    ap.add_argument(
        "events", type=int, nargs="?", default=100_000, help="records in total (100000)"
    )
    ap.add_argument(
        "per_file", type=int, nargs="?", default=None, help="records per file (2000; 1000 legacy)"
    )
    ap.add_argument(
        "--kind",
        choices=("mix", "runinstances"),
        default="mix",
        help="mix: an organisation's trail (default); runinstances: RunInstances records only",
    )
    ap.add_argument(
        "--accounts", type=int, default=3000, help="distinct accounts in the mix (3000)"
    )
    ap.add_argument(
        "--launch-share",
        type=float,
        default=0.02,
        help="share of decided launch calls in the mix (0.02)",
    )
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument(
        "--state", type=Path, default=None, help="also write STATE/accounts.json for the mix"
    )
    args = ap.parse_args(argv)
    if not 0.0 <= args.launch_share <= 1.0:
        ap.error("--launch-share must be between 0 and 1")
    if args.kind == "runinstances":
        files = write(args.out, args.events, args.per_file or 1000, args.seed)
    else:
        files = write_mix(
            args.out,
            args.events,
            per_file=args.per_file or 2000,
            accounts=args.accounts,
            launch_share=args.launch_share,
            seed=args.seed,
            state=args.state,
        )
    print(f"{len(files)} files -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
