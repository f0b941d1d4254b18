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

import os
import re
from collections.abc import Mapping

#: The Lambda template's settings (infra/template.yaml, Globals), measured by ``make bench``.
DEPLOYED: dict[str, str] = {"GOGC": "off", "GOMEMLIMIT": "128MiB"}

# Go's syntax (runtime/debug.SetMemoryLimit, runtime.readGOGC): a non-negative integer with an optional
# unit suffix, or "off"; GOGC is a signed integer (a negative one is off, like "off").
_GOMEMLIMIT = re.compile(r"\A([0-9]{1,20})(B|KiB|MiB|GiB|TiB)?\Z")
_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_GOGC = re.compile(r"\A(?:off|[+-]?[0-9]{1,9})\Z")
#: The smallest limit taken: under it the collector would run on nearly every allocation (a stalled engine).
MIN_LIMIT = 64 << 20
#: With proportional collection off, the limit may be at most this share of the memory (the function's
#: ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, else the machine's): the interpreter needs the rest.
MAX_LIMIT_SHARE = 0.75


def limit_bytes(value: str) -> int | None:
    """``GOMEMLIMIT`` in bytes (None for ``off``); ValueError when Go would not take it."""
    if value == "off":
        return None
    m = _GOMEMLIMIT.match(value)
    if not m:
        raise ValueError(value)
    n = int(m.group(1)) * _UNITS[m.group(2)]
    if n > (1 << 63) - 1:  # Go's byte count is an int64: it aborts on an overflow
        raise ValueError(value)
    return n


def memory_bytes(environ: Mapping[str, str]) -> int:
    """The memory the process may use: the Lambda function's, else the machine's."""
    mib = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if mib.isdigit() and int(mib) > 0:
        return int(mib) << 20
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def problems(environ: Mapping[str, str]) -> list[str]:
    """The Go runtime variables of ``environ`` that Go would reject or ignore, or that would leave the
    engine's heap unbounded or its collector running constantly, as messages.

    Parameters
    ----------
    environ
        The process environment (``os.environ``).

    Returns
    -------
    list of str
        One message per problem; empty when both are absent or sound.
    """
    out = []
    raw_limit = environ.get("GOMEMLIMIT")
    limit: int | None = None
    if raw_limit is not None:
        try:
            limit = limit_bytes(raw_limit)
        except ValueError:
            out.append(
                f"GOMEMLIMIT={raw_limit[:40]!r} is malformed (Go would abort): "
                "a whole number of bytes up to 2**63-1 with B/KiB/MiB/GiB/TiB, or off"
            )
            raw_limit = "bad"
        else:
            if limit is not None and limit < MIN_LIMIT:
                out.append(
                    f"GOMEMLIMIT={raw_limit} is under {MIN_LIMIT >> 20}MiB: the collector would never rest"
                )
    gogc = environ.get("GOGC")
    if gogc is not None and not _GOGC.match(gogc):
        out.append(f"GOGC={gogc[:40]!r} is malformed (Go would ignore it): a percentage or off")
    elif gogc is not None and (gogc == "off" or int(gogc) < 0) and raw_limit != "bad":
        room = int(memory_bytes(environ) * MAX_LIMIT_SHARE)
        if limit is None:
            out.append(f"GOGC={gogc} without a GOMEMLIMIT: the engine's Go heap would grow without bound")
        elif limit > room:
            out.append(
                f"GOGC={gogc} under GOMEMLIMIT={raw_limit}: more than {MAX_LIMIT_SHARE:.0%} of the "
                f"{memory_bytes(environ) >> 20} MiB there are, the heap could outgrow the process"
            )
    return out


def unset_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The deployed settings for the variables ``environ`` leaves unset; none when it sets either.

    A caller who sets ``GOGC`` or ``GOMEMLIMIT`` has chosen a collection policy: mixing one of theirs
    with one of ours (``GOGC=off`` without their limit, say) could give a heap without a bound.
    """
    if "GOGC" in environ or "GOMEMLIMIT" in environ:
        return {}
    return dict(DEPLOYED)
