"""Attestation settings from the environment (shared by the CLI and the wiring).

* ``ENFORCER_ATTEST_AUDIENCE``: expected ``aud`` (default ``gpu-launch-enforcer``).
* ``ENFORCER_ATTEST_MAX_VALIDITY_DAYS``: longest validity a token may have (default 90, 1..3650).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from enforcer.attestation.constants import DEFAULT_AUDIENCE, DEFAULT_MAX_VALIDITY_DAYS
from enforcer.model import InputError

ENV_AUDIENCE = "ENFORCER_ATTEST_AUDIENCE"
ENV_MAX_VALIDITY = "ENFORCER_ATTEST_MAX_VALIDITY_DAYS"


def audience(env: Mapping[str, str] | None = None) -> str:
    """The configured audience."""
    env = os.environ if env is None else env
    return env.get(ENV_AUDIENCE) or DEFAULT_AUDIENCE


def max_validity_days(env: Mapping[str, str] | None = None) -> int:
    """The configured validity cap in days.

    Raises
    ------
    InputError
        When the variable is set but not an integer in 1..3650.
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_MAX_VALIDITY)
    if not raw:
        return DEFAULT_MAX_VALIDITY_DAYS
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{ENV_MAX_VALIDITY} must be an integer number of days, got {raw[:32]!r}") from None
    if not 1 <= value <= 3650:
        raise InputError(f"{ENV_MAX_VALIDITY} must be between 1 and 3650")
    return value
