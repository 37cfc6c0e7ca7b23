"""What the host did to a measurement: the hypervisor's steal time, from ``/proc/stat``.

On a virtual machine the hypervisor may run other guests on this one's physical cores; the time
a vCPU was ready but not running is counted as *steal*. A measurement taken while much was
stolen measured the neighbours as much as the code: its record carries ``steal_pct`` (steal as
a share of all CPU time of the machine during the measurement) and is flagged past
:data:`STEAL_HEAVY_PCT`.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["STEAL_HEAVY_PCT", "cpu_times", "steal_pct"]

#: steal above this share of the CPU time marks a measurement as taken under heavy steal
STEAL_HEAVY_PCT = 5.0
_STAT = Path("/proc/stat")


def cpu_times(stat: Path = _STAT) -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs so far, or None where ``/proc/stat`` has no steal field."""
    try:
        with open(stat) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    vals = [int(v) for v in fields[1:9]]
    return vals[7], sum(vals)


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Steal between two :func:`cpu_times` readings, in % of the CPU time that passed; None
    where either reading is missing or no time passed (a call shorter than a jiffy)."""
    if before is None or after is None:
        return None
    total = after[1] - before[1]
    if total <= 0:
        return None
    return round(100.0 * (after[0] - before[0]) / total, 2)
