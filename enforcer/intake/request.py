"""The end of every intake: an extractor's findings (``Parsed``) become one ``LaunchRequest``.

Written once for every shape that reads a request body (CloudTrail calls, CloudFormation resources):
an extractor that ignored the body passes through with the event's ids, a body with no instance type
is ignored, and the attestation reference is read from the same body (a malformed one is recorded
as ``attestation_ref_rejected``, never silently dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from enforcer.intake.fields import Parsed
from enforcer.intake.tags import find_attestation_ref
from enforcer.model import Ignored, LaunchRequest


def launch_request(
    parsed: Parsed | Ignored,
    *,
    source: str,
    action: str,
    account_id: str,
    region: str,
    event_id: str | None,
    event_time: str | None,
    body: Mapping[str, Any],
    principal: str | None = None,
    extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    empty: str = "no instance type in request",
) -> LaunchRequest | Ignored:
    """Build the request of one launch from what its extractor found.

    Parameters
    ----------
    parsed
        The extractor's result for ``body``.
    source, action, account_id, region, event_id, event_time, principal
        The request's identity, from the event around the body (already validated).
    body
        The request body the extractor read; the attestation reference (tag) is read from it.
    extra
        Shape-specific context added after the extractor's own ``extra``; a callable is called only
        when the body holds a launch (so validating that context never turns an ignored call into an
        error).
    empty
        Why a body without an instance type is ignored.

    Returns
    -------
    LaunchRequest or Ignored
        ``Ignored`` (carrying ``event_id`` and ``action``) when the extractor ignored the body or found
        no instance type in it.
    """
    if isinstance(parsed, Ignored):
        parsed.event_id, parsed.action = event_id, action
        return parsed
    if not parsed.items:
        return Ignored(empty, event_id, action)
    merged = parsed.extra
    if callable(extra):
        extra = extra()
    if extra:
        merged.update(extra)
    ref, problem = find_attestation_ref(body)
    if problem is not None:
        merged["attestation_ref_rejected"] = problem
    return LaunchRequest(
        source=source,
        action=action,
        account_id=account_id,
        region=region,
        principal=principal,
        items=parsed.items,
        event_id=event_id,
        event_time=event_time,
        instance_ids=parsed.instance_ids,
        attestation_ref=ref,
        extra=merged,
    )
