"""An audit sink that books each logged decision into the ledger.

With a DynamoDB ledger over an audit store that takes ``side_ops`` (``AwsAuditStore``), the ledger
update rides in the audit record's own transaction: one write, and a redelivered event (refused by
the audit store) books nothing. Otherwise the ledger is written after the record, once, only for a
record that is not a duplicate; a ledger write failure is counted, never a lost decision.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

from enforcer.ledger.owners import delta_of
from enforcer.model import Decision
from enforcer.ports import AuditReceipt


class LedgerAuditSink:
    """Wraps an audit sink; every other attribute (``close``, ``seal`` ...) is the inner sink's."""

    def __init__(self, inner: Any, ledger: Any, counters: Counter[str] | None = None) -> None:
        self.inner = inner
        self.ledger = ledger
        self.counters: Counter[str] = counters if counters is not None else Counter()
        params = inspect.signature(inner.write).parameters
        self._inner_side = "side_ops" in params
        self._inner_defer = "defer_seal" in params

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(
        self,
        decision: Decision,
        action: str | None = None,
        *,
        side_ops: list[dict[str, Any]] | None = None,
        defer_seal: bool = False,
    ) -> AuditReceipt:
        """Write the record (with the ledger's operations when the store can take them); ``defer_seal``
        goes to a store that takes it (a seal due now then runs after the guard's stop)."""
        delta = delta_of(decision)
        ops_of = getattr(self.ledger, "ops", None)
        kw: dict[str, Any] = {"defer_seal": True} if defer_seal and self._inner_defer else {}
        if not delta.empty and ops_of is not None and self._inner_side:
            ops, rest = ops_of(delta)
            receipt: AuditReceipt = self.inner.write(
                decision, action, side_ops=[*(side_ops or []), *ops], **kw
            )
            if rest and not receipt.duplicate:
                self._safe(lambda: self.ledger.put_rest(rest))
            return receipt
        if side_ops:
            receipt = self.inner.write(decision, action, side_ops=side_ops, **kw)
        else:
            receipt = self.inner.write(decision, action, **kw)
        if not delta.empty and not receipt.duplicate:
            self._safe(lambda: self.ledger.apply(delta))
        return receipt

    def _safe(self, fn: Any) -> None:
        try:
            fn()
        except Exception:
            self.counters["ledger_write_failures"] += 1
