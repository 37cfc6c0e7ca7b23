"""Thread control: the BLAS/OpenMP pools and torch's intra-op threads, and parking OpenBLAS.

:func:`thread_limits` sets (and restores) the thread counts a run measures under and says what
is in force, for the records; :func:`park_blas_threads` stops OpenBLAS's spinning workers before
each measurement, so that no library's threads still hold the cores the next one needs.
"""
from __future__ import annotations

import contextlib
import ctypes
from typing import Any, Iterator

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = ["thread_limits", "park_blas_threads"]

_OPENBLAS: dict[str, Any] = {}


def park_blas_threads() -> int:
    """Stop OpenBLAS's worker threads (``blas_thread_shutdown_``), in every OpenBLAS loaded.

    After a GEMM, OpenBLAS's workers busy-wait for the next one (up to ~0.1 s). On a machine
    with as many cores as threads, a library measured next (torch's OpenMP pool) then finds a core
    taken: its parallel regions wait for the scheduler's tick, and a 30 us call was timed at 8 ms
    (a calibration probe of torch_cpu right after stride_tricks: 8 of 37 runs slow, none with the
    workers parked). OpenBLAS starts the workers again on its next threaded call; the timer's
    warm-up absorbs that.

    Returns
    -------
    int
        The number of libraries parked.
    """
    try:
        for info in threadpool_info():   # ~1 ms; libraries loaded since the last call are found
            path = info.get("filepath")
            if info.get("internal_api") == "openblas" and path and path not in _OPENBLAS:
                fn = getattr(ctypes.CDLL(path), "blas_thread_shutdown_", None)
                if fn is not None:
                    fn.restype = ctypes.c_int
                _OPENBLAS[path] = fn
    except Exception:  # an unloadable library: nothing to park
        pass
    parked = 0
    for fn in _OPENBLAS.values():
        if fn is not None:
            fn()
            parked += 1
    return parked


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[dict[str, Any]]:
    """Set the BLAS/OpenMP pools (threadpoolctl) and torch's intra-op threads; restore after.

    Parameters
    ----------
    threads : int or None
        Threads for every pool; None leaves them as they are (and only reports them).

    Yields
    ------
    dict
        What is in force: ``{"requested", "blas", "torch"}``.
    """
    info: dict[str, Any] = {"requested": threads, "blas": None, "torch": None}
    torch = None
    try:
        import torch as _torch  # deferred: torch takes seconds to import, and may be absent

        torch = _torch
    except ImportError:
        pass
    old_torch = torch.get_num_threads() if torch is not None else None
    ctx: Any = contextlib.nullcontext()
    if threads is not None:
        ctx = threadpool_limits(limits=threads)
        if torch is not None:
            torch.set_num_threads(threads)
    try:
        with ctx:
            info["blas"] = max((i.get("num_threads") or 0 for i in threadpool_info()
                                if i.get("user_api") == "blas"), default=None)
            info["torch"] = torch.get_num_threads() if torch is not None else None
            yield info
    finally:
        if torch is not None and threads is not None:
            torch.set_num_threads(old_torch)
