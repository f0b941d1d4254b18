"""A decision log written by the real pipeline and audit store, and tampered with as an attacker would.

``write_log`` decides a dozen launches with the embedded engine (a US account whose ultimate parent is
in China, a Chinese account, an attested reseller customer, an allowed US launch, an audited Trainium
launch) and appends them with the local store (signed checkpoints every 4 records). ``flip_effect``
edits the stored bytes of one record (deny -> allow), as someone with write access to the folder
would; ``rechain`` also recomputes that record's hash and every later hash, so the chain links again
and only the signed checkpoints can tell.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from enforcer.accounts import StaticAccountDirectory
from enforcer.audit import layout
from enforcer.audit.chain import split_line
from enforcer.audit.defaults import open_local_store
from enforcer.model import AccountOrigin, AttestationResult, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer

US = AccountOrigin("111122223333", "US", "US", "US", "verified")
US_CN_PARENT = AccountOrigin("555566667777", "US", "US", "CN", "verified")
CN = AccountOrigin("222233334444", "CN", "CN", "CN", "verified")
RESOLD = AccountOrigin("333344445555", "SG", "SG", "SG", "none", reseller="acme")
RESELLER = {"id": "acme", "country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "status": "active"}
END_CUSTOMER = {"country": "SG", "hq_country": "SG", "parent_hq_country": "CN", "kyc_level": "verified"}
JTI = "att-7f3a9c-acme-0001"
ISSUER = "reseller:acme"
PRINCIPAL = "arn:aws:iam::555566667777:role/TrainingPipeline"
#: The position (and seq) of the US-account-with-CN-parent denial the tests tamper with.
TAMPERED_SEQ = 5
#: A genuine US-account-with-CN-parent denial whose message the report must show.
GENUINE_SEQ = 1


class _Attestations:
    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        if origin.reseller is None:
            return AttestationResult("not_required")
        return AttestationResult(
            "valid",
            {"end_customer": END_CUSTOMER},
            jti=JTI,
            kid="acme-k1",
            issuer=ISSUER,
            reseller=RESELLER,
        )


def _req(account: str, itype: str, n: int, principal: str | None = None) -> LaunchRequest:
    return LaunchRequest(
        "cloudtrail",
        "ec2:RunInstances",
        account,
        "us-east-1",
        principal=principal or f"arn:aws:iam::{account}:role/Launcher",
        items=[LaunchItem(itype, 1)],
        event_id=f"evt-{n:04d}",
        event_time=f"2026-11-30T{8 + n // 6:02d}:{(n * 7) % 60:02d}:00Z",
    )


#: (account, instance type) decided in this order; seq 1 and 5 are US-with-CN-parent denials.
PLAN: list[tuple[AccountOrigin, str]] = [
    (US, "p5.48xlarge"),
    (US_CN_PARENT, "p5.48xlarge"),
    (CN, "p4d.24xlarge"),
    (RESOLD, "p5.48xlarge"),
    (US, "trn1.32xlarge"),
    (US_CN_PARENT, "p5.48xlarge"),
    (US, "g5.xlarge"),
    (US, "p5.48xlarge"),
    (CN, "p5.48xlarge"),
    (US, "p4d.24xlarge"),
    (US_CN_PARENT, "g5.xlarge"),
    (US, "p5.48xlarge"),
]


def write_log(state: Path, engine: Any, catalog: Any) -> Path:
    """Decide PLAN with the real pipeline into ``state/audit``; return the audit folder."""
    audit, keys = state / "audit", state / "keys"
    store = open_local_store(audit, keys, checkpoint_every=4)
    origins = sorted({o.account_id: o for o, _ in PLAN}.values(), key=lambda o: o.account_id)
    enf = Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory(origins),
        engine=engine,
        attestations=_Attestations(),
        audit=store,
    )
    for n, (origin, itype) in enumerate(PLAN):
        principal = PRINCIPAL if origin is US_CN_PARENT else None
        enf.enforce(_req(origin.account_id, itype, n, principal), action="stop")
    store.close()
    return audit


def _segment(audit: Path) -> Path:
    return layout.segment_files(audit)[0][1]


def flip_effect(audit: Path, seq: int) -> None:
    """Change record ``seq``'s effect from deny to allow in the stored bytes (its hash left as it was)."""
    seg = _segment(audit)
    lines = seg.read_bytes().splitlines(keepends=True)
    assert b'"effect":"deny"' in lines[seq]
    lines[seq] = lines[seq].replace(b'"effect":"deny"', b'"effect":"allow"', 1)
    seg.write_bytes(b"".join(lines))


def rechain(audit: Path, seq: int) -> None:
    """``flip_effect`` and recompute the hash of record ``seq`` and every later record (the chain links)."""
    seg = _segment(audit)
    lines = seg.read_bytes().splitlines(keepends=True)
    prev = None
    for i, raw in enumerate(lines):
        body, stated = split_line(raw)
        if i < seq:
            prev = stated
            continue
        rec = json.loads(body)
        if i == seq:
            rec["result"]["effect"] = "allow"
        if prev is not None:
            rec["prev_hash"] = prev
        from enforcer.audit.record import canonical

        new_body = canonical(rec)
        digest = hashlib.sha256(new_body).hexdigest()
        lines[i] = new_body[:-1] + b',"hash":"' + digest.encode() + b'"}\n'
        prev = digest
    seg.write_bytes(b"".join(lines))
