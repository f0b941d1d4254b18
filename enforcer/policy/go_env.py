"""The Go runtime settings of the embedded engine: what is deployed, and a check before the library loads.

The embedded OPA engine is a Go shared library; its runtime reads ``GOGC`` and ``GOMEMLIMIT`` once, when
the library loads, from the environment the process started with. ``DEPLOYED`` is what the Lambda
template sets (a test keeps ``infra/template.yaml`` equal to it), what ``make bench`` measures as
deployed and what ``enforcer replay --jobs N`` gives its workers: no proportional collection
(``GOGC=off``) under a memory limit (``GOMEMLIMIT``), so the collector runs only when the Go heap reaches
the limit, about once per thousand decisions with evidence, instead of every few dozen.

Go aborts the whole process on a malformed ``GOMEMLIMIT`` (``fatal error: malformed GOMEMLIMIT``) and
silently ignores a malformed ``GOGC``; :func:`problems` names either before the library is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: The Lambda template's settings (infra/template.yaml, Globals), measured by ``make bench``.
DEPLOYED: dict[str, str] = {"GOGC": "off", "GOMEMLIMIT": "128MiB"}

# Go's syntax (runtime/debug.SetMemoryLimit, runtime.readGOGC): a non-negative integer with an optional
# unit suffix, or "off".
_GOMEMLIMIT = re.compile(r"\A(?:off|[0-9]{1,19}(?:B|KiB|MiB|GiB|TiB)?)\Z")
_GOGC = re.compile(r"\A(?:off|-?[0-9]{1,9})\Z")


def problems(environ: Mapping[str, str]) -> list[str]:
    """The Go runtime variables of ``environ`` that Go would reject or ignore, as messages.

    Parameters
    ----------
    environ
        The process environment (``os.environ``).

    Returns
    -------
    list of str
        One message per malformed variable; empty when both are absent or well formed.
    """
    out = []
    limit = environ.get("GOMEMLIMIT")
    if limit is not None and not _GOMEMLIMIT.match(limit):
        out.append(
            f"GOMEMLIMIT={limit[:40]!r} is malformed (Go would abort): "
            "a whole number with B/KiB/MiB/GiB/TiB, or off"
        )
    gogc = environ.get("GOGC")
    if gogc is not None and not _GOGC.match(gogc):
        out.append(f"GOGC={gogc[:40]!r} is malformed (Go would ignore it): a percentage or off")
    elif gogc == "off" and limit in (None, "off"):
        out.append("GOGC=off without a GOMEMLIMIT: the engine's Go heap would grow without bound")
    return out


def unset_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The deployed settings for the variables ``environ`` leaves unset; none when it sets either.

    A caller who sets ``GOGC`` or ``GOMEMLIMIT`` has chosen a collection policy: mixing one of theirs
    with one of ours (``GOGC=off`` without their limit, say) could give a heap without a bound.
    """
    if "GOGC" in environ or "GOMEMLIMIT" in environ:
        return {}
    return dict(DEPLOYED)
