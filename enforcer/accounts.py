"""Account directory: account id -> origin (country, HQ, ultimate parent HQ, KYC, reseller).

The local-file backend keeps one JSON document under the state directory. AWS backends
(DynamoDB, Organizations account tags) live in ``enforcer.accounts_aws`` behind the same
``ports.AccountDirectory`` protocol.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from enforcer.ids import ACCOUNT_RE, COUNTRY_RE
from enforcer.model import AccountOrigin, InputError

KYC_LEVELS = ("verified", "pending", "none")


def validate_account_id(account_id: str) -> str:
    """Return ``account_id`` if it is a 12-digit AWS account id, else raise InputError."""
    if not isinstance(account_id, str) or not ACCOUNT_RE.match(account_id):
        raise InputError(f"not a 12-digit AWS account id: {account_id!r}", "BAD_ACCOUNT_ID")
    return account_id


def normalise_country(cc: str | None) -> str | None:
    """Upper-case an ISO 3166-1 alpha-2 code (``cn`` -> ``CN``); None passes through."""
    if cc is None or cc == "":
        return None
    up = cc.strip().upper()
    if not COUNTRY_RE.match(up):
        raise InputError(f"not an ISO 3166-1 alpha-2 country code: {cc!r}", "BAD_COUNTRY")
    return up


def _reseller_id(value: Any) -> str | None:
    """A reseller id as the attestation registry names resellers, or None; InputError otherwise."""
    if value is None or value == "":
        return None
    from enforcer.ids import ID_RE

    if not isinstance(value, str) or not ID_RE.match(value):
        raise InputError(
            f"reseller must match [A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}: {str(value)[:64]!r}", "BAD_RESELLER"
        )
    return value


def origin_from_dict(d: dict[str, Any]) -> AccountOrigin:
    """Build an AccountOrigin from its JSON form, validating every field."""
    kyc = d.get("kyc") or "none"
    if kyc not in KYC_LEVELS:
        raise InputError(f"kyc must be one of {', '.join(KYC_LEVELS)}: {kyc!r}", "BAD_KYC")
    return AccountOrigin(
        account_id=validate_account_id(str(d.get("account_id", ""))),
        country=normalise_country(d.get("country")),
        hq_country=normalise_country(d.get("hq_country")),
        parent_hq_country=normalise_country(d.get("parent_hq_country")),
        kyc=kyc,
        reseller=_reseller_id(d.get("reseller")),
        name=d.get("name") or None,
        parent=d.get("parent") or None,
    )


class LocalAccountDirectory:
    """Account directory in ``STATE/accounts.json``; re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mtime: float = -1.0
        self._accounts: dict[str, AccountOrigin] = {}

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._accounts, self._mtime = {}, -1.0
            return
        if mtime == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text() or "{}")
            accounts = raw.get("accounts", {}) if isinstance(raw, dict) else None
            if not isinstance(accounts, dict):
                raise ValueError('expected {"accounts": {ACCOUNT_ID: {...}}}')
            loaded = {k: origin_from_dict(v) for k, v in accounts.items()}
        except (ValueError, UnicodeDecodeError, AttributeError, TypeError) as exc:  # corrupt: bad input
            raise InputError(f"{self.path}: not an account directory: {exc}", "BAD_INPUT") from exc
        self._accounts = loaded
        self._mtime = mtime

    def get(self, account_id: str) -> AccountOrigin | None:
        """Return the origin of ``account_id``, or None when unknown."""
        self._load()
        return self._accounts.get(account_id)

    def list(self) -> list[AccountOrigin]:
        """Every account, sorted by id."""
        self._load()
        return [self._accounts[k] for k in sorted(self._accounts)]

    def put(self, origin: AccountOrigin) -> None:
        """Add or replace an account (atomic write)."""
        self._load()
        self._accounts[origin.account_id] = origin
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"accounts": {k: v.to_dict() for k, v in sorted(self._accounts.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".accounts.")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1)
        os.replace(tmp, self.path)
        self._mtime = -1.0


class StaticAccountDirectory:
    """In-memory directory (tests, benchmarks, replay with a fixed snapshot)."""

    def __init__(self, origins: list[AccountOrigin] | None = None) -> None:
        self._accounts = {o.account_id: o for o in origins or []}

    def get(self, account_id: str) -> AccountOrigin | None:
        """Return the origin of ``account_id``, or None when unknown."""
        return self._accounts.get(account_id)

    def put(self, origin: AccountOrigin) -> None:
        """Add or replace an account."""
        self._accounts[origin.account_id] = origin
