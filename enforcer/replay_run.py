"""Replay over many local files: parallel processes, progress on stderr, resumable output.

Each source file is replayed on its own (one file in memory at a time) into a part file under
``OUT.parts/``; a part and its summary are renamed into place only when the file is done, so a part
is either whole or absent. The directory holds an ``INCOMPLETE`` marker until every file is done;
then the parts are joined, in source order, into ``OUT`` (written to a temporary name and renamed)
and the directory is removed. An interrupted run leaves ``OUT.parts/`` with the marker and no
``OUT``; ``--resume`` reuses every finished part whose source is unchanged (same path, size and
modification time) and replays the rest.

With ``jobs > 1`` files are spread over that many processes (``spawn``: the policy engine is never
forked), each with its own enforcer. The compute ledger (``AGGREGATE_COMPUTE``) then sums launches per
process: every file of one account (CloudTrail's ``AWSLogs/<account>/`` layout, or
``AWSLogs/<org id>/<account>/`` for an organization trail) goes to one process as one task, in source
order, so the sums per account are exact; they are approximate for an end customer or parent spread over
accounts, and for files outside that layout.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enforcer.model import InputError
from enforcer.policy import go_env
from enforcer.replay import ReplaySummary, _files, events_of_file, replay

MARKER = "INCOMPLETE"


@dataclass(frozen=True)
class RunConfig:
    """What every worker needs to build its enforcer (plain values: sent to spawned processes)."""

    state: str
    engine: str
    opa_url: str | None
    policy_dir: str | None
    baseline: str | None
    memo: bool
    now: float | None


def local_files(sources: Sequence[str]) -> list[Path] | None:
    """Every file under ``sources`` in replay order; None when a source is not a local path."""
    files: list[Path] = []
    for src in sources:
        if src.startswith("s3://"):
            return None
        path = Path(src)
        if not path.exists():
            return None
        files.extend(_files(path))
    return files


def account_folder(path: Path) -> str:
    """The account a CloudTrail file belongs to by its folder: the first 12-digit folder after an
    ``AWSLogs`` (``AWSLogs/<account>/``, ``AWSLogs/<org id>/<account>/`` for an organization trail, or
    under a trail prefix itself named ``AWSLogs``); else the folder after the first ``AWSLogs``; ''
    when not in that layout."""
    parts = path.parts[:-1]
    first = ""
    for i, part in enumerate(parts):
        if part != "AWSLogs" or i + 1 >= len(parts):
            continue
        for nxt in parts[i + 1 : i + 3]:
            if len(nxt) == 12 and nxt.isdigit():
                return nxt
        first = first or parts[i + 1]
    return first


# -- summaries ------------------------------------------------------------------------------------
_COUNTERS = ("by_effect", "by_account", "by_chip_class", "by_reason", "error_codes", "transitions")


def summary_to_json(s: ReplaySummary) -> dict[str, Any]:
    """A JSON-able copy of ``s`` (tuple keys as lists)."""
    doc: dict[str, Any] = {k: getattr(s, k) for k in ("events", "decided", "ignored", "errors", "changed")}
    for name in _COUNTERS:
        doc[name] = [[list(k) if isinstance(k, tuple) else k, v] for k, v in getattr(s, name).items()]
    return doc


def merge(into: ReplaySummary, doc: dict[str, Any]) -> None:
    """Add a :func:`summary_to_json` document to ``into``."""
    for k in ("events", "decided", "ignored", "errors", "changed"):
        setattr(into, k, getattr(into, k) + int(doc[k]))
    for name in _COUNTERS:
        counter: Counter[Any] = getattr(into, name)
        for key, n in doc[name]:
            counter[tuple(key) if isinstance(key, list) else key] += int(n)


# -- workers --------------------------------------------------------------------------------------
_worker: dict[str, Any] = {}


def build_enforcer(cfg: RunConfig, policy_dir: str | None) -> Any:
    """The what-if enforcer of a replaying process (no audit log; memoised when asked and deterministic)."""
    from enforcer.policy.memo import MemoEngine, is_deterministic
    from enforcer.state import CliState
    from enforcer.wiring.local import local_enforcer

    pdir = Path(policy_dir) if policy_dir else None
    enf = local_enforcer(
        CliState(state=Path(cfg.state)),
        engine=cfg.engine,
        opa_url=cfg.opa_url,
        policy_dir=pdir,
        with_audit=False,
    )
    bundle = getattr(enf.engine, "bundle", None)
    if cfg.memo and bundle is not None and is_deterministic(bundle):
        enf.engine = MemoEngine(enf.engine)
    return enf


def _init(cfg: RunConfig) -> None:
    _worker["enf"] = build_enforcer(cfg, cfg.policy_dir)
    _worker["base"] = build_enforcer(cfg, cfg.baseline) if cfg.baseline else None
    from enforcer.ledger.book import LedgerBook

    ledger = getattr(_worker["enf"].observer, "ledger", None)
    _worker["book"] = LedgerBook(ledger) if ledger is not None else None
    _worker["now"] = cfg.now
    # what start-up built (modules, the engine, the account directory) lives as long as the process:
    # out of the collector's reach, a full collection no longer walks it again
    gc.freeze()


def source_id(path: Path) -> dict[str, Any]:
    """Path, size and modification time: a finished part is reused only for the same source."""
    st = path.stat()
    return {"source": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _one(task: tuple[int, str, str]) -> dict[str, Any]:
    index, src, parts = task
    path, pdir = Path(src), Path(parts)
    cpu0, t0 = time.process_time(), time.perf_counter()
    tmp = pdir / f".{index:08d}.jsonl.tmp"
    with tmp.open("w", buffering=1 << 20) as out:
        s = replay(events_of_file(path), _worker["enf"], out, _worker["base"], _worker["now"],
                   book=_worker["book"])  # fmt: skip
    doc = {**source_id(path), "summary": summary_to_json(s), "cpu_s": time.process_time() - cpu0,
           "wall_s": time.perf_counter() - t0, "rss_mb": _peak_rss_mb()}  # fmt: skip
    os.replace(tmp, pdir / f"{index:08d}.jsonl")
    stmp = pdir / f".{index:08d}.summary.tmp"
    stmp.write_text(json.dumps(doc))
    os.replace(stmp, pdir / f"{index:08d}.summary.json")  # last: its presence means the part is whole
    return doc


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that over ``execve``, so a process started by a
    large parent (a benchmark holding the trail it generated) reports the parent's peak as its own.
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the run --------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """A finished (or interrupted) run."""

    summary: ReplaySummary
    files: int
    reused: int
    wall_s: float
    cpu_s: float
    book: Any = None
    interrupted: bool = False
    #: Largest peak RSS of a replaying process (MB).
    rss_mb: float = 0.0


class RunError(Exception):
    """The run cannot start (a previous run's parts without ``--resume``, an unwritable output)."""


def _groups(files: list[Path], indices: list[int]) -> list[list[int]]:
    """``indices`` in tasks for the workers: every file of one account in one task, in source order, so
    one process's ledger books all of that account's launches; a file outside the ``AWSLogs`` layout
    is a task of its own."""
    by_acct: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for i in indices:
        acct = account_folder(files[i])
        if not acct:
            groups.append([i])
        elif acct in by_acct:
            by_acct[acct].append(i)
        else:
            by_acct[acct] = [i]
            groups.append(by_acct[acct])
    return groups


def _many(tasks: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    return [_one(t) for t in tasks]


def run_files(
    files: list[Path],
    cfg: RunConfig,
    out_path: Path,
    *,
    jobs: int = 1,
    resume: bool = False,
    progress: Callable[[int, int, int, float], None] | None = None,
) -> RunResult:
    """Replay ``files`` into ``out_path`` through ``OUT.parts/`` (see the module docstring).

    Parameters
    ----------
    files
        Source files in output order.
    cfg
        How to build each process's enforcer.
    out_path
        The decisions JSONL, written only when every file is done.
    jobs
        Processes (1: in this process).
    resume
        Reuse finished parts of an interrupted run of the same files.
    progress
        Called as ``progress(files_done, files_total, events_done, elapsed_s)`` after each file (with
        ``jobs > 1``, after each account's files).

    Raises
    ------
    RunError
        When ``OUT.parts/`` exists and ``resume`` is False, or cannot be written.
    """
    parts = Path(str(out_path) + ".parts")
    if parts.exists() and not parts.is_dir():
        raise RunError(f"cannot write {parts}: a file is in the way (not a directory)")
    if parts.exists() and not resume:
        raise RunError(f"{parts} holds an interrupted run: add --resume to continue it, or delete it")
    try:
        parts.mkdir(parents=True, exist_ok=True)
        (parts / MARKER).write_text(
            "An interrupted `enforcer replay`: rerun the same command with --resume to finish it.\n"
            + json.dumps({"files": len(files), "out": str(out_path)})
            + "\n"
        )
    except OSError as exc:
        raise RunError(f"cannot write {parts}: {exc.strerror or exc}") from exc
    summary, done, reused, events, cpu, rss = ReplaySummary(), 0, 0, 0, 0.0, 0.0
    todo: list[tuple[int, str, str]] = []
    for i in range(len(files)):
        sfile = parts / f"{i:08d}.summary.json"
        if resume and sfile.exists() and (parts / f"{i:08d}.jsonl").exists():
            doc = json.loads(sfile.read_text())
            if {k: doc.get(k) for k in ("source", "size", "mtime_ns")} == source_id(files[i]):
                merge(summary, doc["summary"])
                done, reused, events = done + 1, reused + 1, events + doc["summary"]["events"]
                continue
        todo.append((i, str(files[i]), str(parts)))
    start = time.perf_counter()

    def finished(doc: dict[str, Any]) -> None:
        nonlocal done, events, cpu, rss
        merge(summary, doc["summary"])
        rss = max(rss, float(doc.get("rss_mb", 0.0)))
        done, events, cpu = done + 1, events + doc["summary"]["events"], cpu + doc["cpu_s"]
        if progress is not None:
            progress(done, len(files), events, time.perf_counter() - start)

    book = None
    try:
        if jobs <= 1 or len(todo) <= 1:
            _init(cfg)
            book = _worker["book"]
            for t in todo:
                finished(_one(t))
        else:
            ctx = multiprocessing.get_context("spawn")
            shared = _shared_wasm(cfg)
            try:
                extra = {"ENFORCER_POLICY_WASM": shared.name} if shared is not None else {}
                with _main_not_reimported(), _worker_go_env(extra):
                    pool = ctx.Pool(min(jobs, len(todo)), initializer=_init, initargs=(cfg,))
                by_index = {t[0]: t for t in todo}
                groups = [[by_index[i] for i in g] for g in _groups(files, [t[0] for t in todo])]
                groups.sort(key=len, reverse=True)  # the largest accounts first: the workers end together
                with pool:
                    for docs in pool.imap_unordered(_many, groups, chunksize=1):
                        for doc in docs:
                            finished(doc)
            finally:
                if shared is not None:
                    shared.cleanup()
    except KeyboardInterrupt:
        return RunResult(summary, done, reused, time.perf_counter() - start, cpu, book, True, rss)
    _join(parts, len(files), out_path)
    return RunResult(summary, done, reused, time.perf_counter() - start, cpu, book, rss_mb=rss)


@contextmanager
def _main_not_reimported() -> Iterator[None]:
    """While workers start, hide the path of a script ``__main__`` (the ``enforcer`` console script).

    ``spawn`` re-runs the parent's main script in every worker so that functions defined there can be
    unpickled; the workers need nothing from it (their functions live here), and running the console
    script imports the whole CLI (click, rich, every command module) in each worker before its first
    file. A ``__main__`` imported by module name (``python -m``) is left alone.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _shared_wasm(cfg: RunConfig) -> tempfile.TemporaryDirectory[str] | None:
    """Engine ``wasm`` on several workers: compile the policy once here, precompiled, into a private
    temporary directory every worker loads (``ENFORCER_POLICY_WASM``) instead of each running ``opa build``
    and compiling the module (about 0.45 s of each worker's start). None when there is nothing to share
    (another engine, a directory already given, no OPA binary): each worker builds its engine as before."""
    if cfg.engine != "wasm" or os.environ.get("ENFORCER_POLICY_WASM"):
        return None
    from enforcer.policy.factory import default_policy_dir
    from enforcer.policy.loader import load_bundle
    from enforcer.policy.wasm_build import WasmUnavailable, opa_binary, write_artifact

    opa = opa_binary()
    if opa is None:
        return None
    tmp = tempfile.TemporaryDirectory(prefix="enforcer-replay-wasm-")
    try:
        write_artifact(load_bundle(cfg.policy_dir or default_policy_dir()), Path(tmp.name), opa)
    except (WasmUnavailable, ImportError, OSError, InputError):
        tmp.cleanup()
        return None
    return tmp


@contextmanager
def _worker_go_env(extra: dict[str, str] | None = None) -> Iterator[None]:
    """While workers start, give them the deployed Go settings (``go_env.DEPLOYED``: ``GOGC=off`` under a
    ``GOMEMLIMIT``) unless the caller set ``GOGC`` or ``GOMEMLIMIT``: Go reads them only at process start.

    The Go runtime of the engine's shared library takes them from the environment the process was started
    with (a change to ``os.environ`` after start-up is not seen), so they can be set for spawned workers
    only; a one-process run keeps the caller's settings. ``extra``: more variables for the workers.
    """
    added = {**go_env.unset_defaults(os.environ), **(extra or {})}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _join(parts: Path, n: int, out_path: Path) -> None:
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    with tmp.open("wb") as out:
        for i in range(n):
            with (parts / f"{i:08d}.jsonl").open("rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
    os.replace(tmp, out_path)
    shutil.rmtree(parts)


def stderr_progress(every_s: float = 2.0) -> Callable[[int, int, int, float], None]:
    """A progress callback printing one line to stderr at most every ``every_s`` seconds."""
    last = [0.0]

    def show(done: int, total: int, events: int, elapsed: float) -> None:
        if done == total or elapsed - last[0] >= every_s:
            last[0] = elapsed
            rate = events / elapsed if elapsed > 0 else 0.0
            print(f"[replay] {done}/{total} files, {events:,} events, {rate:,.0f}/s", file=sys.stderr)

    return show
