"""Core data types shared by every stage of the pipeline.

The types are plain dataclasses (cheap to build on the hot path) with explicit
``to_dict`` methods that produce the JSON contracts of docs/design.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Effect = Literal["allow", "deny", "audit"]
Mode = Literal["enforce", "dryrun"]

#: Chip classes, most to least restrictive. ``unknown`` and ``indeterminate`` are treated as controlled.
CHIP_CLASSES = ("3A090.a", "3A090.b", "indeterminate", "unknown", "none")
CONTROLLED_CLASSES = frozenset({"3A090.a", "3A090.b", "indeterminate", "unknown"})

#: Attestation statuses passed into the policy; Rego maps each to a reason code.
ATTESTATION_STATUSES = (
    "valid",
    "missing",
    "invalid",
    "expired",
    "not_yet_valid",
    "unknown_issuer",
    "key_revoked",
    "account_mismatch",
    "incomplete",
    "not_required",
)


class InputError(ValueError):
    """Bad input: malformed event, wrong types, oversized payload.

    The CLI turns it into one line on stderr and exit code 2; handlers turn it into
    a deny (or an error response) that is audited. ``code`` is a stable UPPER_SNAKE code.
    """

    def __init__(self, message: str, code: str = "BAD_INPUT") -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Accelerator:
    """One kind of accelerator inside an instance type."""

    model: str
    count: float
    tpp: float | None
    pd: float | None
    chip_class: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "count": self.count,
            "tpp": self.tpp,
            "pd": self.pd,
            "chip_class": self.chip_class,
        }


@dataclass(slots=True)
class Classification:
    """Result of classifying one instance type (``enforcer catalog classify``)."""

    instance_type: str
    accelerators: list[Accelerator]
    chip_class: str
    total_tpp: float
    source: str = "bundled"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_type": self.instance_type,
            "accelerators": [a.to_dict() for a in self.accelerators],
            "chip_class": self.chip_class,
            "total_tpp": self.total_tpp,
        }


@dataclass(slots=True)
class LaunchItem:
    """One line of a launch request: an instance type (or an unresolved reference) and a count.

    ``ref`` holds what AWS must resolve when the type is not in the request, e.g.
    ``{"kind": "launch_template", "id": "lt-…", "version": "$Latest"}``,
    ``{"kind": "instance_id", "id": "i-…"}``, ``{"kind": "capacity_block_offering", "id": "cb-…"}``,
    ``{"kind": "instance_requirements", "accelerators": true}``.
    """

    instance_type: str | None
    count: int = 1
    ref: dict[str, Any] | None = None
    path: str = ""
    chip_class: str | None = None
    tpp: float = 0.0
    accelerators: list[Accelerator] = field(default_factory=list)
    #: Items sharing a group are alternatives for one capacity (fleet overrides, a requirement's
    #: type list): the launch gets one of them, so the request's TPP counts the largest, not the sum.
    group: str | None = None

    @property
    def unresolved(self) -> bool:
        return self.instance_type is None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "instance_type": self.instance_type,
            "count": self.count,
            "chip_class": self.chip_class,
            "tpp": self.tpp,
            "unresolved": self.unresolved,
        }
        if self.ref is not None:
            d["ref"] = self.ref
        if self.path:
            d["path"] = self.path
        if self.group is not None:
            d["group"] = self.group
        if self.accelerators:
            d["accelerators"] = [a.to_dict() for a in self.accelerators]
        return d


@dataclass(slots=True)
class LaunchRequest:
    """The normalised form of every trigger (CloudTrail, hook, broker, state change, sweep)."""

    source: str
    action: str
    account_id: str
    region: str
    principal: str | None = None
    items: list[LaunchItem] = field(default_factory=list)
    event_id: str | None = None
    event_time: str | None = None
    instance_ids: list[str] = field(default_factory=list)
    attestation_ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "action": self.action,
            "account_id": self.account_id,
            "region": self.region,
            "principal": self.principal,
            "event_id": self.event_id,
            "event_time": self.event_time,
            "items": [i.to_dict() for i in self.items],
            "instance_ids": list(self.instance_ids),
        }
        if self.attestation_ref:
            d["attestation_ref"] = self.attestation_ref
        if self.extra:
            d["extra"] = self.extra
        return d


@dataclass(slots=True)
class Ignored:
    """An event recognised but not decided (failed API call, read-only call, not a launch)."""

    reason: str
    event_id: str | None = None
    action: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"decided": False, "reason": self.reason, "event_id": self.event_id, "action": self.action}


@dataclass(slots=True)
class AccountOrigin:
    """Who an account really is, from the account directory."""

    account_id: str
    country: str | None = None
    hq_country: str | None = None
    parent_hq_country: str | None = None
    kyc: str = "none"
    reseller: str | None = None
    name: str | None = None
    #: Name of the ultimate parent (screened, and a ledger owner); absent from the JSON when unset.
    parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "account_id": self.account_id,
            "country": self.country,
            "hq_country": self.hq_country,
            "parent_hq_country": self.parent_hq_country,
            "kyc": self.kyc,
            "reseller": self.reseller,
            "name": self.name,
        }
        if self.parent is not None:
            d["parent"] = self.parent
        return d


@dataclass(slots=True)
class AttestationResult:
    """Outcome of attestation lookup + verification for one account, as the policy sees it."""

    status: str
    claims: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    jti: str | None = None
    kid: str | None = None
    issuer: str | None = None
    #: End customers of every current, valid, not superseded attestation (most restrictive wins).
    end_customers: list[dict[str, Any]] | None = None
    #: The reseller's own registry entry (id, country, hq_country, parent_hq_country, status).
    reseller: dict[str, Any] | None = None
    #: Who the end customers are (``name``, ``aliases``, ``name_hash`` of each current attestation):
    #: screened and aggregated by ``enforcer.evidence``, never passed to the policy or logged.
    parties: list[dict[str, Any]] | None = None

    def to_policy(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status,
            "detail": self.detail,
            "claims": self.claims,
            "jti": self.jti,
            "kid": self.kid,
            "issuer": self.issuer,
        }
        if self.end_customers is not None:
            doc["end_customers"] = self.end_customers
        return doc


@dataclass(slots=True)
class Reason:
    code: str
    message: str
    severity: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "severity": self.severity}


@dataclass(slots=True)
class Decision:
    """The decision contract of docs/design.md."""

    decision_id: str
    timestamp: str
    effect: Effect
    enforced: bool
    reasons: list[Reason]
    request: LaunchRequest
    policy_revision: str
    engine: str
    mode: Mode = "enforce"
    fail_open: bool = False
    attestation: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    input: dict[str, Any] | None = None
    #: The OPA version of the engine that decided, when it reports one (an OPA server; audit only).
    engine_version: str | None = None

    @property
    def reason_codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "effect": self.effect,
            "enforced": self.enforced,
            "mode": self.mode,
            "reasons": [r.to_dict() for r in self.reasons],
            "request": self.request.to_dict(),
            "policy": {"revision": self.policy_revision, "engine": self.engine},
        }
        if self.fail_open:
            d["fail_open"] = True
        if self.attestation is not None:
            d["attestation"] = self.attestation
        if self.input is not None:  # what the policy saw besides the request (issue 14)
            for key in ("evidence", "screening", "ledger"):
                if key in self.input:
                    d[key] = self.input[key]
        return d
