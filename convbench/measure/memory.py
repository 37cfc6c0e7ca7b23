"""Peak extra memory of one call, per backend, beside the analytic minimum and the workspace.

"Extra" means bytes allocated during the call above what was allocated when it began: the
output, temporaries and workspaces, not the inputs (they exist before the call).

- NumPy (and anything else on the CPU that is not torch): :mod:`tracemalloc`. NumPy reports
  every array buffer to tracemalloc (``PyTraceMalloc_Track``), so its traced peak is exactly the
  high-water mark of array and Python allocations, to the byte and independent of the allocator's
  reuse of pages. Process RSS was rejected: it moves in pages, includes memory freed back to a
  malloc arena but not to the OS, and a NumPy temporary freed before the next RSS read is missed.
- torch on the CPU: torch's allocations bypass tracemalloc. The profiler with
  ``profile_memory=True`` records every allocation and free of torch's CPU allocator as a
  ``[memory]`` event (``nbytes`` signed); the running sum of those events in time order gives the
  peak. Buffers oneDNN allocates outside torch's allocator are not seen; what torch's allocator
  serves (outputs, reorders, im2col columns of the slow path) is.
- CUDA: the caching allocator's own statistics, ``max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus what was allocated at the start.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import tracemalloc
from typing import Any, Callable

__all__ = ["FIXED_COST_S", "method_for", "warm_up_profiler", "peak_extra_bytes", "numpy_peak", "torch_cpu_peak", "torch_cpu_allocations", "allocation_sizes", "cuda_peak", "workspace_bytes"]


@contextlib.contextmanager
def _quiet_stderr() -> Any:
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def _no_gc() -> Any:
    """The cyclic garbage collector held off during the measured call, so that a collection
    falling inside it neither frees unrelated memory nor adds its own time. (A full
    ``gc.collect()`` before each call would cost ~0.2 s once torch is imported: more than most
    calls being measured.)"""
    gc.collect(0)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: fixed seconds of one memory measurement beyond the traced call itself: the profiler's start
#: and stop for torch on the CPU (measured ~0.06 s here), next to nothing for tracemalloc and the
#: CUDA allocator's counters
FIXED_COST_S = {"torch_profiler": 0.08, "tracemalloc": 0.001, "cuda_allocator": 0.001}


def warm_up_profiler() -> None:
    """Start and stop torch's profiler once: its first start costs seconds, which no item should pay."""
    torch_cpu_peak(lambda: None)


def numpy_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes traced by tracemalloc during ``fn()`` above the level at its start."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        with _no_gc():
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            result = fn()
            _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    del result
    return max(0, peak - base)


def torch_cpu_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes of torch's CPU allocator during ``fn()``, from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # kineto writes a line to fd 2 on every start and stop
        prof.start()
    try:
        with _no_gc():
            result = fn()
    finally:
        with _quiet_stderr():
            prof.stop()
    del result
    return _running_peak(prof)


def torch_cpu_allocations(fn: Callable[[], Any]) -> list[int]:
    """Bytes of every allocation torch's CPU allocator served during ``fn()`` (profiler events)."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.start()
    try:
        result = fn()
    finally:
        with _quiet_stderr():
            prof.stop()
    del result
    return [int(e.nbytes()) for e in prof.profiler.kineto_results.events()
            if e.name() == "[memory]" and e.nbytes() > 0]


def allocation_sizes(impl: Any, call: Callable[[], Any]) -> list[int]:
    """The buffers one ``call()`` of ``impl`` allocates, where they can be seen (torch on the CPU,
    through the profiler; none known elsewhere)."""
    if impl.info.backend == "torch" and getattr(impl.info, "device", "cpu") == "cpu":
        return torch_cpu_allocations(call)
    return []


def _running_peak(prof: Any) -> int:
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += int(e.nbytes())
        peak = max(peak, cur)
    return max(peak, 0)


def cuda_peak(fn: Callable[[], Any], sync: Callable[[], None] | None = None, device: Any = None) -> int:
    """Peak bytes of the CUDA caching allocator during ``fn()`` above its level at the start."""
    import torch

    if sync is not None:
        sync()
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    if sync is not None:
        sync()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    del result
    return max(0, peak - base)


def method_for(backend: str, device: str = "cpu") -> str:
    """The memory method :func:`peak_extra_bytes` uses for an implementation's backend and device."""
    if device == "cuda":
        return "cuda_allocator"
    return "torch_profiler" if backend == "torch" else "tracemalloc"


def peak_extra_bytes(fn: Callable[[], Any], *, backend: str, device: str = "cpu",
                     sync: Callable[[], None] | None = None) -> tuple[int | None, str]:
    """Peak extra bytes of one ``fn()`` call, by the method that fits the backend.

    Parameters
    ----------
    fn : callable
        One call of the implementation, inputs bound (already prepared).
    backend, device : str
        From the implementation's ``ImplInfo``: ``torch``/``cuda`` uses the CUDA allocator,
        ``torch``/``cpu`` the profiler's memory events, anything else tracemalloc.
    sync : callable, optional
        The device barrier.

    Returns
    -------
    (bytes or None, method)
        ``None`` when the method is unavailable here; ``method`` names what was used.
    """
    method = method_for(backend, device)
    if method == "cuda_allocator":
        try:
            return cuda_peak(fn, sync), "cuda_allocator"
        except (ImportError, RuntimeError, AssertionError):
            return None, "cuda_allocator unavailable"
    if method == "torch_profiler":
        try:
            # NumPy temporaries a torch-backed implementation makes are not torch allocations:
            # tracemalloc runs inside the same call and the two disjoint peaks are added (an upper
            # bound when they do not coincide; a pure-torch call adds a few hundred bytes)
            np_peak: list[int] = []
            t = torch_cpu_peak(lambda: np_peak.append(numpy_peak(fn)))
            t += np_peak[0]
        except ImportError:
            return None, "torch unavailable"
        return t, "torch_profiler"
    return numpy_peak(fn), "tracemalloc"


def workspace_bytes(impl: Any, p: Any, dtype: str, direction: str) -> int | None:
    """The expected workspace the implementation declares (``impl.workspace_bytes``), else None."""
    f = getattr(impl, "workspace_bytes", None)
    if not callable(f):
        return None
    try:
        v = f(p, dtype, direction)
    except Exception:
        return None
    return None if v is None else int(v)
