"""Attestation status -> reason code, read from the policy data (one definition, in the policy).

The map is ``data.gpu.config.attestation_codes`` (``policies/gpu/config/data.json``): the policy uses
it to deny, and the attestation intake uses it to say why a submitted token is refused, so both give
the same code. ``valid`` and ``not_required`` have none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

#: Where the map is, relative to the policy directory.
CONFIG_DATA = Path("gpu") / "config" / "data.json"
#: The code for a status the map does not name (or when the policy data cannot be read).
FALLBACK_CODE = "ATTESTATION_INVALID"
_MAX_CONFIG_BYTES = 1024 * 1024


@lru_cache(maxsize=8)
def _read(path: Path, mtime_ns: int) -> Mapping[str, str]:
    raw = path.read_bytes()[: _MAX_CONFIG_BYTES + 1]
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is larger than {_MAX_CONFIG_BYTES} bytes")
    doc = json.loads(raw)
    codes = doc.get("attestation_codes") if isinstance(doc, dict) else None
    if not isinstance(codes, dict) or not all(isinstance(v, str) for v in codes.values()):
        raise ValueError(f"{path}: attestation_codes must map status names to reason codes")
    return MappingProxyType(dict(codes))


def status_reason_codes(policy_dir: Path | str | None = None) -> Mapping[str, str]:
    """Return the policy's attestation status -> reason code map.

    Parameters
    ----------
    policy_dir
        The policy directory; the one the engine loads (``$ENFORCER_POLICY`` ...) when None.

    Returns
    -------
    Mapping
        e.g. ``{"expired": "ATTESTATION_EXPIRED", ...}`` (read-only; re-read when the file changes).

    Raises
    ------
    OSError, ValueError
        When the policy data cannot be read or holds no valid map.
    """
    if policy_dir is None:
        from enforcer.policy.factory import default_policy_dir

        policy_dir = default_policy_dir()
    path = Path(policy_dir) / CONFIG_DATA
    return _read(path, path.stat().st_mtime_ns)


def reason_code(status: str, policy_dir: Path | str | None = None) -> str | None:
    """Return the reason code for an attestation status, or None for ``valid``/``not_required``.

    A failing status the policy data does not name, or policy data that cannot be read, gives
    ``ATTESTATION_INVALID``: a refused token always has a code (fail closed).

    Parameters
    ----------
    status
        One of ``model.ATTESTATION_STATUSES``.
    policy_dir
        As for :func:`status_reason_codes`.

    Returns
    -------
    str or None
        e.g. ``ATTESTATION_EXPIRED`` for ``expired``.
    """
    if status in ("valid", "not_required"):
        return None
    try:
        return status_reason_codes(policy_dir).get(status, FALLBACK_CODE)
    except (OSError, ValueError):
        return FALLBACK_CODE
