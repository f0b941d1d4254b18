"""CloudTrail records: the EventBridge "AWS API Call via CloudTrail" envelope and bare log-file records.

The envelope logic (failed/read-only calls, account, region, principal, event id, attestation tag)
lives here; the per-API extraction is looked up in the ``@shape`` registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from enforcer.ids import ACCOUNT_RE

# EC2's shapes and the coverage table's; the other shape modules load on a miss (registry.LAZY_SHAPE_MODULES)
from enforcer.intake import cloudtrail_ec2, cloudtrail_generic  # noqa: F401
from enforcer.intake.fields import kind, text
from enforcer.intake.registry import CLOUDTRAIL_SHAPES, detector
from enforcer.intake.request import launch_request
from enforcer.model import Ignored, InputError, LaunchRequest

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
_MAX_RECORDS = 100_000


def account_id(value: Any, at: str) -> str:
    """Validate a 12-digit AWS account id."""
    if not isinstance(value, str) or ACCOUNT_RE.fullmatch(value) is None:
        raise InputError(f"{at}: expected a 12-digit AWS account id, got {kind(value)}")
    return value


def region(value: Any, at: str) -> str:
    """Validate an AWS region name (``us-east-1``)."""
    if not isinstance(value, str) or _REGION_RE.fullmatch(value) is None:
        raise InputError(f"{at}: expected an AWS region name, got {kind(value)}")
    return value


def launches_nothing(rec: Mapping[str, Any]) -> str | None:
    """Why ``rec`` launched nothing whatever its body says (a failed or read-only call), else None."""
    err = rec.get("errorCode")
    if err is not None and err != "":
        code = (
            "".join(c if c.isprintable() else "?" for c in err[:128]) if isinstance(err, str) else kind(err)
        )
        return f"api call failed: {code}"
    ro = rec.get("readOnly")
    if ro is True or (isinstance(ro, str) and ro.lower() == "true"):
        return "read-only call"
    return None


def is_launch_call(source: str, name: str) -> bool:
    """Whether a hand-written shape or the coverage table decides ``source``/``name``."""
    return (source, name) in CLOUDTRAIL_SHAPES or cloudtrail_generic.extractor_for(source, name) is not None


def account_and_region(
    rec: Mapping[str, Any], envelope: Mapping[str, Any], ident: Mapping[str, Any]
) -> tuple[str, str]:
    """The account the call acted in (the record's, else the envelope's, else the caller's) and its region.

    Raises
    ------
    InputError
        When either is missing or malformed.
    """
    acct = rec.get("recipientAccountId") or envelope.get("account") or ident.get("accountId")
    return (
        account_id(acct, "recipientAccountId"),
        region(rec.get("awsRegion") or envelope.get("region"), "awsRegion"),
    )


def _unwrap(m: Any, key: str, at: str) -> tuple[Mapping[str, Any] | None, str]:
    """Return the mapping at ``at`` with a ``<Action>Request``/``<Action>Response`` wrapper removed."""
    if m is None or m == "":
        return None, at
    if not isinstance(m, dict):
        raise InputError(f"{at}: expected an object, got {kind(m)}")
    inner = m.get(key)
    if isinstance(inner, dict):
        return inner, f"{at}.{key}"
    return m, at


def from_record(
    rec: Mapping[str, Any], envelope: Mapping[str, Any] | None = None, now: str | None = None
) -> LaunchRequest | Ignored:
    """Normalise one CloudTrail record (optionally inside an EventBridge envelope).

    Parameters
    ----------
    rec
        The CloudTrail record (EventBridge ``detail`` or one entry of a log file's ``Records``).
    envelope
        The EventBridge event around it, if any (its ``id`` becomes the event id).
    now
        Fallback event time.

    Returns
    -------
    LaunchRequest or Ignored
        Ignored for failed calls, read-only calls and calls that launch nothing.

    Raises
    ------
    InputError
        When a field has the wrong type or a required field is missing.
    """
    source = text(rec.get("eventSource"), "eventSource", 128)
    name = text(rec.get("eventName"), "eventName", 128)
    action = f"{source.split('.', 1)[0]}:{name}"
    raw_id = envelope.get("id") if envelope is not None else None
    event_id = text(raw_id, "id", 128) if raw_id is not None else None
    if event_id is None and rec.get("eventID") is not None:
        event_id = text(rec.get("eventID"), "eventID", 128)
    why = launches_nothing(rec)
    if why is not None:
        return Ignored(why, event_id, action)
    hand_written = CLOUDTRAIL_SHAPES.get((source, name))
    extractor = hand_written or cloudtrail_generic.extractor_for(source, name)
    if extractor is None:
        return Ignored(f"not a launch call: {action}", event_id, action)

    env = envelope or {}
    ident = rec.get("userIdentity")
    if ident is not None and not isinstance(ident, dict):
        raise InputError(f"userIdentity: expected an object, got {kind(ident)}")
    ident = ident or {}
    acct, reg = account_and_region(rec, env, ident)
    principal = ident.get("arn") or ident.get("invokedBy")
    principal = text(principal, "userIdentity.arn", 2048) if principal is not None else None
    when = rec.get("eventTime") or env.get("time")
    when = text(when, "eventTime", 64) if when is not None else now

    req, at = _unwrap(rec.get("requestParameters"), f"{name}Request", "requestParameters")
    if req is None:
        raise InputError(f"requestParameters: missing for {action}")
    resp, _ = _unwrap(rec.get("responseElements"), f"{name}Response", "responseElements")
    parsed = extractor(req, at, resp)
    if hand_written is not None:  # what the service model says the shape missed
        parsed = cloudtrail_generic.complete(parsed, req, at, source, name)

    def context() -> dict[str, Any]:
        extra: dict[str, Any] = {}
        invoked_by = ident.get("invokedBy")
        if invoked_by is not None:
            extra["invoked_by"] = text(invoked_by, "userIdentity.invokedBy", 256)
        caller = ident.get("accountId")
        if isinstance(caller, str) and caller != acct:
            extra["caller_account"] = caller[:32]
        ip = rec.get("sourceIPAddress")  # the caller's address (or a service name): origin evidence, issue 14
        if isinstance(ip, str) and ip:
            extra["source_ip"] = ip[:64]
        return extra

    # the attestation reference is read from the request (response tag sets only echo the request's tags)
    return launch_request(
        parsed,
        source="cloudtrail",
        action=action,
        account_id=acct,
        region=reg,
        principal=principal,
        event_id=event_id,
        event_time=when,
        body=req,
        extra=context,
    )


def _is_eventbridge_cloudtrail(e: Mapping[str, Any]) -> bool:
    return e.get("detail-type") == CLOUDTRAIL_DETAIL_TYPE


def _is_bare_record(e: Mapping[str, Any]) -> bool:
    return "eventSource" in e and "eventName" in e


@detector("eventbridge_cloudtrail", _is_eventbridge_cloudtrail)
def from_eventbridge(event: Mapping[str, Any], now: str | None) -> LaunchRequest | Ignored:
    """EventBridge "AWS API Call via CloudTrail": the record is ``detail``."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InputError(f"detail: expected an object, got {kind(detail)}")
    return from_record(detail, event, now)


@detector("cloudtrail_record", _is_bare_record)
def from_bare_record(event: Mapping[str, Any], now: str | None) -> LaunchRequest | Ignored:
    """A bare CloudTrail record, as found in a log file's ``Records[]``."""
    return from_record(event, None, now)


def iter_cloudtrail_records(doc: Any) -> Iterator[dict[str, Any]]:
    """Yield the events held by ``doc`` one by one, ready for :func:`enforcer.intake.normalise`.

    Parameters
    ----------
    doc
        A CloudTrail log file ``{"Records": [...]}``, a single EventBridge event or bare record,
        or a JSON list of those.

    Yields
    ------
    dict
        Each record (EventBridge events are yielded whole so their ``id`` is kept).

    Raises
    ------
    InputError
        When ``doc`` is none of those, or ``Records`` is not a list.
    """
    if isinstance(doc, list):
        if len(doc) > _MAX_RECORDS:
            raise InputError(f"more than {_MAX_RECORDS} events in one document")
        for el in doc:
            yield from iter_cloudtrail_records(el) if isinstance(el, dict) else _bad(el)
        return
    if not isinstance(doc, dict):
        raise InputError(f"expected a JSON object, got {kind(doc)}")
    if "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise InputError(f"Records: expected a list, got {kind(records)}")
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InputError(f"Records[{i}]: expected an object, got {kind(rec)}")
            yield rec
        return
    if "detail-type" in doc or _is_bare_record(doc):
        yield dict(doc)
        return
    raise InputError("not a CloudTrail log file, EventBridge event or CloudTrail record")


def _bad(el: Any) -> Iterator[dict[str, Any]]:
    raise InputError(f"expected a JSON object in the list, got {kind(el)}")
