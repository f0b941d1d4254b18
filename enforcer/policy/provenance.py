"""The policy revision an OPA server reports, next to the one of the local policy directory.

Decision queries ask for ``?provenance=true``; OPA then answers with
``{"provenance": {"version": ..., "bundles": {NAME: {"revision": REV}}}, "result": ...}``. The revision
the server *ran* is what the audit record must name: ``RevisionTracker`` keeps it per thread (the
pipeline reads ``engine.revision`` right after ``evaluate`` in the same thread), and logs a warning,
once per distinct pair, when it differs from the local revision. A server without bundles (policies
uploaded with ``enforcer policy push``) reports none; the local revision is recorded then.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("enforcer.policy.opa")

#: Longest revision string taken from a server (a longer one is cut, never trusted blindly).
MAX_REVISION = 200
#: Longest OPA version string taken from a server.
MAX_VERSION = 40


def server_revision(provenance: Any) -> str | None:
    """The revision in an OPA ``provenance`` object: the bundle's, or ``name=rev`` pairs for several.

    Returns None when the server reports no bundle (or an unusable shape).
    """
    if not isinstance(provenance, dict):
        return None
    bundles = provenance.get("bundles")
    if not isinstance(bundles, dict) or not bundles:
        return None
    revs: list[tuple[str, str]] = []
    for name, info in sorted(bundles.items()):
        rev = info.get("revision") if isinstance(info, dict) else None
        revs.append((str(name), rev if isinstance(rev, str) else ""))
    value = revs[0][1] if len(revs) == 1 else ",".join(f"{n}={r}" for n, r in revs)
    return value[:MAX_REVISION] or None


def server_version(provenance: Any) -> str | None:
    """The OPA version an answer's ``provenance`` reports (e.g. ``1.22.3``), None when absent or odd."""
    version = provenance.get("version") if isinstance(provenance, dict) else None
    if not isinstance(version, str) or not version or len(version) > MAX_VERSION:
        return None
    return version if all(c.isalnum() or c in ".-+" for c in version) else None


class RevisionTracker:
    """Per-thread server revision with a mismatch warning.

    Parameters
    ----------
    local
        Revision of the local policy directory.
    """

    def __init__(self, local: str) -> None:
        self.local = local
        self.mismatches = 0
        self._tls = threading.local()
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def note(self, provenance: Any) -> str | None:
        """Record what the last answer in this thread reported; return the server revision (or None)."""
        rev = server_revision(provenance)
        self._tls.server = rev
        self._tls.version = server_version(provenance)
        if rev is not None and rev != self.local:
            with self._lock:
                self.mismatches += 1
                first = rev not in self._warned
                self._warned.add(rev)
            if first:
                log.warning(
                    "OPA server runs policy revision %s but the local policy directory is %s; "
                    "decisions record the server's revision",
                    rev,
                    self.local,
                )
        return rev

    @property
    def version(self) -> str | None:
        """The OPA version the server reported for this thread's last answer (None when it did not)."""
        v = getattr(self._tls, "version", None)
        return v if isinstance(v, str) else None

    @property
    def current(self) -> str:
        """The revision to record for this thread's last decision: the server's, else the local one."""
        rev = getattr(self._tls, "server", None)
        return rev if isinstance(rev, str) else self.local
