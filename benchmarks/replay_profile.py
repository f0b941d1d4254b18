"""Where a replay's CPU goes, stage by stage, on the realistic mix (or any CloudTrail directory).

``python benchmarks/replay_profile.py [DIR] --state STATE``: replays DIR on one process through the
code path of ``enforcer replay --out`` (each file through the worker's ``_one``) and prints the CPU
time of each stage, total and per decision. Without DIR it writes a fresh mix (and its account
directory) with scripts/synth_cloudtrail.py. Stages nest (``decide`` holds the engine, observe,
enrich and the account look-up), so the figures do not add up to the total.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _timed(acc: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            acc[key] = acc.get(key, 0.0) + time.process_time() - t

    return wrapper


def profile(src: Path, state: Path, engine: str = "embedded") -> tuple[float, int, int, dict[str, float]]:
    """Replay ``src`` with the policy engine ``engine``: (CPU s, events, decided, CPU s per stage)."""
    import enforcer.replay as rp
    import enforcer.replay_run as rr

    rr._init(rr.RunConfig(str(state), engine, None, None, None, False, None))
    enf, book = rr._worker["enf"], rr._worker["book"]
    acc: dict[str, float] = {}
    for obj, name, key in (
        (rp, "normalise", "normalise (candidates)"),
        (enf, "decide", "decide"),
        (enf.engine, "evaluate", "  engine.evaluate"),
        (enf, "observe", "  observe (evidence, screening, ledger)"),
        (enf, "enrich", "  enrich (classify)"),
        (enf.accounts, "get", "  account directory"),
        (rp, "dumps_line", "write JSON line"),
    ):
        setattr(obj, name, _timed(acc, key, getattr(obj, name)))
    if book is not None:
        book.book = _timed(acc, "ledger book", book.book)
    parts = Path(tempfile.mkdtemp(prefix="replay-profile-"))
    files = rr.local_files([str(src)]) or []
    events = decided = 0
    cpu = time.process_time()
    for i, f in enumerate(files):
        doc = rr._one((i, str(f), str(parts)))
        events, decided = events + doc["summary"]["events"], decided + doc["summary"]["decided"]
    return time.process_time() - cpu, events, decided, acc


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", type=Path, help="CloudTrail directory (default: write a fresh mix)")
    ap.add_argument("--state", type=Path, help="enforcer state directory (accounts.json)")
    ap.add_argument("--events", type=int, default=100_000, help="events of the fresh mix")
    ap.add_argument("--launch-share", type=float, default=0.02, help="launch share of the fresh mix")
    ap.add_argument("--engine", default="embedded", help="policy engine (embedded, wasm, ...)")
    args = ap.parse_args(argv)
    src, state = args.src, args.state
    if src is None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from synth_cloudtrail import write_mix

        tmp = Path(tempfile.mkdtemp(prefix="replay-profile-mix-"))
        src, state = tmp / "mix", tmp / "state"
        write_mix(src, args.events, per_file=2000, accounts=3000, launch_share=args.launch_share, state=state)
    if state is None:
        ap.error("--state is needed with a source directory")
    cpu, events, decided, acc = profile(src, state, args.engine)
    print(f"{events:,} events, {decided:,} decided, {cpu:.2f} CPU s ({events / cpu:,.0f} events per CPU s)")
    per = max(decided, 1)
    top = sum(s for k, s in acc.items() if not k.startswith(" "))
    acc["rest: read, gunzip, pre-filter, replay loop"] = cpu - top
    for key, s in acc.items():
        print(f"  {key:46s} {s:7.3f} s  {s / per * 1e6:8.0f} µs per decision")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
