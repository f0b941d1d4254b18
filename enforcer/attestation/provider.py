"""``ports.AttestationProvider`` over a reseller registry, with a verification cache.

The cache holds the outcome of the expensive, time-independent checks
(:func:`enforcer.attestation.verify.check_token`) per token hash, account and reseller. Time checks
(``nbf``/``exp``, key ``not_after``) are re-applied on every call, entries are dropped once the
token has expired, and the whole cache is dropped whenever the registry's revocation generation
changes, so a cached result never outlives a revocation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from enforcer.attestation.constants import (
    DEFAULT_AUDIENCE,
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_VALIDITY_DAYS,
)
from enforcer.attestation.registry import AttestationRegistry, StoredAttestation
from enforcer.attestation.verify import REGISTRY_FAILURES, Verified, check_time, check_token
from enforcer.model import AccountOrigin, AttestationResult

#: Stored attestations examined per decision (newest first).
MAX_CANDIDATES = 16
#: End-customer members passed to the policy in ``end_customers``.
POLICY_KEYS = frozenset({"country", "hq_country", "parent_hq_country", "kyc_level"})
#: End-customer members that say who it is, for screening and the ledger (``AttestationResult.parties``).
PARTY_KEYS = frozenset({"name", "aliases", "name_hash"})
#: Cache entries kept before the cache is cleared.
MAX_CACHE_ENTRIES = 10_000


@dataclass(slots=True)
class CacheStats:
    """Counters for tests and benchmarks."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0


