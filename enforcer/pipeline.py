"""The one path every trigger takes: resolve -> enrich -> policy -> audit (-> act, in the caller).

``Enforcer.decide`` is a pure what-if (replay uses it); ``Enforcer.enforce`` also appends the decision
to the audit log *before* the caller acts, and fails closed when that write fails in enforce mode.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from enforcer.chips import ChipCatalog
from enforcer.ids import uuid4_text
from enforcer.model import (
    CONTROLLED_CLASSES,
    AccountOrigin,
    AttestationResult,
    Decision,
    LaunchItem,
    LaunchRequest,
    Mode,
    Reason,
)
from enforcer.ports import (
    AccountDirectory,
    AttestationProvider,
    AuditReceipt,
    AuditSink,
    EngineError,
    PolicyEngine,
)

FailPolicy = Literal["closed", "open"]


class Resolver(Protocol):
    """Turns references (launch templates, instance ids, offerings) into instance types, in place."""

    def resolve(self, request: LaunchRequest) -> None:
        """Fill ``instance_type`` of unresolved items where AWS can tell; leave the rest unresolved."""
        ...


class LicenceSource(Protocol):
    """The licence register (``enforcer.licences``): licences recorded for an account."""

    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """Every licence of ``account_id`` as the policy sees it (the policy checks scope and dates)."""
        ...


class Observing(Protocol):
    """Adds what the account does not control to the policy input (``enforcer.evidence.collect``)."""

    def observe(
        self,
        request: LaunchRequest,
        origin: AccountOrigin | None,
        att: AttestationResult,
        doc: dict[str, Any],
        now: float,
    ) -> None:
        """Add ``evidence``, ``screening`` and ``ledger`` to ``doc`` in place."""
        ...


class NoAttestations:
    """Attestation provider used before a registry exists: every reseller account is ``missing``."""

    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        """Return ``not_required`` for direct accounts and ``missing`` for reseller accounts."""
        if origin.reseller is None:
            return AttestationResult("not_required")
        return AttestationResult("missing", detail="no attestation registry configured")


@dataclass(slots=True)
class Outcome:
    """A decision plus what the audit log said about it."""

    decision: Decision
    receipt: AuditReceipt | None = None

    @property
    def duplicate(self) -> bool:
        return bool(self.receipt and self.receipt.duplicate)


def rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with millisecond precision."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Enforcer:
    """The decision pipeline with its backends injected.

    Parameters
    ----------
    catalog, accounts, attestations, engine
        Chip catalogue, account directory, attestation provider and policy engine.
    audit
        Decision log; required by ``enforce``.
    resolver
        Optional AWS resolver for references (launch templates, instance ids ...).
    mode
        ``enforce`` or ``dryrun`` (decisions are logged but ``enforced`` is false).
    fail_policy
        What an engine failure means for requests with no controlled chip: ``closed`` (deny) or
        ``open`` (audit, counted). Requests with a controlled chip always fail closed.
    """

    catalog: ChipCatalog
    accounts: AccountDirectory
    engine: PolicyEngine
    attestations: AttestationProvider = field(default_factory=NoAttestations)
    audit: AuditSink | None = None
    resolver: Resolver | None = None
    licences: LicenceSource | None = None
    #: Observed evidence, screening and ledger (issue 14); None: the input carries none of them.
    observer: Observing | None = None
    mode: Mode = "enforce"
    fail_policy: FailPolicy = "closed"
    counters: Counter[str] = field(default_factory=Counter)

    # -- stages ----------------------------------------------------------------------------
    def enrich(self, request: LaunchRequest) -> float:
        """Classify every item in place; return the request's total TPP.

        Items of one ``group`` are alternatives for one capacity (fleet or ASG overrides, a
        requirement's type list) and each carry the full count, so a group counts its largest item;
        groups and ungrouped items add up.
        """
        largest: dict[object, float] = {}
        for n, item in enumerate(request.items):
            self._classify_item(item)
            key = item.group if item.group is not None else n
            largest[key] = max(largest.get(key, 0.0), item.tpp)
        return round(sum(largest.values()), 1)

    def _classify_item(self, item: LaunchItem) -> None:
        if item.instance_type is not None:
            c = self.catalog.classify(item.instance_type)
            item.chip_class, item.accelerators = c.chip_class, c.accelerators
            item.tpp = round(c.total_tpp * item.count, 1)
            return
        ref = item.ref or {}
        kind = ref.get("kind")
        if kind == "instance_requirements" and ref.get("accelerators") is False:
            item.chip_class = "none"
        elif kind == "instance_family":
            item.chip_class, item.tpp = self.catalog.family_class(str(ref.get("family", "")))
        else:
            item.chip_class = "unknown"

    def attestation_for(
        self, origin: AccountOrigin | None, request: LaunchRequest, now: float
    ) -> AttestationResult:
        """Ask the provider, turning any exception into an ``invalid`` status (never raises)."""
        if origin is None:
            return AttestationResult("missing", detail="account unknown")
        try:
            return self.attestations.for_account(origin, now, request.attestation_ref)
        except Exception as exc:  # a provider bug must not let a launch through
            return AttestationResult("invalid", detail=f"attestation check failed: {type(exc).__name__}")

    def licences_for(self, request: LaunchRequest, controlled: bool) -> list[dict[str, Any]] | None:
        """The account's licences for a controlled request; a register failure means none (fail closed)."""
        if not controlled or self.licences is None:
            return None
        try:
            return self.licences.for_account(request.account_id)
        except Exception:  # a register failure must not turn a deny into LICENSED
            self.counters["licence_lookup_failures"] += 1
            return []

    # -- decisions -------------------------------------------------------------------------
    def decide(self, request: LaunchRequest, now: float | None = None) -> Decision:
        """Decide on ``request`` without logging it (a what-if).

        Parameters
        ----------
        request
            The normalised launch request; its items are resolved and classified in place.
        now
            Epoch seconds used for attestation validity and the decision timestamp.
        """
        t0 = time.perf_counter_ns()
        now = time.time() if now is None else now
        if self.resolver is not None and any(i.unresolved for i in request.items):
            self.resolver.resolve(request)
        total_tpp = self.enrich(request)
        controlled = any(i.chip_class in CONTROLLED_CLASSES for i in request.items)
        origin = self.accounts.get(request.account_id)
        if controlled:
            att = self.attestation_for(origin, request, now)
        else:
            att = AttestationResult("not_required", detail="no controlled chip in the request")
        t1 = time.perf_counter_ns()
        licences = self.licences_for(request, controlled)
        input_doc = self.build_input(request, total_tpp, origin, att, now, licences)
        self.observe(request, origin, att, input_doc, now)
        effect, reasons, fail_open = self.evaluate(input_doc, controlled)
        t2 = time.perf_counter_ns()
        return Decision(
            decision_id=uuid4_text(),
            timestamp=input_doc["now"],
            effect=effect,
            enforced=self.mode == "enforce",
            reasons=reasons,
            request=request,
            policy_revision=self.engine.revision,
            engine=self.engine.name,
            engine_version=getattr(self.engine, "version", None),
            mode=self.mode,
            fail_open=fail_open,
            attestation={"status": att.status, "jti": att.jti, "kid": att.kid, "issuer": att.issuer},
            metrics={
                "timer_enrich_ns": float(t1 - t0),
                "timer_eval_ns": float(t2 - t1),
                "timer_total_ns": float(time.perf_counter_ns() - t0),
            },
            input=input_doc,
        )

    def observe(
        self,
        request: LaunchRequest,
        origin: AccountOrigin | None,
        att: AttestationResult,
        doc: dict[str, Any],
        now: float,
    ) -> None:
        """Let the observer add its evidence; attested clear names never stay in the input either way."""
        from enforcer.evidence.names import strip_clear_names

        if self.observer is not None:
            try:
                self.observer.observe(request, origin, att, doc, now)
            except Exception as exc:  # screening that cannot run is reported, never read as "no hit"
                self.counters["observer_failures"] += 1
                doc["screening"] = {"status": "unavailable", "detail": type(exc).__name__, "hits": []}
        strip_clear_names(doc)

    def evaluate(self, input_doc: dict[str, Any], controlled: bool) -> tuple[Any, list[Reason], bool]:
        """Ask the engine about a built input: ``(effect, reasons, fail_open)``, failing closed on errors.

        Replay's ``--baseline`` uses it to judge the same input under another policy without
        resolving, classifying and looking everything up again.
        """
        try:
            return (*_parse_result(self.engine.evaluate(input_doc)), False)
        except EngineError as exc:
            return self._fail(controlled, str(exc))

    def enforce(self, request: LaunchRequest, now: float | None = None, action: str | None = None) -> Outcome:
        """Decide and append the decision to the audit log before anything acts on it.

        Raises
        ------
        ports.AuditWriteError
            When the log write fails in enforce mode: the caller must treat the launch as denied.
        """
        decision = self.decide(request, now)
        if self.audit is None:
            return Outcome(decision)
        try:
            receipt = self.audit.write(decision, action)
        except Exception:
            self.counters["audit_write_failures"] += 1
            if self.mode == "enforce":
                raise
            return Outcome(decision)
        if receipt.duplicate:
            self.counters["duplicates"] += 1
            if receipt.record is not None:  # a redelivery is answered as logged, never re-decided
                from enforcer.audit.record import decision_from_record

                decision = decision_from_record(decision, receipt.record)
        return Outcome(decision, receipt)

    def _fail(self, controlled: bool, detail: str) -> tuple[Any, list[Reason], bool]:
        self.counters["engine_failures"] += 1
        msg = f"policy engine unavailable ({detail[:200]})"
        if controlled or self.fail_policy == "closed":
            return "deny", [Reason("POLICY_ENGINE_UNAVAILABLE", msg + "; failing closed", "critical")], False
        self.counters["fail_open"] += 1
        return "audit", [Reason("POLICY_ENGINE_UNAVAILABLE", msg + "; fail-open by policy", "high")], True

    @staticmethod
    def build_input(
        request: LaunchRequest,
        total_tpp: float,
        origin: AccountOrigin | None,
        att: AttestationResult,
        now: float,
        licences: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The policy input document (``input`` in Rego).

        It holds what the policy decides on; per-event bookkeeping (event id and time, instance ids,
        where in the event each item was found) stays in the decision and the audit record only, so
        identical launches give identical inputs.
        """
        items = []
        for i in request.items:
            item: dict[str, Any] = {
                "instance_type": i.instance_type,
                "count": i.count,
                "chip_class": i.chip_class,
                "tpp": i.tpp,
                "unresolved": i.instance_type is None,
            }
            if i.ref is not None:
                item["ref"] = i.ref
            items.append(item)
        req = {
            "source": request.source,
            "action": request.action,
            "account_id": request.account_id,
            "region": request.region,
            "principal": request.principal,
            "items": items,
            "total_tpp": total_tpp,
        }
        doc: dict[str, Any] = {"request": req, "attestation": att.to_policy(), "now": rfc3339(now)}
        if origin is not None:  # absent, not null: Rego's `not input.account` must hold for unknown accounts
            doc["account"] = origin.to_dict()
        if att.reseller is not None:  # the reseller's own origin (absent: not in the registry)
            doc["reseller"] = att.reseller
        if licences is not None:
            doc["licences"] = licences
        return doc


def _parse_result(result: Any) -> tuple[Any, list[Reason]]:
    if not isinstance(result, dict) or result.get("effect") not in ("allow", "deny", "audit"):
        raise EngineError(f"policy returned no valid decision: {str(result)[:200]}")
    raw = result.get("reasons") or []
    if not isinstance(raw, list):  # a wrong type fails closed instead of raising past the pipeline
        raise EngineError("policy returned reasons that are not a list")
    reasons = []
    for r in raw:
        if not isinstance(r, dict) or not isinstance(r.get("code"), str):
            raise EngineError("policy returned a malformed reason")
        reasons.append(Reason(r["code"], str(r.get("message", "")), str(r.get("severity") or "medium")))
    return result["effect"], reasons
