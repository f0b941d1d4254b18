"""Micro-benchmark of :func:`enforcer.intake.normalise` (speed is measured here, never asserted in tests).

Run ``python -m benchmarks.intake_bench tests/events`` to print microseconds per event per fixture.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enforcer.intake import normalise


def bench_normalise(events: Mapping[str, Any], number: int = 2000) -> dict[str, float]:
    """Return the mean microseconds one :func:`normalise` call takes, per named event.

    Parameters
    ----------
    events
        Name -> parsed event. Events that raise InputError are timed like any other.
    number
        Calls per event.

    Returns
    -------
    dict
        Name -> microseconds per call.
    """
    out: dict[str, float] = {}
    for name, event in events.items():
        start = time.perf_counter()
        for _ in range(number):
            with contextlib.suppress(ValueError):
                normalise(event)
        out[name] = (time.perf_counter() - start) / number * 1e6
    return out


def main(argv: list[str]) -> int:
    """Benchmark every ``*.json`` event in the directory given as the only argument."""
    if len(argv) != 1:
        print("usage: python -m benchmarks.intake_bench EVENTS_DIR", file=sys.stderr)
        return 2
    events = {p.name: json.loads(p.read_text()) for p in sorted(Path(argv[0]).glob("*.json"))}
    for name, us in bench_normalise(events).items():
        print(f"{us:8.1f} us  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
