"""Throughput benchmark of the local audit store (``make bench`` calls ``bench_audit``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from enforcer.audit.local import LocalAuditStore
from enforcer.audit.signing import LocalEd25519Signer
from enforcer.audit.verify import open_verify
from enforcer.model import Accelerator, Decision, Effect, LaunchItem, LaunchRequest, Reason


def sample_decision(
    i: int,
    *,
    effect: Effect = "deny",
    country: str = "CN",
    account_id: str = "111122223333",
    chip_class: str = "3A090.a",
    instance_type: str = "p5.48xlarge",
    source: str = "cloudtrail",
    event_id: str | None = None,
    timestamp: str = "2025-01-01T00:00:00Z",
    reasons: list[Reason] | None = None,
    end_customer_name: str | None = None,
    token: str | None = None,
) -> Decision:
    """Return a realistic decision for event ``i`` (benchmarks, tests and the demo).

    By default: a deny of a 3A090.a launch from a CN-origin account, with a valid attestation.
    """
    acc = Accelerator("H100", 8, 3958.0, 4.9, chip_class)
    req = LaunchRequest(
        source=source,
        action="RunInstances",
        account_id=account_id,
        region="us-east-1",
        principal=f"arn:aws:iam::{account_id}:role/dev",
        items=[LaunchItem(instance_type, 2, chip_class=chip_class, tpp=31664.0, accelerators=[acc])],
        event_id=event_id if event_id is not None else f"event-{i}",
        event_time=timestamp,
        instance_ids=[f"i-{i:017x}"],
    )
    end_customer: dict[str, Any] = {
        "country": "SG",
        "hq_country": "SG",
        "parent_hq_country": "CN",
        "kyc_level": "full",
    }
    if end_customer_name is not None:
        end_customer["name"] = end_customer_name
    claims = {
        "iss": "reseller-1",
        "sub": account_id,
        "aud": "gpu-launch-enforcer",
        "iat": 1735689600,
        "nbf": 1735689600,
        "exp": 1767225600,
        "jti": "att-1",
        "end_customer": end_customer,
        "end_use": "model training",
    }
    attestation: dict[str, Any] = {
        "status": "valid",
        "jti": "att-1",
        "kid": "k1",
        "issuer": "reseller-1",
        "claims": claims,
    }
    if token is not None:
        attestation["token"] = token
    input_doc: dict[str, Any] = {
        "request": req.to_dict(),
        "account": {
            "account_id": account_id,
            "country": country,
            "kyc": "verified",
            "reseller": "reseller-1",
        },
        "attestation": attestation,
        "now": timestamp,
    }
    if reasons is None:
        reasons = [Reason("ORIGIN_RESTRICTED", f"account origin {country} is restricted", "high")]
    return Decision(
        decision_id=f"decision-{i}",
        timestamp=timestamp,
        effect=effect,
        enforced=True,
        reasons=reasons,
        request=req,
        policy_revision="rev-1",
        engine="embedded",
        attestation={"status": "valid", "jti": "att-1", "kid": "k1", "issuer": "reseller-1"},
        metrics={"timer_eval_ns": 250000},
        input=input_doc,
    )


def bench_audit(n: int = 100_000, directory: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Append ``n`` records to a fresh local store, then verify them; return the rates.

    Parameters
    ----------
    n
        Number of records.
    directory
        Where to put the log (a temporary directory when None; it must be empty or absent).

    Returns
    -------
    dict
        ``{"records", "append_per_s", "verify_per_s", "bytes"}``.
    """
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        base = Path(directory) if directory is not None else Path(tmp)
        log = base / "audit"
        signer = LocalEd25519Signer(base / "keys" / "bench.pem")
        decisions = [sample_decision(i) for i in range(n)]
        store = LocalAuditStore(log, signer, salt=b"bench-salt-0123456789")
        t0 = time.perf_counter()
        for d in decisions:
            store.write(d, "stop")
        store.close()
        t1 = time.perf_counter()
        report = open_verify(log, signer.public_key_pem())
        t2 = time.perf_counter()
        if not report.ok or report.records != n:
            raise RuntimeError(f"bench log did not verify: {report.summary()}")
        size = sum(p.stat().st_size for p in log.glob("*.jsonl"))
        return {
            "records": float(n),
            "append_per_s": n / (t1 - t0),
            "verify_per_s": n / (t2 - t1),
            "bytes": float(size),
        }


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(bench_audit(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
