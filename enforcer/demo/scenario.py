"""The demo story: who launches what, through which path, and what the product does about it.

It mirrors the real pattern: a university and a research lab in China reach A100/H100 capacity
through an intermediary reseller's sub-accounts; a Singapore reseller properly attests a Singapore
customer; a verified US customer; a UAE customer (licence review); a forged attestation.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from enforcer.demo import events
from enforcer.demo.world import MOTO_AMI, DemoWorld
from enforcer.model import AccountOrigin

# Reseller sub-accounts are registered in the reseller's name (an SG shell): only the attestation says
# who the end customer really is.
US_LAB = AccountOrigin("210000000001", "US", "US", "US", "verified", name="Northwind AI, US direct")
SG_CUSTOMER = AccountOrigin(
    "210000000002", "SG", "SG", "SG", "none", "harbour-sg", "Merlion (SG) via Harbour"
)
CN_UNIVERSITY = AccountOrigin(
    "210000000003", "SG", "SG", "SG", "none", "pearl-river", "university via Pearl River"
)
CN_LAB = AccountOrigin("210000000004", "SG", "SG", "SG", "none", "pearl-river", "AI lab via Pearl River")
UAE_CUSTOMER = AccountOrigin("210000000005", "AE", "AE", "AE", "verified", name="Falcon (UAE) direct")
SILENT = AccountOrigin("210000000006", "MY", "MY", "MY", "none", "pearl-river", "unattested, Pearl River")
FORGED = AccountOrigin("210000000007", "SG", "SG", "SG", "none", "harbour-sg", "Lotus Data via Harbour")
CN_DIRECT = AccountOrigin("210000000008", "CN", "CN", "CN", "verified", name="Shenzhen Vision, CN direct")
ACCOUNTS = [US_LAB, SG_CUSTOMER, CN_UNIVERSITY, CN_LAB, UAE_CUSTOMER, SILENT, FORGED, CN_DIRECT]


@dataclass
class Row:
    """One line of the demo table."""

    path: str
    who: str
    request: str
    chip_class: str = ""
    effect: str = ""
    reasons: list[str] = field(default_factory=list)
    outcome: str = ""


@dataclass
class Reseller:
    """A reseller with its signing key, as the reseller would hold it."""

    rid: str
    name: str
    country: str
    kid: str
    key: Any = None


class Scenario:
    """Runs every step against a DemoWorld and collects rows."""

    def __init__(self, world: DemoWorld) -> None:
        self.w = world
        self.rows: list[Row] = []
        self.denied_events: list[dict[str, Any]] = []
        self.now = time.time()
        self.resellers = {
            "harbour-sg": Reseller("harbour-sg", "Harbour Cloud Pte Ltd", "SG", "harbour-2026"),
            "pearl-river": Reseller("pearl-river", "Pearl River Compute Ltd", "HK", "pearl-2026"),
        }

    # -- set-up ----------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Accounts in the directory, resellers with their registered keys."""
        from enforcer.attestation import ResellerKey, generate_private_key_pem, load_signing_key

        for origin in ACCOUNTS:
            self.w.add_account(origin)
        reg = self.w.registry
        for r in self.resellers.values():
            alg = "ES256" if r.rid == "harbour-sg" else "EdDSA"
            r.key = load_signing_key(generate_private_key_pem(alg))
            reg.put_reseller(
                r.rid, name=r.name, country=r.country, hq_country=r.country, parent_hq_country=r.country
            )
            reg.add_key(r.rid, ResellerKey(r.kid, alg, r.key.public_pem, created_at=self.now))

    def sign(self, reseller: str, account: str, country: str, hq: str, parent: str, key: Any = None) -> str:
        """A reseller signs an attestation about the end customer behind ``account``."""
        from enforcer.attestation import DEFAULT_AUDIENCE, EndCustomer, build_claims, sign_token

        r = self.resellers[reseller]
        claims = build_claims(
            issuer=r.rid,
            account=account,
            end_customer=EndCustomer(country, hq, parent, "verified"),
            now=self.now,
            valid_days=30,
            max_valid_days=90,
            audience=DEFAULT_AUDIENCE,
            end_use="AI model training",
        )
        return str(sign_token(key or r.key, r.kid, claims))

    def submit(self, who: str, token: str) -> tuple[int, dict[str, Any]]:
        """A reseller submits an attestation through the intake API; adds a row."""
        from lambdas import attestation_intake

        resp = self.w.call(
            attestation_intake.handler, events.api_request("300000000001", "/attestations", {"token": token})
        )
        body = json.loads(resp["body"])
        ok = resp["statusCode"] in (200, 201)
        self.rows.append(
            Row(
                "attestation API",
                who,
                "submit attestation",
                effect="stored" if ok else "refused",
                reasons=[] if ok else [body.get("code", "?")],
                outcome=f"{resp['statusCode']}" + (", stored" if ok else ", not stored"),
            )
        )
        return resp["statusCode"], body

    # -- launch paths ------------------------------------------------------------------------------------
    def chip_class(self, itype: str) -> str:
        """The chip class the catalogue gives ``itype``."""
        return self.w.runtime.enforcer.catalog.classify(itype).chip_class

    def guard(
        self, path: str, who: str, what: str, itype: str, event: dict[str, Any], account: str, ids: list[str]
    ) -> dict[str, Any]:
        """Deliver a CloudTrail event to the reactive guard; record what happened to the instances."""
        from lambdas import guard

        result = self.w.call(guard.handler, event)
        r = (result.get("results") or [{}])[0]
        states = self.w.states(ids, account)
        outcome = f"{len(ids)} {', '.join(sorted(set(states)))}"
        rem = r.get("remediation", {})
        if rem.get("suspended_groups"):
            outcome += ", ASG suspended"
        if ids and r.get("effect") == "deny" and "gpu-enforcer:decision-id" in self.w.tags(ids[0], account):
            outcome += ", tagged"
        if r.get("effect") == "deny":
            self.denied_events.append(event)
        codes = list(dict.fromkeys(r.get("reasons", [])))
        self.rows.append(
            Row(path, who, what, self.chip_class(itype), r.get("effect", result["status"]), codes, outcome)
        )
        return dict(result)

    def redeliver_first_deny(self) -> str:
        """EventBridge delivers at least once: send the first denied event again and say what happened."""
        from lambdas import guard

        if not self.denied_events:
            return "no denied event to redeliver"
        event = self.denied_events[0]
        before = self.w.audit_count()
        result = self.w.call(guard.handler, event)
        r = (result.get("results") or [{}])[0]
        after = self.w.audit_count()
        status = r.get("remediation", {}).get("status")
        return (
            f"the first denied CloudTrail event was delivered again: duplicate={r.get('duplicate')}, "
            f"remediation '{status}', audit records {before} -> {after} (acted once, logged once)"
        )

    def run_instances(self, origin: AccountOrigin, itype: str, count: int, jti: str | None = None) -> None:
        ec2 = self.w.client("ec2", origin.account_id)
        resp = ec2.run_instances(ImageId=MOTO_AMI, InstanceType=itype, MinCount=count, MaxCount=count)
        ids = [i["InstanceId"] for i in resp["Instances"]]
        ev = events.run_instances(resp, origin.account_id, instanceType=itype, **events.attestation_tag(jti))
        self.guard(
            "RunInstances",
            origin.name or origin.account_id,
            f"{count}x {itype}",
            itype,
            ev,
            origin.account_id,
            ids,
        )

    def create_fleet(self, origin: AccountOrigin, itype: str, count: int) -> None:
        ec2 = self.w.client("ec2", origin.account_id)
        lt = ec2.create_launch_template(
            LaunchTemplateName="lab-fleet", LaunchTemplateData={"ImageId": MOTO_AMI}
        )["LaunchTemplate"]["LaunchTemplateId"]
        resp = ec2.create_fleet(
            Type="instant",
            TargetCapacitySpecification={
                "TotalTargetCapacity": count,
                "DefaultTargetCapacityType": "on-demand",
            },
            LaunchTemplateConfigs=[
                {
                    "LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "$Latest"},
                    "Overrides": [{"InstanceType": itype}],
                }
            ],
        )
        ids = [i for inst in resp.get("Instances", []) for i in inst.get("InstanceIds", [])]
        ev = events.create_fleet(resp, origin.account_id, lt, itype, count)
        self.guard(
            "CreateFleet",
            origin.name or origin.account_id,
            f"{count}x {itype}",
            itype,
            ev,
            origin.account_id,
            ids,
        )

    def auto_scaling(self, origin: AccountOrigin, itype: str, desired: int) -> None:
        ec2 = self.w.client("ec2", origin.account_id)
        asg = self.w.client("autoscaling", origin.account_id)
        lt = ec2.create_launch_template(
            LaunchTemplateName="inference", LaunchTemplateData={"InstanceType": itype, "ImageId": MOTO_AMI}
        )
        lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
        asg.create_auto_scaling_group(
            AutoScalingGroupName="inference",
            MinSize=0,
            MaxSize=desired,
            DesiredCapacity=desired,
            AvailabilityZones=["us-east-1a"],
            LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "$Latest"},
        )
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["inference"])["AutoScalingGroups"][0]
        ids = [i["InstanceId"] for i in group["Instances"]]
        ev = events.create_asg(origin.account_id, "inference", lt_id, desired)
        self.guard(
            "Auto Scaling",
            origin.name or origin.account_id,
            f"ASG {desired}x {itype} (template)",
            itype,
            ev,
            origin.account_id,
            ids,
        )

    def hook(self, origin: AccountOrigin, itype: str) -> None:
        from lambdas import cfn_hook

        resp = self.w.call(cfn_hook.handler, events.hook_request(origin.account_id, itype))
        status = resp["hookStatus"] + (f"/{resp['errorCode']}" if resp.get("errorCode") else "")
        codes = list(dict.fromkeys(re.findall(r"\b([A-Z][A-Z_]{3,})(?=:)", resp.get("message", ""))))
        effect = "deny" if resp["hookStatus"] == "FAILED" else "allow"
        outcome = "stack blocked" if effect == "deny" else "stack proceeds"
        self.rows.append(
            Row(
                "CFN hook",
                origin.name or origin.account_id,
                f"EC2::Instance {itype}",
                self.chip_class(itype),
                effect,
                codes,
                f"{status}, {outcome}",
            )
        )

    def broker(self, origin: AccountOrigin, itype: str, count: int) -> None:
        from lambdas import broker

        body = {"instanceType": itype, "count": count, "region": "us-east-1", "imageId": MOTO_AMI}
        resp = self.w.call(broker.handler, events.api_request(origin.account_id, "/launch", body))
        doc = json.loads(resp["body"])
        launched = doc.get("instance_ids") or []
        outcome = (
            f"{resp['statusCode']}, {len(launched)} launched by broker role, tagged"
            if resp["statusCode"] == 200
            else f"{resp['statusCode']}, nothing launched"
        )
        self.rows.append(
            Row(
                "broker API",
                origin.name or origin.account_id,
                f"{count}x {itype}",
                self.chip_class(itype),
                doc.get("effect", ""),
                [r["code"] for r in doc.get("reasons", [])],
                outcome,
            )
        )

    # -- the story -----------------------------------------------------------------------------------------
    def run(self) -> None:
        """Every step, in the order the table shows them."""
        from enforcer.attestation import generate_private_key_pem, load_signing_key

        self.setup()
        # Resellers attest their end customers through the intake API.
        _, sg = self.submit(
            "Harbour → Merlion Analytics (SG, SG HQ)",
            self.sign("harbour-sg", SG_CUSTOMER.account_id, "SG", "SG", "SG"),
        )
        _, uni = self.submit(
            "Pearl River → Huadong University (CN)",
            self.sign("pearl-river", CN_UNIVERSITY.account_id, "CN", "CN", "CN"),
        )
        self.submit(
            "Pearl River → lab (SG entity, parent HQ CN)",
            self.sign("pearl-river", CN_LAB.account_id, "SG", "SG", "CN"),
        )
        attacker = load_signing_key(generate_private_key_pem("ES256"))
        self.submit(
            "forged 'Harbour' attestation for Lotus Data",
            self.sign("harbour-sg", FORGED.account_id, "SG", "SG", "SG", key=attacker),
        )
        # Launches through every path.
        self.run_instances(US_LAB, "p5.48xlarge", 1)
        self.run_instances(SG_CUSTOMER, "p5e.48xlarge", 1, sg.get("jti"))
        self.run_instances(CN_UNIVERSITY, "p4d.24xlarge", 2, uni.get("jti"))
        self.create_fleet(CN_LAB, "p5.48xlarge", 2)
        self.auto_scaling(UAE_CUSTOMER, "g6e.12xlarge", 2)
        self.run_instances(CN_DIRECT, "g6.xlarge", 1)
        self.run_instances(CN_DIRECT, "g5.xlarge", 1)
        self.hook(SILENT, "p5.48xlarge")
        self.hook(US_LAB, "p5.48xlarge")
        self.broker(US_LAB, "p5.48xlarge", 1)
        self.broker(FORGED, "p5.48xlarge", 1)
