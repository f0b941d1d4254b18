"""Micro-benchmark of attestation verification per decision (called by the project's bench script)."""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

from enforcer.attestation.claims import EndCustomer, build_claims
from enforcer.attestation.constants import DEFAULT_AUDIENCE, DEFAULT_MAX_VALIDITY_DAYS
from enforcer.attestation.keys import generate_private_key_pem, load_signing_key
from enforcer.attestation.local_registry import LocalRegistry
from enforcer.attestation.provider import RegistryAttestationProvider
from enforcer.attestation.registry import ResellerKey, StoredAttestation
from enforcer.attestation.token import sign_token
from enforcer.model import AccountOrigin

ACCOUNT = "111122223333"
RESELLER = "bench-reseller"


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)

    def rank(p: float) -> float:
        return s[max(0, math.ceil(p * len(s)) - 1)] / 1000.0

    return {"p50": round(rank(0.50), 2), "p99": round(rank(0.99), 2), "max": round(s[-1] / 1000.0, 2)}


def bench_attestation(runs: int = 500, algorithms: tuple[str, ...] = ("ES256", "EdDSA")) -> dict[str, Any]:
    """Measure the attestation cost of one decision, cold and cached, in microseconds.

    A local file registry in a temporary directory holds one reseller key and one stored
    attestation per algorithm. ``cold`` is ``provider.for_account`` with the verification cache
    cleared before each call (registry read, parse, signature verification, claim checks);
    ``cached`` is the same call with a warm cache (registry generation check + stored-list read +
    time checks).

    Parameters
    ----------
    runs
        Measured calls per figure (after a short warm-up).
    algorithms
        Algorithms to measure.

    Returns
    -------
    dict
        ``{"runs": N, "backend": "local", "algorithms": {alg: {"cold_us": {p50, p99, max},
        "cached_us": {...}, "status": "valid"}}}``.
    """
    out: dict[str, Any] = {"runs": runs, "backend": "local", "algorithms": {}}
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="attest-bench-") as tmp:
        registry = LocalRegistry(tmp)
        registry.put_reseller(RESELLER, name="Bench", country="DE", hq_country="DE", parent_hq_country="DE")
        for i, alg in enumerate(algorithms):
            account = f"{int(ACCOUNT) + i:012d}"
            key = load_signing_key(generate_private_key_pem(alg))
            kid = f"bench-{alg}"
            registry.add_key(RESELLER, ResellerKey(kid, alg, key.public_pem, created_at=now))
            claims = build_claims(
                issuer=RESELLER,
                account=account,
                end_customer=EndCustomer("DE", "DE", "DE", "verified"),
                now=now,
                valid_days=30,
                max_valid_days=DEFAULT_MAX_VALIDITY_DAYS,
                audience=DEFAULT_AUDIENCE,
                end_use="model training",
            )
            token = sign_token(key, kid, claims)
            registry.put_attestation(
                StoredAttestation(
                    account,
                    claims["jti"],
                    token,
                    RESELLER,
                    kid,
                    claims["iat"],
                    claims["nbf"],
                    claims["exp"],
                    now,
                )
            )
            origin = AccountOrigin(account, "DE", "DE", "DE", "verified", RESELLER)
            provider = RegistryAttestationProvider(registry)
            status = provider.for_account(origin, now).status
            cold: list[int] = []
            for _ in range(runs + 10):
                provider.clear_cache()
                t0 = time.perf_counter_ns()
                provider.for_account(origin, now)
                cold.append(time.perf_counter_ns() - t0)
            cached: list[int] = []
            provider.for_account(origin, now)
            for _ in range(runs + 10):
                t0 = time.perf_counter_ns()
                provider.for_account(origin, now)
                cached.append(time.perf_counter_ns() - t0)
            out["algorithms"][alg] = {
                "status": status,
                "cold_us": _percentiles(cold[10:]),
                "cached_us": _percentiles(cached[10:]),
            }
    return out
