"""Launch broker requests: API Gateway REST proxy ``POST /launch`` and a direct-invoke form.

The body is caller-controlled, so it is validated with a strict pydantic model (bounded sizes,
no unknown fields, no type coercion). The validated body is kept in ``extra["launch"]`` so the
broker can launch exactly what was decided.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from enforcer.intake.cloudtrail import account_id
from enforcer.intake.fields import kind, ref_item, text
from enforcer.intake.parse import parse_event_bytes
from enforcer.intake.registry import detector
from enforcer.model import InputError, LaunchItem, LaunchRequest

if TYPE_CHECKING:
    from enforcer.intake.broker_body import LaunchBody

MAX_BODY_BYTES = 16_384
ROUTE = "/launch"


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
        if len(items) > 1:  # the fleet's types are alternatives for ``count`` instances
            for item in items:
                item.group = "body.fleet"
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
    from enforcer.intake.broker_body import validate_body

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
    from enforcer.intake.broker_body import validate_body

    body = validate_body(event.get("launch"))
    if event_id is None and body.clientToken is not None:
        event_id = body.clientToken
    return _request(body, acct, principal, event_id, now, {})