class RegistryAttestationProvider:
    """Finds and verifies the attestation covering an account (implements ``ports.AttestationProvider``).

    Parameters
    ----------
    registry
        The reseller registry (local files or DynamoDB).
    audience
        Expected ``aud`` claim.
    clock_skew
        Seconds of tolerance on ``nbf``/``exp``.
    max_validity_days
        Longest accepted validity of a token.
    """

    def __init__(
        self,
        registry: AttestationRegistry,
        audience: str = DEFAULT_AUDIENCE,
        clock_skew: int = DEFAULT_CLOCK_SKEW,
        max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS,
    ) -> None:
        self.registry = registry
        self.audience = audience
        self.clock_skew = clock_skew
        self.max_validity_days = max_validity_days
        self.stats = CacheStats()
        self._cache: dict[tuple[str, str, str], Verified | AttestationResult] = {}
        #: Reseller registry entries as ``input.reseller`` (None: not registered), per generation.
        self._resellers: dict[str, dict[str, Any] | None] = {}
        self._generation: str | None = None

    def clear_cache(self) -> None:
        """Drop every cached verification."""
        self._cache.clear()

    def _sync_generation(self) -> None:
        gen = self.registry.revocation_generation()
        if gen != self._generation:
            if self._cache:
                self.stats.invalidations += 1
            self._cache.clear()
            self._resellers.clear()
            self._generation = gen

    def _check(self, att: StoredAttestation, origin: AccountOrigin, now: float) -> AttestationResult:
        key = (
            att.token_sha256,
            origin.account_id,
            origin.reseller or "",
        )
        hit = self._cache.get(key)
        if hit is None:
            self.stats.misses += 1
            hit = check_token(
                att.token,
                origin,
                self.registry,
                now,
                self.audience,
                max_validity_days=self.max_validity_days,
                clock_skew=self.clock_skew,
            )
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = hit
        else:
            self.stats.hits += 1
        if isinstance(hit, AttestationResult):
            return hit
        result = check_time(hit, now, self.clock_skew)
        if result.status == "expired":
            self._cache.pop(key, None)
        return result

    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        """Return the status (and verified claims) of the attestations covering ``origin``.

        Direct accounts (no reseller) give ``not_required``; a reseller account with nothing
        stored gives ``missing``. Every unexpired stored attestation is verified (more than
        :data:`MAX_CANDIDATES` of them is ``invalid``: fail closed); those valid now and not
        superseded by a newer valid one (its ``supersedes`` claim names their jti) all count: their
        end customers go to the policy as ``end_customers``, so the most restrictive answer wins.
        The result carries the newest of them. If none is valid, the newest one's status is returned.

        ``ref`` (a jti, from the ``gpu-attestation`` tag) can only narrow: the named attestation
        must be one of those that count, else its own failure (``missing``, ``expired`` ...,
        ``invalid`` when superseded) is returned; it never removes the others.

        The reseller's own registry entry is attached (``reseller``) for the policy. Never raises:
        a registry failure gives ``invalid`` (fail closed).
        """
        if origin.reseller is None:
            return AttestationResult("not_required", detail="direct account (no reseller)")
        try:
            self._sync_generation()
            stored = self.registry.attestations_for(origin.account_id)
            info = self._reseller_info(origin.reseller)
        except REGISTRY_FAILURES as exc:
            return AttestationResult(
                "invalid", detail=f"attestation registry unavailable: {type(exc).__name__}: {str(exc)[:160]}"
            )
        result = self._select(stored, origin, now, ref)
        return replace(result, reseller=info)

    def _reseller_info(self, reseller_id: str) -> dict[str, Any] | None:
        """The reseller as the policy sees it; cached until the registry generation changes.

        Every reseller change (``put_reseller``, keys, trust) bumps the generation, so a suspension or
        a corrected origin is seen by the next decision.
        """
        if reseller_id not in self._resellers:
            reseller = self.registry.get_reseller(reseller_id)
            if len(self._resellers) >= MAX_CACHE_ENTRIES:
                self._resellers.clear()
            self._resellers[reseller_id] = reseller.to_policy() if reseller is not None else None
        return self._resellers[reseller_id]

    def _select(
        self, stored: list[StoredAttestation], origin: AccountOrigin, now: float, ref: str | None
    ) -> AttestationResult:
        if not stored:
            return AttestationResult(
                "missing", detail=f"no attestation stored for account {origin.account_id}"
            )
        # Every unexpired attestation must be examined, or a reseller could push a restrictive one
        # out of view by submitting many favourable ones: past the bound, fail closed.
        unexpired = [a for a in stored if a.exp + self.clock_skew > now]
        if len(unexpired) > MAX_CANDIDATES:
            return AttestationResult(
                "invalid",
                detail=f"{len(unexpired)} unexpired attestations for the account (at most "
                f"{MAX_CANDIDATES} are examined): supersede or let old ones expire",
            )
        candidates = unexpired or stored[:1]
        checked: list[tuple[StoredAttestation, AttestationResult]] = []
        for att in candidates:
            try:
                result = self._check(att, origin, now)
            except REGISTRY_FAILURES as exc:
                result = AttestationResult("invalid", detail=f"attestation registry unavailable: {exc}"[:200])
            checked.append((att, result))
        valid = [(a, r) for a, r in checked if r.status == "valid"]
        superseded: dict[str, str] = {}
        for a, r in valid:
            old = r.claims.get("supersedes")
            for b, _ in valid:
                if old == b.jti and (a.iat, a.submitted_at) > (b.iat, b.submitted_at):
                    superseded[b.jti] = a.jti
        current = [r for a, r in valid if a.jti not in superseded]
        if ref is not None:
            named = [(a, r) for a, r in checked if a.jti == ref]
            if not named and any(a.jti == ref for a in stored):
                old = next(a for a in stored if a.jti == ref)
                named = [(old, self._check(old, origin, now))]
            if not named:
                return AttestationResult(
                    "missing", detail=f"no stored attestation {ref[:70]!r} for this account"
                )
            att, chosen = named[0]
            if chosen.status != "valid":
                return chosen
            if att.jti in superseded:
                return replace(
                    chosen,
                    status="invalid",
                    detail=f"attestation {att.jti} is superseded by {superseded[att.jti]}",
                )
        elif current:
            chosen = current[0]
        else:
            return checked[0][1]
        # only what the policy judges: origin and KYC, never a name (the audit log keeps the input)
        ecs = [{k: v for k, v in r.claims["end_customer"].items() if k in POLICY_KEYS} for r in current]
        parties = [{k: v for k, v in r.claims["end_customer"].items() if k in PARTY_KEYS} for r in current]
        return replace(chosen, end_customers=ecs, parties=parties)
