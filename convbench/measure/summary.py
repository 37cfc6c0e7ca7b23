"""Bench records as a short terminal table (what ``convbench bench`` prints)."""
from __future__ import annotations

from typing import Any

from convbench.measure.hostload import OTHERS_HEAVY_PCT, host_flags

__all__ = ["format_summary"]


def _fmt_t(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def format_summary(records: list[dict[str, Any]]) -> str:
    """A short terminal table: one line per record (time, GFLOP/s, % of peak, memory, status).

    Parameters
    ----------
    records : list of dict
        Bench records.

    Returns
    -------
    str
        The table, then a count of the records, a note on backward times that include the
        forward and one on times taken while the machine was busy (marked ``!``).
    """
    if not records:
        return "no bench records"
    header = ("impl", "case", "dir", "dtype", "median", "iqr%", "GFLOP/s", "%peak", "peak mem", "status")
    rows = []
    for r in records:
        med, iqr = r.get("t_median_s"), r.get("t_iqr_s")
        mem = r.get("peak_mem_bytes")
        status = r.get("status", "?")
        if status != "ok" and r.get("reason"):
            status = f"{status}: {r['reason']}"[:70]
        rows.append((str(r.get("impl")), str(r.get("case")),
                     ("fwd" if r.get("direction") == "forward" else "bwd") + ("*" if r.get("includes_forward") else ""),
                     str(r.get("dtype", ""))[-2:], _fmt_t(med) + ("!" if _busy(r) else ""),
                     f"{100 * iqr / med:.1f}" if med and iqr is not None else "-",
                     f"{r['gflops']:.2f}" if r.get("gflops") is not None else "-",
                     f"{r['pct_peak']:.0f}" if r.get("pct_peak") is not None else "-",
                     f"{mem / 2**20:.1f} MiB" if mem is not None else "-", status))
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip()
             for line in (header, tuple("-" * w for w in widths), *rows)]
    busy = [r for r in records if _busy(r)]
    if busy:
        worst = max(max(r.get("others_pct") or 0.0, r.get("steal_pct") or 0.0) for r in busy)
        lines.append(f"!: {len(busy)} record(s) timed while other processes or the hypervisor took more than "
                     f"{OTHERS_HEAVY_PCT:g} % of the CPU (up to {worst:.0f} %; others_pct, steal_pct): "
                     f"their times are the machine's as much as the code's; measure again on a quiet machine")
    n_ok = sum(r.get("status") == "ok" for r in records)
    lines.append(f"{len(records)} records: {n_ok} ok, {len(records) - n_ok} not ok")
    if any(r.get("includes_forward") for r in records):
        lines.append("bwd*: the backward runs the forward first (for its cache or autograd graph); "
                     "its time includes it")
    return "\n".join(lines)


def _busy(r: dict[str, Any]) -> bool:
    """Timed while others took much of the machine (others_pct) or the hypervisor stole (steal_pct)."""
    return bool(host_flags(r.get("steal_pct"), r.get("others_pct")))
