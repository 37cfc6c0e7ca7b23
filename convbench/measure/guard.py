"""Memory guard: a case whose arrays alone exceed the memory this machine has available is not
run at all, and says so, rather than failing inside an implementation (or the machine).

The arrays of a case are known before it runs (:meth:`OpParams.shapes`): the inputs, the output
and the gradient of each, in the case's dtype. That is a floor on what checking or timing both
directions needs; checking needs more (float64 references), so a case at the floor still may not
fit, and a worker's memory limit (:func:`convbench.measure.isolate.memory_limit`) stops the rest.
"""
from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["available_memory", "case_bytes", "too_big", "fmt_bytes"]


def available_memory() -> int | None:
    """Bytes of memory available to new work now (``MemAvailable``), or None where unknown.
    ``$CONVBENCH_AVAILABLE_MEMORY`` (bytes) overrides it (tests, containers that misreport)."""
    env = os.environ.get("CONVBENCH_AVAILABLE_MEMORY", "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            return None
    try:
        with open("/proc/meminfo") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ln.split()[1:2]}
    except (OSError, ValueError, IndexError):
        return None
    return info.get("MemAvailable") or info.get("MemTotal")


def case_bytes(case: Any) -> int:
    """Bytes of every array of ``case`` (inputs, output and the gradients of each) in its dtype."""
    itemsize = 8 if case.dtype == "float64" else 4
    return itemsize * sum(math.prod(int(d) for d in shape) for shape in case.params.shapes().values())


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def too_big(case: Any) -> str | None:
    """Why ``case`` cannot run on this machine (its arrays exceed the available memory), or None."""
    have = available_memory()
    if have is None:
        return None
    try:
        need = case_bytes(case)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None
    if need <= have:
        return None
    return (f"not run: its arrays alone take {fmt_bytes(need)}; this machine has {fmt_bytes(have)} "
            f"of memory available")
