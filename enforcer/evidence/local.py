"""The observer and ledger on the local state directory (CLI ``decide``, ``replay``, ``ledger show``).

Layout: ``STATE/ledger/ledger.json`` (ledger and call counts), ``STATE/screening/list.json`` (the
list ``enforcer screening load`` stored), the MMDB at ``$ENFORCER_GEOIP_DB`` or ``STATE/geoip.mmdb``.
"""

from __future__ import annotations

import os
from pathlib import Path

from enforcer.evidence.collect import Observer, ScreeningSource
from enforcer.ledger.store import LocalLedgerStore
from enforcer.screening.store import LIST_FILE

GEOIP_ENV = "ENFORCER_GEOIP_DB"
LEDGER_FILE = Path("ledger") / "ledger.json"


def geoip_path(state: Path) -> Path | None:
    """The MMDB to use: ``$ENFORCER_GEOIP_DB`` when set, else ``STATE/geoip.mmdb`` when present."""
    env = os.environ.get(GEOIP_ENV)
    if env:
        return Path(env)
    default = state / "geoip.mmdb"
    return default if default.exists() else None


def local_ledger(state: Path, in_memory: bool = False) -> LocalLedgerStore:
    """The state's ledger file, or an empty in-memory ledger (replay's what-if)."""
    return LocalLedgerStore(None if in_memory else state / LEDGER_FILE)


def local_observer(state: Path, ledger: LocalLedgerStore | None = None) -> Observer:
    """An observer with every local source that exists (an MMDB path that does not open is an error)."""
    from enforcer.evidence.geoip import GeoIp

    path = geoip_path(state)
    return Observer(
        geoip=GeoIp(path) if path is not None else None,
        screening=ScreeningSource(state / LIST_FILE),
        ledger=ledger if ledger is not None else local_ledger(state),
    )
