"""Evidence, screening and the ledger for the Lambda handlers (read from the environment).

``ENFORCER_LEDGER_TABLE``
    DynamoDB table of the ledger and call counts (``enforcer.ledger.dynamo``); unset: no ledger.
``ENFORCER_GEOIP_DB``
    The MMDB: a path in the artifact or ``s3://bucket/key`` (copied to /tmp once per container).
``ENFORCER_SCREENING_LIST``
    The screening list: a path or ``s3://bucket/key`` (``enforcer screening load``'s output or the
    published CSL JSON/CSV).
``ENFORCER_CONTACT_LOOKUP``
    ``1`` to read contact addresses (``account:GetContactInformation``; the function's role needs it,
    and Organizations trusted access with the account-management delegated administrator).

A value that cannot be used is a ``ConfigError`` at cold start, not a per-decision surprise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enforcer.config import ConfigError
from enforcer.model import InputError
from enforcer.pipeline import Enforcer

ENV_LEDGER = "ENFORCER_LEDGER_TABLE"
ENV_GEOIP = "ENFORCER_GEOIP_DB"
ENV_SCREENING = "ENFORCER_SCREENING_LIST"
ENV_CONTACT = "ENFORCER_CONTACT_LOOKUP"


def _s3_path(url: str, clients: Any, cache: Path) -> Path:
    bucket, _, key = url[5:].partition("/")
    if not bucket or not key:
        raise ConfigError(f"not an s3://bucket/key URL: {url!r}")
    local = cache / f"{bucket}-{key.replace('/', '_')}"[-200:]
    if not local.exists():
        clients.client("s3").download_file(bucket, key, str(local))
    return local


def attach_evidence(enforcer: Enforcer, clients: Any, environ: Mapping[str, str] | None = None) -> Enforcer:
    """Give ``enforcer`` its observer (and the ledger-booking audit sink) from the environment.

    Parameters
    ----------
    enforcer
        The pipeline ``wiring.aws.build_enforcer`` made.
    clients
        ``wiring.aws.ClientFactory`` (``client(service)``).
    environ
        The environment (default ``os.environ``).

    Raises
    ------
    enforcer.config.ConfigError
        When a configured database or list cannot be opened.
    """
    env = os.environ if environ is None else environ
    if not any(env.get(k) for k in (ENV_GEOIP, ENV_SCREENING, ENV_LEDGER, ENV_CONTACT)):
        return enforcer  # nothing configured: no import of the matching and MMDB libraries at cold start
    from enforcer.evidence.collect import Observer, ScreeningSource
    from enforcer.evidence.contact import ContactCountries
    from enforcer.evidence.geoip import GeoIp, geoip_from_s3
    from enforcer.ledger.dynamo import DynamoLedgerStore
    from enforcer.ledger.sink import LedgerAuditSink

    cache = Path(tempfile.gettempdir())
    geoip = screening = ledger = contacts = None
    try:
        if url := env.get(ENV_GEOIP):
            if url.startswith("s3://"):
                bucket, _, key = url[5:].partition("/")
                geoip = geoip_from_s3(clients.client("s3"), bucket, key, cache)
            else:
                geoip = GeoIp(Path(url))
        if url := env.get(ENV_SCREENING):
            path = _s3_path(url, clients, cache) if url.startswith("s3://") else Path(url)
            screening = ScreeningSource(path)
            screening()  # a list that does not parse fails the cold start
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
    if table := env.get(ENV_LEDGER):
        ledger = DynamoLedgerStore(clients.client("dynamodb"), table)
        if enforcer.audit is not None:
            enforcer.audit = LedgerAuditSink(enforcer.audit, ledger, enforcer.counters)
    if env.get(ENV_CONTACT, "") not in ("", "0"):
        home = getattr(clients, "home_account", None)  # its own account is asked without AccountId
        contacts = ContactCountries(clients.client("account"), own_account=home)
    if any(x is not None for x in (geoip, screening, ledger, contacts)):
        enforcer.observer = Observer(geoip=geoip, contacts=contacts, screening=screening, ledger=ledger)
    return enforcer
