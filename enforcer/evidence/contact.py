"""The account's contact-address country from the AWS Account Management API.

``account:GetContactInformation`` answers for the calling account, and for a member account when
called from the organisation's management account or the Account Management delegated
administrator with ``AccountId``. Answers are cached per account (the address changes rarely); an
account the caller may not read has no contact signal (absent, never guessed).
"""

from __future__ import annotations

import time
from typing import Any

from enforcer.aws_errors import error_code

SOURCE = "account:GetContactInformation"
CACHE_SECONDS = 6 * 3600
_DENIED = frozenset(
    {"AccessDeniedException", "AccessDenied", "ResourceNotFoundException", "ValidationException"}
)


class ContactCountries:
    """Contact-address country per account through an injected ``account`` client."""

    def __init__(
        self, client: Any, own_account: str | None = None, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self.client = client
        self.own_account = own_account
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.errors = 0

    def signal(self, account_id: str, now: float) -> dict[str, Any] | None:
        """``{"country", "source", "time"}`` for ``account_id``, or None when not available."""
        hit = self._cache.get(account_id)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        kwargs = {} if account_id == self.own_account else {"AccountId": account_id}
        try:
            info = self.client.get_contact_information(**kwargs).get("ContactInformation") or {}
        except Exception as exc:
            if error_code(exc) not in _DENIED:
                self.errors += 1
                return None  # a transient failure is not cached
            info = {}
        cc = info.get("CountryCode")
        sig = None
        if isinstance(cc, str) and len(cc) == 2 and cc.isalpha():
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            sig = {"country": cc.upper(), "source": SOURCE, "time": when}
        self._cache[account_id] = (now, sig)
        return sig
