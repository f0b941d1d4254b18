"""Wasm engine: the policy compiled by OPA's own compiler (``opa build -t wasm``), run in-process by wasmtime.

The same Rego, planned by OPA into WebAssembly instead of interpreted by OPA's Go evaluator: about 5x less
CPU per decision of this policy (``make bench``). Three built-ins the module leaves to its host
(``sprintf``, ``time.parse_rfc3339_ns``, ``time.format``) come from :mod:`enforcer.policy.wasm_builtins`.

Whatever the module cannot answer cleanly -- a trap, a host built-in that refuses its arguments, an abort,
an undefined or malformed result, an input that is not JSON -- is decided again by the embedded Go
evaluator (:class:`~enforcer.policy.embedded.EmbeddedEngine`, loaded on first need), whose answer or
error stands. So the module only ever speeds an answer up; the Go evaluator stays the reference
(``tests/test_wasm_engine.py`` holds both to the same decisions).

One known difference, the OPA server's too: built-ins the module implements itself return *undefined* on a
type error where the embedded engine (strict built-in errors) raises. The policy guards its inputs
(``is_string``/``is_number``) so that neither happens on what the pipeline builds.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import orjson
import wasmtime

from enforcer.policy import DECISION_PATH, wasm_builtins
from enforcer.policy.limits import MAX_INPUT_DEPTH, nested_deeper
from enforcer.policy.loader import PolicyBundle
from enforcer.policy.wasm_build import CompiledPolicy, WasmUnavailable, find_compiled, host_target
from enforcer.policy.wasm_call import WasmCallError, caller, define_host, memory_view
from enforcer.ports import EngineError

if TYPE_CHECKING:
    from enforcer.policy.embedded import EmbeddedEngine

log = logging.getLogger(__name__)

#: linear memory cap (64 KiB pages): a runaway evaluation aborts and the Go evaluator decides instead
MAX_PAGES = 4096
#: the largest input (JSON bytes) the module is given; a larger one is decided by the Go evaluator. The
#: module's hash tables hash a number by its float64 value, unseeded, so a crafted input (thousands of set
#: members differing only in integers above 2**53) costs it time quadratic in its size (4,400 such
#: screening hits, 450 KB: 5.5 s CPU where Go takes 0.5 s; 300 in 31 KB: 0.12 s, Go 0.03 s); the recorded
#: inputs (tests/data/policy_golden.jsonl.gz) are under 2 KB
MAX_INPUT_BYTES = 32 * 1024
#: how many host built-in results are kept (by argument text) before the memo starts afresh
BUILTIN_MEMO = 4096
#: the largest call kept (argument and result texts, bytes): recorded calls are under 300, and 4,096 calls
#: of ~30 KB each (an input near MAX_INPUT_BYTES printed in a message) would hold ~250 MB
BUILTIN_MEMO_ENTRY = 1024
ABI = (1, 2)  # opa_eval, the one-call entry point, needs ABI 1.2


#: json.dumps(separators=(",", ":"), allow_nan=False, ensure_ascii=False), built once, not per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


class _Fallback(Exception):
    """The module could not answer; the Go evaluator decides."""


class WasmEngine:
    """``ports.PolicyEngine`` on OPA's wasm target.

    Parameters
    ----------
    bundle
        Policies and data (the data is handed to the module once, here).
    compiled
        The module for exactly ``bundle.modules`` (default: ``wasm_build.find_compiled``).
    fast_calls
        Call the module through wasmtime's unchecked C call where available (default).

    Raises
    ------
    WasmUnavailable
        No module for these modules, or it needs a built-in this host does not provide.
    """

    name = "wasm"

    def __init__(
        self, bundle: PolicyBundle, compiled: CompiledPolicy | None = None, fast_calls: bool = True
    ) -> None:
        self.bundle = bundle
        self.revision = bundle.revision
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._reference: EmbeddedEngine | None = None
        self.fallbacks = 0
        compiled = compiled or find_compiled(bundle, host_target())
        self.source = compiled.source
        #: the OPA version that compiled the module (each decision's ``policy.engine_version``)
        self.version = compiled.opa_version or None
        self._store = wasmtime.Store(wasmtime.Engine())
        module = self._module(compiled)
        self._memory = wasmtime.Memory(
            self._store, wasmtime.MemoryType(wasmtime.Limits(_min_pages(module), MAX_PAGES))
        )
        self._failure: str | None = None
        self._view = memory_view(self._store, self._memory, fast_calls)
        self._memo: dict[
            tuple[int, tuple[bytes, ...]], bytes
        ] = {}  # built-in results by (id, argument texts)
        self._host: list[Any] = []  # the host functions' callbacks, alive as long as the instance
        self._instance = self._instantiate(module, fast_calls)
        ex = self._instance.exports(self._store)
        abi = (
            _global(ex, self._store, "opa_wasm_abi_version"),
            _global(ex, self._store, "opa_wasm_abi_minor_version"),
        )
        if abi < ABI:
            raise WasmUnavailable(f"policy.wasm ABI {abi} is older than {ABI}")
        call = {n: caller(self._store, _func(ex, n), k, fast_calls, r) for n, (k, r) in _EXPORTS.items()}
        self._heap_set = call["opa_heap_ptr_set"]
        self._malloc, self._parse, self._dump, self._eval = (
            call["opa_malloc"],
            call["opa_json_parse"],
            call["opa_json_dump"],
            call["opa_eval"],
        )
        self._builtins = {int(v): str(k) for k, v in self._read_json(call["builtins"]()).items()}
        missing = sorted(set(self._builtins.values()) - wasm_builtins.NAMES)
        if missing:
            raise WasmUnavailable(
                f"policy.wasm needs built-ins this host does not provide: {', '.join(missing)}"
            )
        entrypoints = self._read_json(call["entrypoints"]())
        if DECISION_PATH not in entrypoints:
            raise WasmUnavailable(f"policy.wasm has no entrypoint {DECISION_PATH}")
        self._entry = int(entrypoints[DECISION_PATH])
        data = json.dumps(bundle.data, separators=(",", ":")).encode()
        self._data = self._parse_value(data)
        if not self._data:
            raise WasmUnavailable("policy.wasm could not parse the policy data")
        self._heap = (call["opa_heap_ptr_get"]() + 7) & ~7  # each evaluation's heap starts after the data

    # -- loading -----------------------------------------------------------------------------------

    def _module(self, compiled: CompiledPolicy) -> wasmtime.Module:
        if compiled.cwasm is not None:
            try:
                raw = compiled.cwasm.read_bytes()
                if hashlib.sha256(raw).hexdigest() == compiled.cwasm_sha256:
                    return wasmtime.Module.deserialize(self._store.engine, raw)
                log.warning(
                    "precompiled policy %s does not match its manifest; compiling policy.wasm", compiled.cwasm
                )
            except (OSError, wasmtime.WasmtimeError) as exc:  # another wasmtime or CPU: compile instead
                log.info("precompiled policy not usable here (%s); compiling policy.wasm", exc)
        try:
            return wasmtime.Module(self._store.engine, compiled.wasm)
        except wasmtime.WasmtimeError as exc:
            raise WasmUnavailable(f"policy.wasm does not compile: {exc}") from exc

    def _instantiate(self, module: wasmtime.Module, fast: bool) -> wasmtime.Instance:
        linker = wasmtime.Linker(self._store.engine)
        linker.define(self._store, "env", "memory", self._memory)
        i32 = wasmtime.ValType.i32()
        linker.define_func("env", "opa_abort", wasmtime.FuncType([i32], []), self._abort)
        linker.define_func("env", "opa_println", wasmtime.FuncType([i32], []), lambda _addr: None)
        for n in range(5):
            self._host.append(
                define_host(linker, "env", f"opa_builtin{n}", 2 + n, self._builtin, self._fail, fast)
            )
        try:
            return linker.instantiate(self._store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise WasmUnavailable(f"policy.wasm does not instantiate: {exc}") from exc

    # -- memory ------------------------------------------------------------------------------------

    def _cstr(self, addr: int) -> bytes:
        base, size = self._view()
        if not 0 < addr < size:
            raise _Fallback("address outside linear memory")
        return ctypes.string_at(base + addr)

    def _write(self, addr: int, raw: bytes, grow: bool = False) -> None:
        """Copy ``raw`` to ``addr``; with ``grow``, first grow the memory to hold it (up to MAX_PAGES)."""
        base, size = self._view()
        short = addr + len(raw) - size
        if short > 0:
            if not grow:
                raise _Fallback("write outside linear memory")
            try:
                self._memory.grow(self._store, -(-short // 65536))
            except wasmtime.WasmtimeError as exc:
                raise _Fallback(f"memory cannot grow to hold {len(raw)} bytes: {exc}") from exc
            base, _ = self._view()
        ctypes.memmove(base + addr, raw, len(raw))

    def _read_json(self, addr: int) -> Any:
        return json.loads(self._cstr(self._dump(addr)))

    def _parse_value(self, raw: bytes) -> int:
        addr = self._malloc(len(raw))
        self._write(addr, raw)
        return self._parse(addr, len(raw))

    # -- host functions ----------------------------------------------------------------------------

    def _abort(self, addr: int) -> None:
        try:
            self._failure = "opa_abort: " + self._cstr(addr).decode("utf-8", "replace")
        except _Fallback:
            self._failure = "opa_abort"
        raise WasmCallError(self._failure)

    def _fail(self, exc: BaseException) -> None:
        """Record why a host built-in failed; never raises (it runs inside a call from wasm)."""
        if self._failure is None:
            self._failure = "host built-in failed"  # first: the evaluation is never decided here
            try:
                self._failure = f"{type(exc).__name__}: {exc}"
            except Exception:  # an exception that cannot print itself
                self._failure = f"{type(exc).__name__} (unprintable)"

    def _builtin(self, builtin_id: int, _ctx: int, *args: int) -> int:
        """``opa_builtinN``: raises on any failure (``define_host`` hands it to :meth:`_fail`, returns 0)."""
        if self._failure is not None:
            return 0
        name = self._builtins[builtin_id]
        raws = tuple(self._cstr(self._dump(a)) for a in args)
        key = (builtin_id, raws)
        out = self._memo.get(key)
        if out is None:  # the three host built-ins are pure functions of their arguments' JSON text
            out = wasm_builtins.call(name, [raw.decode() for raw in raws]).encode()
            if len(out) + sum(map(len, raws)) <= BUILTIN_MEMO_ENTRY:
                if len(self._memo) >= BUILTIN_MEMO:
                    self._memo.clear()
                self._memo[key] = out
        addr = self._parse_value(out)
        if not addr:
            raise _Fallback(f"{name}: result not parsed")
        return addr

    # -- evaluation --------------------------------------------------------------------------------

    def evaluate(self, input_doc: dict[str, Any]) -> dict[str, Any]:
        """Evaluate ``data.gpu.launch.decision``; raise EngineError on any failure."""
        if os.getpid() != self._pid:
            raise EngineError("wasm engine used after fork; create engines after forking")
        try:
            text: str | None = _ENCODER.encode(input_doc)
        except (TypeError, ValueError, RecursionError):  # not JSON (NaN, a set) or nested too deeply:
            text = None  # the Go evaluator's error stands, worded as the embedded engine words it
        with self._lock:
            try:
                if text is None:
                    raise _Fallback("input is not JSON or nested too deeply to encode")
                if text.count("[") + text.count("{") > MAX_INPUT_DEPTH and nested_deeper(input_doc):
                    raise _Fallback(f"input nested deeper than {MAX_INPUT_DEPTH} levels")  # Go's error stands
                # strict UTF-8: a string holding surrogates (``"\\ud800\\ud800"`` decodes to two) is
                # refused by the Go evaluator, while the module would read an escaped pair as one character
                result = self._run(text.encode())
            except (_Fallback, WasmCallError, ValueError, UnicodeError) as exc:
                self.fallbacks += 1
                log.warning("wasm policy could not decide (%s); OPA's Go evaluator decides", exc)
                return self.reference().evaluate(input_doc)
        return result

    def _run(self, raw: bytes) -> dict[str, Any]:
        self._failure = None
        at = self._heap
        if len(raw) > MAX_INPUT_BYTES:
            raise _Fallback(f"input of {len(raw)} bytes is over {MAX_INPUT_BYTES}")
        self._write(at, raw, grow=True)  # whether an input fits never depends on earlier evaluations
        # opa_eval reads an input its parser rejects as no input at all (which this policy allows):
        # parse it first, on a heap that starts after it, and let Go decide what the module cannot read
        self._heap_set(at + len(raw))
        if not self._parse(at, len(raw)):
            raise _Fallback("the module's JSON parser rejects the input")
        addr = self._eval(0, self._entry, self._data, at, len(raw), at + len(raw), 0)
        if self._failure is not None:
            raise _Fallback(self._failure)
        rs = _loads(self._cstr(addr))
        if not isinstance(rs, list) or len(rs) != 1 or not isinstance(rs[0], dict):
            raise _Fallback("data.gpu.launch.decision is undefined")
        result = rs[0].get("result")
        if not isinstance(result, dict):
            raise _Fallback("data.gpu.launch.decision is not an object")
        return result

    def reference(self) -> EmbeddedEngine:
        """The embedded Go evaluator on the same bundle (built on first use)."""
        if self._reference is None:
            from enforcer.policy.embedded import EmbeddedEngine

            self._reference = EmbeddedEngine(self.bundle)
        return self._reference

    def eval_path(self, dotted: str, input_doc: dict[str, Any] | None = None) -> Any:
        """Any other document (explain, policy tests): the Go evaluator."""
        return self.reference().eval_path(dotted, input_doc)

    def trace_path(self, dotted: str, input_doc: dict[str, Any] | None = None) -> Any:
        """A trace is OPA's Go evaluator's (the module has none)."""
        return self.reference().trace_path(dotted, input_doc)


#: the exports called, with their i32 parameter and result counts
_EXPORTS = {
    "opa_malloc": (1, 1),
    "opa_json_parse": (2, 1),
    "opa_json_dump": (1, 1),
    "opa_eval": (7, 1),
    "opa_heap_ptr_get": (0, 1),
    "opa_heap_ptr_set": (1, 0),
    "builtins": (0, 1),
    "entrypoints": (0, 1),
}


#: a run of 19 digits (an integer orjson might not read exactly: it reads one over 64 bits as a float),
#: found as 19 zeros once every digit is a zero: ~1 us on a 500-byte result, where re's ``[0-9]{19}``
#: takes ~8 us (more than json.loads itself)
_ALL_DIGITS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def _loads(raw: bytes) -> Any:
    """The module's result JSON, read as ``json.loads`` reads it: orjson where that is certain, the
    standard library for a text with a run of 19 digits (orjson reads an integer over 64 bits as a
    float, ``18446744073709551616`` -> ``1.8446744073709552e+19``; the standard library keeps it exact)
    and for one orjson refuses (an escaped lone surrogate). Today's decision document holds no numbers;
    a policy whose decision does still reads exactly."""
    if _LONG_DIGITS not in raw.translate(_ALL_DIGITS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _func(ex: Any, name: str) -> wasmtime.Func:
    f = ex.get(name) if hasattr(ex, "get") else ex[name]
    if not isinstance(f, wasmtime.Func):
        raise WasmUnavailable(f"policy.wasm does not export {name}")
    return f


def _global(ex: Any, store: wasmtime.Store, name: str) -> int:
    g = ex.get(name) if hasattr(ex, "get") else None
    if not isinstance(g, wasmtime.Global):
        raise WasmUnavailable(f"policy.wasm does not export {name}")
    return int(g.value(store))


def _min_pages(module: wasmtime.Module) -> int:
    for imp in module.imports:
        if imp.module == "env" and imp.name == "memory" and isinstance(imp.type, wasmtime.MemoryType):
            return int(imp.type.limits.min)
    raise WasmUnavailable("policy.wasm imports no memory")
