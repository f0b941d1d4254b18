"""Fetch the template payload of a STACK or CHANGE_SET hook request and normalise it.

CloudFormation hands the hook an S3 presigned URL (``requestData.payload``); the URL carries its own
signature, so it is fetched with a plain HTTPS GET, not with the function's S3 credentials. Being a
URL taken from the request, it is checked before anything is sent: HTTPS only, and the host must be
an S3 endpoint (``*.s3.amazonaws.com``, ``*.s3.REGION.amazonaws.com``, ``s3.*`` and the China
partition) or one listed in ``ENFORCER_HOOK_PAYLOAD_HOSTS`` (plain HTTP is accepted only for those, so
tests can point at a loopback moto server). Redirects are not followed; the body is bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from enforcer.intake import normalise
from enforcer.intake.cfn_hook import PAYLOAD_NOT_FETCHED
from enforcer.intake.cfn_stack import from_template_payload, payload_url, template_target
from enforcer.model import Ignored, InputError, LaunchRequest

#: Largest payload read (template + previous template or change list).
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
#: Seconds for connect and for each read; the hook waits 30 s for the whole answer.
TIMEOUT = (3.0, 10.0)
_S3_HOST = re.compile(
    r"([a-z0-9][a-z0-9.-]{1,62}\.)?s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?",
)


class PayloadError(Exception):
    """The payload could not be fetched (the hook fails closed: ``InternalFailure``)."""


Getter = Callable[[str], bytes]


class PresignedFetcher:
    """GET a presigned S3 URL with host allow-listing, no redirects, a timeout and a size bound.

    Parameters
    ----------
    extra_hosts
        Further ``host`` or ``host:port`` values allowed (``ENFORCER_HOOK_PAYLOAD_HOSTS``).
    max_bytes
        Largest body accepted.
    session
        A ``requests.Session`` (a new one when None).
    """

    def __init__(
        self, extra_hosts: tuple[str, ...] = (), max_bytes: int = MAX_PAYLOAD_BYTES, session: Any = None
    ) -> None:
        self.extra_hosts = frozenset(h.lower() for h in extra_hosts)
        self.max_bytes = max_bytes
        self.session = session

    def check(self, url: str) -> str:
        """Return ``url`` when it may be fetched.

        Raises
        ------
        InputError
            Not HTTPS to an S3 host (or HTTP(S) to an allow-listed host).
        """
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            netloc_host = f"{host}:{parts.port}" if parts.port else host
        except ValueError:
            raise InputError("requestData.payload: not a URL") from None
        if parts.username or parts.password:
            raise InputError("requestData.payload: credentials in the URL are refused")
        listed = host in self.extra_hosts or netloc_host in self.extra_hosts
        if listed and parts.scheme in ("http", "https"):
            return url
        if parts.scheme != "https" or _S3_HOST.fullmatch(host) is None:
            raise InputError("requestData.payload: not an HTTPS Amazon S3 URL", "BAD_PAYLOAD_URL")
        return url

    def __call__(self, url: str) -> bytes:
        """Fetch ``url`` (checked first).

        Raises
        ------
        InputError
            The URL is refused.
        PayloadError
            Transport errors, a non-200 answer or an oversize body.
        """
        self.check(url)
        session = self.session or requests.Session()
        try:
            with session.get(url, timeout=TIMEOUT, stream=True, allow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise PayloadError(f"payload fetch answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise PayloadError(f"payload larger than {self.max_bytes} bytes")
                return bytes(body)
        except requests.RequestException as exc:
            raise PayloadError(f"payload fetch failed: {type(exc).__name__}") from None


def parse_payload(body: bytes) -> Mapping[str, Any]:
    """The payload object.

    Raises
    ------
    InputError
        Not a JSON object.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise InputError("payload: not JSON") from None
    if not isinstance(doc, dict):
        raise InputError("payload: expected a JSON object")
    return doc


def normalise_hook(event: Any, now: str | None, fetch: Getter) -> LaunchRequest | Ignored:
    """Normalise any Lambda Hook request, fetching the template payload for STACK and CHANGE_SET.

    Parameters
    ----------
    event
        The hook request.
    now
        RFC 3339 decision time.
    fetch
        Gets the payload bytes for a URL (:class:`PresignedFetcher`).

    Raises
    ------
    InputError
        Malformed request, refused URL, malformed payload.
    PayloadError
        The payload could not be fetched.
    """
    parsed = normalise(event, now)  # validates the envelope; deletes come back Ignored
    if template_target(event) is None or not (
        isinstance(parsed, Ignored) and parsed.reason == PAYLOAD_NOT_FETCHED
    ):
        return parsed
    return from_template_payload(event, parse_payload(fetch(payload_url(event))), now)
