"""Attestation intake: API Gateway (IAM auth) ``POST /attestations`` for resellers.

The body is ``{"token": "<compact JWS>"}``. The token is verified (signature with the reseller's
registered key, issuer, account binding, validity, revocation) before it is stored; an invalid one
is refused with 422 and its reason code (``ATTESTATION_EXPIRED`` ...), never stored.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from enforcer.attestation import (
    MAX_TOKEN_BYTES,
    RegistryAttestationProvider,
    StoredAttestation,
)
from enforcer.attestation.submit import submit_token
from enforcer.aws_lazy import LazyAttestations
from enforcer.intake import parse_event_bytes
from enforcer.model import InputError
from enforcer.wiring.aws import Runtime, runtime
from lambdas._common import count, freezes_warm_heap, powertools, reply

logger, metrics = powertools("gpu-attestation-intake")


def read_token(event: dict[str, Any]) -> str:
    """The token from the request body (bounded size; base64 bodies accepted)."""
    raw = event.get("body") if isinstance(event, dict) else None
    if not isinstance(raw, str):
        raise InputError("body: expected a JSON object with a token")
    if event.get("isBase64Encoded") is True:
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InputError("body: not valid base64") from None
    token = parse_event_bytes(raw, max_bytes=MAX_TOKEN_BYTES + 256).get("token")
    if not isinstance(token, str):
        raise InputError("body.token: expected a string")
    return token


def submit(rt: Runtime, token: str, now: float) -> tuple[StoredAttestation, bool]:
    """Verify ``token`` for the account it names (``sub``) and store it; InputError with the reason code."""
    provider = rt.enforcer.attestations
    if isinstance(provider, LazyAttestations):  # built on first use (cold start); built now
        provider = provider.resolve()
    if not isinstance(provider, RegistryAttestationProvider):
        raise InputError("no attestation registry is configured", "REGISTRY_UNAVAILABLE")
    return submit_token(
        token,
        rt.enforcer.accounts,
        provider.registry,
        now,
        audience=provider.audience,
        max_validity_days=provider.max_validity_days,
    )


@freezes_warm_heap  # the first invocation's end: the cold start's objects leave the collector's scans
@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Verify and store one attestation."""
    try:
        rt = runtime()
        att, stored = submit(rt, read_token(event), time.time())
    except InputError as exc:
        count(metrics, "Rejected")
        status = 503 if exc.code == "REGISTRY_UNAVAILABLE" else 400 if exc.code == "BAD_INPUT" else 422
        return reply(status, {"code": exc.code, "message": str(exc)[:500]})
    count(metrics, "Accepted")
    logger.info("attestation accepted", extra={"jti": att.jti, "account_id": att.account_id, "new": stored})
    body = {
        "jti": att.jti,
        "account_id": att.account_id,
        "issuer": att.issuer,
        "exp": att.exp,
        "stored": stored,
    }
    return reply(201 if stored else 200, body)
