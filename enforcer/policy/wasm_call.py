"""Calls into a wasmtime instance with as little Python in between as the library allows.

wasmtime-py's public ``Func.__call__`` reads the function's type and converts each argument on every call
(about 40 µs a call here); a decision makes one call plus three or four per host built-in. Where the pinned
wasmtime exposes its C API's ``wasmtime_func_call_unchecked``, :func:`caller` returns a caller that writes
the i32 arguments into one preallocated buffer and makes that one C call (a few µs). Otherwise it returns
the public call. Both raise :class:`WasmCallError` on a trap or error; the engine then re-decides with
OPA's Go evaluator, so which path ran never changes an answer (``tests/test_wasm_engine.py`` runs both).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime


class WasmCallError(RuntimeError):
    """A call into the module trapped or failed."""


I32Call = Callable[..., int]


def _ffi() -> Any:
    try:
        from wasmtime import _ffi as ffi  # the C API bindings wasmtime-py itself uses
    except ImportError:  # pragma: no cover - another wasmtime layout
        return None
    needed = ("wasmtime_func_call_unchecked", "wasmtime_val_raw", "wasm_trap_t", "wasm_trap_delete")
    return ffi if all(hasattr(ffi, n) for n in needed) else None


_FFI = _ffi()


def raw_c(name: str, restype: Any = ctypes.c_void_p) -> Any:
    """A fresh ctypes handle on the C function ``name`` of wasmtime's library, without argument types
    (callers pass ctypes objects they built once) and returning ``restype`` (an int, not a pointer
    object): about 1 µs a call where wasmtime-py's typed handle takes 2-3. None when not found."""
    try:
        from wasmtime import _bindings

        fn = _bindings.dll[name]  # type: ignore[attr-defined]  # indexing makes a new handle: wasmtime-py's own keeps its types
    except (ImportError, AttributeError, OSError):  # pragma: no cover - another wasmtime layout
        return None
    fn.restype = restype
    setattr(fn, "argtypes", None)  # noqa: B010 - typeshed types argtypes as a sequence; None unsets it
    return fn


def fast_path_available() -> bool:
    """Whether the unchecked C call is available in this wasmtime."""
    return _FFI is not None


def caller(
    store: wasmtime.Store, func: wasmtime.Func, nparams: int, fast: bool = True, nresults: int = 1
) -> I32Call:
    """A callable ``f(*i32 args) -> i32`` for an exported function returning one i32 (or none: 0).

    Parameters
    ----------
    store, func
        The instance's store and the exported function.
    nparams, nresults
        How many i32 parameters and results (0 or 1) the function has (its signature; checked once here).
    fast
        Use the unchecked C call when available (the default).
    """
    ty = func.type(store)
    if len(ty.params) != nparams or len(ty.results) != nresults or nresults > 1:
        raise WasmCallError(f"unexpected signature: {len(ty.params)} params, {len(ty.results)} results")
    if fast and _FFI is not None:
        return _unchecked(store, func, max(nparams, nresults))

    def public(*args: int) -> int:
        try:
            return int(func(store, *args) or 0) & 0xFFFFFFFF
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise WasmCallError(str(exc)) from exc

    return public


def _unchecked(store: wasmtime.Store, func: wasmtime.Func, nparams: int) -> I32Call:
    ffi = _FFI
    size = max(nparams, 1)
    buf = (ffi.wasmtime_val_raw * size)()
    stride = ctypes.sizeof(ffi.wasmtime_val_raw) // 4
    # the raw values' i32 lanes as one unsigned array: lane ``stride * i`` is argument ``i`` (a union's
    # members start at its first byte), and lane 0 the result after the call
    lanes = (ctypes.c_uint32 * (stride * size)).from_buffer(buf)
    ctx = store._context()
    fptr = ctypes.byref(func._func)
    trap_type = ctypes.POINTER(ffi.wasm_trap_t)
    cell = [trap_type()]
    ref = [ctypes.byref(cell[0])]
    raw = raw_c("wasmtime_func_call_unchecked")
    if raw is not None:  # every argument built here, once: no per-call conversion, the error as an int
        call, count = raw, ctypes.c_size_t(size)  # type: Any, Any
    else:  # the typed C function where the bindings name it, not its Python wrapper (one frame less)
        from wasmtime import _bindings

        call = getattr(_bindings, "_wasmtime_func_call_unchecked", ffi.wasmtime_func_call_unchecked)
        count = size

    def fast_call(*args: int) -> int:
        for i, a in enumerate(args):
            lanes[stride * i] = a
        err = call(ctx, fptr, buf, count, ref[0])
        trap = cell[0]
        if err or trap:
            cell[0] = trap_type()  # a fresh NULL for the next call; this one is deleted below
            ref[0] = ctypes.byref(cell[0])
            _discard(err, trap)
            raise WasmCallError("wasm call trapped")
        return int(lanes[0])

    return fast_call


