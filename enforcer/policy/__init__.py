"""Policy engines behind one interface (``ports.PolicyEngine``): embedded OPA or an OPA server over REST."""

from __future__ import annotations

from enforcer.policy.loader import PolicyBundle, load_bundle

#: The one rule every engine evaluates and every audit record names (OPA decision-log ``path``).
DECISION_PATH = "gpu/launch/decision"

__all__ = ["DECISION_PATH", "PolicyBundle", "load_bundle"]
