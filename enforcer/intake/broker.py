"""Launch broker requests: API Gateway REST proxy ``POST /launch`` and a direct-invoke form.

The body is caller-controlled, so it is validated with a strict pydantic model (bounded sizes,
no unknown fields, no type coercion). The validated body is kept in ``extra["launch"]`` so the
broker can launch exactly what was decided.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from enforcer.intake._registry import detector
from enforcer.intake._util import kind, ref_item, text
from enforcer.intake.cloudtrail import account_id
from enforcer.intake.parse import parse_event_bytes
from enforcer.model import InputError, LaunchItem, LaunchRequest

MAX_BODY_BYTES = 16_384
ROUTE = "/launch"
InstanceTypeStr = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,40}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, str_max_length=256)


class LaunchTemplateSpec(_Strict):
    """A launch template by id or name; version ``$Default`` unless given."""

    id: str | None = Field(None, pattern=r"^lt-[0-9a-f]{8,17}$")
    name: str | None = Field(None, min_length=3, max_length=128, pattern=r"^[A-Za-z0-9()./_-]+$")
    version: str = Field("$Default", pattern=r"^(\$Latest|\$Default|[0-9]{1,10})$")

    @model_validator(mode="after")
    def _id_or_name(self) -> LaunchTemplateSpec:
        if (self.id is None) == (self.name is None):
            raise ValueError("give exactly one of id and name")
        return self


class FleetSpec(_Strict):
    """An EC2 Fleet launch: the instance types are alternatives for ``count`` instances."""

    instanceTypes: list[InstanceTypeStr] = Field(min_length=1, max_length=20)
    type: Literal["instant", "request", "maintain"] = "instant"


class LaunchBody(_Strict):
    """The ``POST /launch`` body."""

    instanceType: InstanceTypeStr | None = None
    count: int = Field(1, ge=1, le=1000)
    launchTemplate: LaunchTemplateSpec | None = None
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
    attestationId: str | None = Field(None, min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
    fleet: FleetSpec | None = None
    imageId: str | None = Field(None, pattern=r"^ami-[0-9a-f]{8,17}$")
    subnetId: str | None = Field(None, pattern=r"^subnet-[0-9a-f]{8,17}$")
    clientToken: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")

    @model_validator(mode="after")
    def _something_to_launch(self) -> LaunchBody:
        if self.instanceType is None and self.launchTemplate is None and self.fleet is None:
            raise ValueError("give instanceType, launchTemplate or fleet")
        if self.instanceType is not None and self.fleet is not None:
            raise ValueError("give instanceType or fleet, not both")
        return self


def validate_body(data: Any) -> LaunchBody:
    """Validate a launch body; InputError with at most three one-line problems on failure."""
    if not isinstance(data, dict):
        raise InputError(f"launch body: expected a JSON object, got {kind(data)}")
    try:
        return LaunchBody.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:3]:
            loc = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{loc}: {err['msg']}".replace("\n", " "))
        raise InputError("invalid launch body: " + "; ".join(problems)) from None


def _request(
    body: LaunchBody,
    acct: str,
    principal: str | None,
    event_id: str | None,
    now: str | None,
    extra: dict[str, Any],
) -> LaunchRequest:
    items: list[LaunchItem] = []
    tref = None
    if body.launchTemplate is not None:
        tref = {"kind": "launch_template", **body.launchTemplate.model_dump(exclude_none=True)}
    if body.instanceType is not None:
        items.append(LaunchItem(instance_type=body.instanceType, count=body.count, path="body.instanceType"))
    elif body.fleet is not None:
        for i, t in enumerate(body.fleet.instanceTypes):
            items.append(LaunchItem(instance_type=t, count=body.count, path=f"body.fleet.instanceTypes[{i}]"))
        if len(items) > 1:
            extra["alternatives"] = True
    elif tref is not None:
        items.append(ref_item(tref, "body.launchTemplate", body.count))
        tref = None
    if tref is not None:
        extra["launch_template"] = tref
    extra["launch"] = body.model_dump(exclude_none=True)
    return LaunchRequest(
        source="broker",
        action="broker:Launch",
        account_id=acct,
        region=body.region,
        principal=principal,
        items=items,
        event_id=event_id,
        event_time=now,
        attestation_ref=body.attestationId,
        extra=extra,
    )


def _is_api_gateway(e: Mapping[str, Any]) -> bool:
    return "httpMethod" in e and "requestContext" in e


def _is_direct(e: Mapping[str, Any]) -> bool:
    return "launch" in e and "account_id" in e


@detector("broker_api_gateway", _is_api_gateway)
def from_api_gateway(event: Mapping[str, Any], now: str | None) -> LaunchRequest:
    """API Gateway REST proxy event for ``POST /launch`` (IAM auth; body optionally base64)."""
    if event.get("httpMethod") != "POST":
        raise InputError("httpMethod: only POST is accepted")
    route = event.get("resource") or event.get("path")
    if route != ROUTE:
        raise InputError(f"resource: only {ROUTE} is served")
    ctx = event.get("requestContext")
    if not isinstance(ctx, dict):
        raise InputError(f"requestContext: expected an object, got {kind(ctx)}")
    ident = ctx.get("identity")
    if not isinstance(ident, dict):
        raise InputError(f"requestContext.identity: expected an object, got {kind(ident)}")
    acct = account_id(ident.get("accountId"), "requestContext.identity.accountId")
    principal = text(ident.get("userArn"), "requestContext.identity.userArn", 2048)
    request_id = text(ctx.get("requestId"), "requestContext.requestId", 128)
    raw = event.get("body")
    if not isinstance(raw, str):
        raise InputError(f"body: expected a string, got {kind(raw)}")
    if len(raw) > MAX_BODY_BYTES * 2:
        raise InputError(f"body: larger than {MAX_BODY_BYTES} bytes")
    data: bytes | str = raw
    if event.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("body: not valid base64") from None
    body = validate_body(parse_event_bytes(data, max_bytes=MAX_BODY_BYTES))
    extra: dict[str, Any] = {"api_request_id": request_id}
    org = ident.get("principalOrgId")
    if isinstance(org, str) and len(org) <= 64:
        extra["principal_org_id"] = org
    return _request(body, acct, principal, request_id, now, extra)


@detector("broker_direct", _is_direct)
def from_direct(event: Mapping[str, Any], now: str | None) -> LaunchRequest:
    """Direct invoke: ``{"launch": BODY, "account_id": ACCOUNT, "principal"?: ARN, "event_id"?: ID}``."""
    acct = account_id(event.get("account_id"), "account_id")
    principal = event.get("principal")
    principal = text(principal, "principal", 2048) if principal is not None else None
    eid = event.get("event_id")
    event_id = text(eid, "event_id", 128) if eid is not None else None
    body = validate_body(event.get("launch"))
    if event_id is None and body.clientToken is not None:
        event_id = body.clientToken
    return _request(body, acct, principal, event_id, now, {})