def _discard(err: Any, trap: Any) -> None:
    ffi = _FFI
    if trap:
        ffi.wasm_trap_delete(trap)
    if err and hasattr(ffi, "wasmtime_error_delete"):
        if isinstance(err, int):  # the untyped handle's error address
            err = ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t))
        ffi.wasmtime_error_delete(err)
    # a host function that raised left its exception for wasmtime-py to re-raise on the next public call
    from wasmtime import _func

    if hasattr(_func, "LAST_EXCEPTION"):
        _func.LAST_EXCEPTION = None


HostFn = Callable[..., int]
#: the C API's ``void (*finalizer)(void*)``, passed as NULL (the callback owns nothing to free)
_NULL_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def define_host(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    nparams: int,
    fn: HostFn,
    fail: Callable[[BaseException], None],
    fast: bool = True,
) -> Any:
    """Define ``module.name(i32 x nparams) -> i32`` in ``linker`` as ``fn``.

    With ``fast`` (and wasmtime's unchecked C API present), wasm calls ``fn`` through a bare ctypes
    callback over the raw argument array, not wasmtime-py's generic trampoline (which builds a
    ``Caller`` and a ``Val`` per argument). ``fn`` is not meant to raise: anything it raises is
    handed to ``fail`` and the call returns 0; should ``fail`` raise as well, the call traps (so the
    caller of the module gets :class:`WasmCallError`). Nothing raised ever reaches wasmtime's C code.

    Returns
    -------
    object
        The callback object: keep a reference to it as long as the linker's instances live.
    """
    i32 = wasmtime.ValType.i32()
    ty = wasmtime.FuncType([i32] * nparams, [i32])
    ffi = _FFI
    if not (fast and ffi is not None and hasattr(ffi, "wasmtime_linker_define_func_unchecked")):

        def public(*args: int) -> int:
            try:
                return fn(*args)
            except BaseException as exc:  # the module gets 0; fail records why
                try:
                    fail(exc)
                except BaseException:  # fail itself failed: trap (wasmtime-py re-raises this from the call)
                    raise WasmCallError("host function failed") from None
                return 0

        linker.define_func(module, name, ty, public)
        return public

    @ffi.wasmtime_func_unchecked_callback_t  # type: ignore[untyped-decorator]
    def callback(_env: Any, _caller: Any, raw: Any, _n: int) -> int:
        # nothing may escape: ctypes would print it and hand wasmtime an unset (garbage) trap pointer,
        # which it frees (the process aborts: "double free or corruption")
        try:
            raw[0].i32 = fn(*[raw[i].i32 & 0xFFFFFFFF for i in range(nparams)])
            return 0  # no trap
        except BaseException as exc:  # never unwind through wasm frames
            raw[0].i32 = 0
            try:
                fail(exc)
            except BaseException:  # fail itself failed (no memory, a signal): trap, ending the call
                return _trap(ffi)
        return 0

    m, n = module.encode(), name.encode()
    err = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(m),
        len(m),
        ctypes.create_string_buffer(n),
        len(n),
        ty.ptr(),
        callback,
        None,
        _NULL_FINALIZER(),
    )
    if err:
        raise WasmCallError(f"defining {module}.{name}: wasmtime error")
    return callback


def _trap(ffi: Any) -> int:
    """A new trap, as the ``wasm_trap_t*`` a host callback returns (wasmtime owns and frees it)."""
    msg = b"host function failed"
    return ctypes.cast(ffi.wasmtime_trap_new(msg, len(msg)), ctypes.c_void_p).value or 0


def memory_view(
    store: wasmtime.Store, memory: wasmtime.Memory, fast: bool = True
) -> Callable[[], tuple[int, int]]:
    """A callable returning linear memory's ``(base address, length)`` now (both change as it grows).

    With ``fast``, two direct C calls instead of wasmtime-py's wrappers.
    """
    ffi = _FFI
    if not (fast and ffi is not None):
        return lambda: (ctypes.addressof(memory.data_ptr(store).contents), memory.data_len(store))
    ctx, mem = store._context(), ctypes.byref(memory._memory)
    data, size = raw_c("wasmtime_memory_data"), raw_c("wasmtime_memory_data_size", ctypes.c_size_t)
    if data is not None and size is not None:

        def raw_view() -> tuple[int, int]:
            return data(ctx, mem) or 0, size(ctx, mem)

        return raw_view
    data, size = ffi.wasmtime_memory_data, ffi.wasmtime_memory_data_size
    addr = ctypes.addressof

    def view() -> tuple[int, int]:
        return addr(data(ctx, mem).contents), int(size(ctx, mem))

    return view
