"""The C heap's state during a measurement: glibc's thresholds, set on purpose.

glibc's ``malloc`` serves a buffer of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with
its own ``mmap`` and returns it to the kernel when it is freed; smaller ones come from the heap,
whose free top is given back (trimmed) once it exceeds ``M_TRIM_THRESHOLD``. Both thresholds move:
when a mapped buffer is freed, the mmap threshold rises to its size (up to 32 MiB) and the trim
threshold to twice that. So how much a call pays in page faults depends on the largest buffer the
process freed before it. A call whose buffers are given back each time faults every page of them
in again on the next call (zeroed by the kernel): ~950 minor faults, ~1 ms, per
``F.conv2d`` on ``n8c64h28w28o64k3p1`` in a fresh process, none in one that had freed a 3 MB
NumPy array first. convbench's own process frees large NumPy arrays all the time (inputs, the
float64 oracle), so without a policy every implementation is measured with its buffers kept.

Policies (:func:`heap_policy`):

- ``"fresh"``: the thresholds a fresh process reaches by running the call alone: the largest
  buffer the call itself allocates (of at most 32 MiB, at least 128 KiB) and twice that. This is
  the state of a plain script timing one layer.
- ``"kept"``: the thresholds at their ceiling (32 MiB and 64 MiB): freed buffers stay in the
  heap, as in a process that freed a large buffer earlier (a network after a larger layer).

Setting a threshold with ``mallopt`` switches glibc's adjustment off for the rest of the process;
after a policy the process is left in ``"kept"``, the state its own frees had nearly always put it
in. Elsewhere than glibc (macOS, musl) nothing is set and :func:`heap_policy` yields why.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
from typing import Any, Callable, Iterable, Iterator

__all__ = ["POLICIES", "DEFAULT_MMAP", "MAX_MMAP", "thresholds_for", "heap_policy", "set_thresholds",
           "minor_faults", "glibc_mallopt"]

#: glibc's starting mmap threshold, and the ceiling its dynamic adjustment stops at (64-bit)
DEFAULT_MMAP = 128 * 1024
MAX_MMAP = 32 * 1024 * 1024
POLICIES = ("fresh", "kept")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_PAGE = resource.getpagesize()
# what glibc adds to a request for a mapped chunk: its header, and the slack of a 64-byte
# aligned request (torch's CPU allocator aligns to 64)
_CHUNK_OVERHEAD = 128


def glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def thresholds_for(policy: str, sizes: Iterable[int] = ()) -> tuple[int, int]:
    """(mmap threshold, trim threshold) of ``policy``; ``sizes``: the bytes of every buffer the
    call allocates (``"fresh"`` only)."""
    if policy == "kept":
        return MAX_MMAP, 2 * MAX_MMAP
    if policy != "fresh":
        raise ValueError(f"heap policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    chunks = [-(-(s + _CHUNK_OVERHEAD) // _PAGE) * _PAGE for s in sizes if s >= DEFAULT_MMAP]
    mmap = max([DEFAULT_MMAP] + [c for c in chunks if c <= MAX_MMAP])
    return mmap, 2 * mmap if mmap > DEFAULT_MMAP else DEFAULT_MMAP


def set_thresholds(mmap: int, trim: int, mallopt: Callable[[int, int], int] | None = None) -> bool:
    """Set glibc's mmap and trim thresholds; False where that cannot be done."""
    mallopt = mallopt or glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap))) & bool(mallopt(_M_TRIM_THRESHOLD, int(trim)))


@contextlib.contextmanager
def heap_policy(policy: str | None, sizes: Callable[[], Iterable[int]] | None = None, *,
                mallopt: Callable[[int, int], int] | None = None) -> Iterator[dict[str, Any]]:
    """Hold glibc's thresholds at ``policy`` inside the block, ``"kept"`` after it.

    Parameters
    ----------
    policy : str or None
        ``"fresh"``, ``"kept"``, or None (nothing is set: the process's own state).
    sizes : callable, optional
        For ``"fresh"``: returns the sizes of the buffers one call allocates (one call is made).
    mallopt : callable, optional
        Injected ``mallopt`` (tests); glibc's by default.

    Yields
    ------
    dict
        ``{"policy", "mmap_threshold", "trim_threshold"}`` as set, or ``{"policy": None,
        "why": ...}`` where nothing was set.
    """
    if policy is None:
        yield {"policy": None, "why": "the process's own state"}
        return
    mallopt = mallopt or glibc_mallopt()
    if mallopt is None:
        yield {"policy": None, "why": "not glibc: the heap's thresholds cannot be set"}
        return
    mmap, trim = thresholds_for(policy, sizes() if (policy == "fresh" and sizes is not None) else ())
    set_thresholds(mmap, trim, mallopt)
    try:
        yield {"policy": policy, "mmap_threshold": mmap, "trim_threshold": trim}
    finally:
        set_thresholds(*thresholds_for("kept"), mallopt)


def minor_faults() -> int:
    """Minor page faults of this process so far (``getrusage``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
