"""What the host did to a measurement: the hypervisor's steal time and other processes' CPU
time, from ``/proc/stat``.

On a virtual machine the hypervisor may run other guests on this one's physical cores; the time
a vCPU was ready but not running is counted as *steal*. A measurement taken while much was
stolen measured the neighbours as much as the code: its record carries ``steal_pct`` (steal as
a share of all CPU time of the machine during the measurement) and is flagged past
:data:`STEAL_HEAVY_PCT`.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STEAL_HEAVY_PCT", "OTHERS_HEAVY_PCT", "cpu_times", "steal_pct", "busy_times", "others_pct",
           "own_cpu_s", "load_mark", "load_since", "host_flags"]

#: steal above this share of the CPU time marks a measurement as taken under heavy steal
STEAL_HEAVY_PCT = 5.0
#: other processes' and the hypervisor's share of the machine's CPU time above which a
#: measurement was taken on a busy machine: on an idle 2-vCPU VM it reads 0-3 %, beside one
#: other process running flat out about 50 %
OTHERS_HEAVY_PCT = 15.0
#: CPU seconds (all CPUs together) a reading of others' share needs: ``/proc/stat`` counts in
#: jiffies (10 ms), and this process's own time in ticks too
MIN_OBSERVED_S = 0.2
_STAT = Path("/proc/stat")


def _fields(stat: Path) -> list[int] | None:
    """user nice system idle iowait irq softirq steal of all CPUs, jiffies (guest time is already
    in user and nice), or None where ``/proc/stat`` is missing or has no steal field."""
    try:
        with open(stat) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    return [int(v) for v in fields[1:9]]


def cpu_times(stat: Path = _STAT) -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs so far, or None where ``/proc/stat`` has no steal field."""
    vals = _fields(stat)
    return None if vals is None else (vals[7], sum(vals))


def busy_times(stat: Path = _STAT) -> tuple[float, float] | None:
    """(busy, total) CPU seconds of all CPUs so far (busy: neither idle nor waiting on I/O, steal
    included), or None where ``/proc/stat`` cannot be read."""
    vals = _fields(stat)
    if vals is None:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (sum(vals) - vals[3] - vals[4]) / hz, sum(vals) / hz


def others_pct(before: tuple[float, float] | None, after: tuple[float, float] | None,
               own_s: float) -> float | None:
    """The share of the machine's CPU time between two :func:`busy_times` readings that went to
    anything but this process (``own_s`` CPU seconds, every thread): other processes and the
    hypervisor's steal, in %; None where a reading is missing or less than
    :data:`MIN_OBSERVED_S` of CPU time passed."""
    if before is None or after is None:
        return None
    total = after[1] - before[1]
    if total < MIN_OBSERVED_S:
        return None   # a few jiffies: the share would be mostly rounding
    return round(max(0.0, min(100.0, 100.0 * (after[0] - before[0] - own_s) / total)), 1)


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Steal between two :func:`cpu_times` readings, in % of the CPU time that passed; None
    where either reading is missing or no time passed (a call shorter than a jiffy)."""
    if before is None or after is None:
        return None
    total = after[1] - before[1]
    if total <= 0:
        return None
    return round(100.0 * (after[0] - before[0]) / total, 2)


def own_cpu_s() -> float:
    """CPU seconds this process has used so far, every thread (not its children)."""
    t = os.times()
    return t.user + t.system


def load_mark() -> tuple[tuple[int, int] | None, tuple[float, float] | None, float]:
    """Readings to take before a measurement, for :func:`load_since` after it."""
    return cpu_times(), busy_times(), own_cpu_s()


def load_since(mark: tuple[tuple[int, int] | None, tuple[float, float] | None, float]) -> dict[str, float | None]:
    """What the host did since :func:`load_mark`: ``steal_pct`` and ``others_pct``."""
    steal0, busy0, own0 = mark
    return {"steal_pct": steal_pct(steal0, cpu_times()),
            "others_pct": others_pct(busy0, busy_times(), own_cpu_s() - own0)}


def host_flags(steal: float | None, others: float | None) -> list[str]:
    """What made a measurement the machine's as much as the code's: ``"steal N %"`` past
    :data:`STEAL_HEAVY_PCT`, ``"busy N %"`` past :data:`OTHERS_HEAVY_PCT` (missing or NaN
    readings say nothing)."""
    out = []
    if steal is not None and steal > STEAL_HEAVY_PCT:
        out.append(f"steal {steal:.0f} %")
    if others is not None and others > OTHERS_HEAVY_PCT:
        out.append(f"busy {others:.0f} %")
    return out
