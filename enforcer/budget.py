"""The blast-radius budget of one guard invocation: the per-invocation cap, then per-account caps.

Caps protect against a policy bug, not against enforcement: a legal prohibition is never capped.
Beyond a cap, or when the account's counter cannot be read, the guard only alerts and queues the
rest in the backlog (``enforcer.act_state``, ``enforcer.guard_backlog``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from enforcer.act_state import AccountCaps


@dataclass
class Budget:
    """What one invocation may still act on.

    Parameters
    ----------
    max_per_invocation
        Instances this invocation may act on (legal prohibitions aside).
    caps
        Per account and region hourly caps (``act_state.AccountCaps``), or None for the
        per-invocation cap only.
    """

    max_per_invocation: int
    caps: AccountCaps | None = None
    used: int = 0
    errors: list[str] = field(default_factory=list)

    def take(self, n: int) -> int:
        """Grant up to ``n`` actions under the per-invocation cap."""
        grant = max(0, min(n, self.max_per_invocation - self.used))
        self.used += grant
        return grant

    def invocation_room(self, n: int, legal: bool) -> int:
        """What the per-invocation cap lets through of ``n`` (all of it for a legal prohibition)."""
        return n if legal else max(0, min(n, self.max_per_invocation - self.used))

    def take_for(self, n: int, account: str, region: str, legal: bool) -> int:
        """Grant up to ``n`` actions in ``account``/``region``: legal denies are never capped.

        Non-legal denies pass the per-invocation cap, then the account's hourly counter (halving
        the request until it fits); a counter failure grants nothing (alert, backlog).
        """
        if legal:
            return n
        grant = self.invocation_room(n, False)
        if grant and self.caps is not None:
            try:
                while grant and not self.caps.acquire(account, region, grant):
                    grant = 0 if grant == 1 else grant // 2
            except Exception as exc:
                self.errors.append(f"blast-radius counter failed: {type(exc).__name__}")
                grant = 0
        self.used += grant
        return grant
