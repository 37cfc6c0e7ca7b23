"""The method benchmark: convbench's timer beside torch.utils.benchmark, on the same operations.

Times operations from about 5 microseconds to about 1 second with
:func:`convbench.measure.timer.time_call` (the settings ``convbench bench`` uses) and with
``torch.utils.benchmark.Timer.blocked_autorange``, alternating the two in one run, and repeats
the pair ``--reps`` times. Reports, per operation, the ratio of the medians (convbench / torch,
each the median over the repetitions of that tool's median), the spread of convbench's
medians over the repetitions ((max - min) / median), and the spread of the paired ratios (each
repetition's convbench median over the torch median taken right beside it): the machine's own
drift from one repetition to the next moves both tools together and cancels in the paired ratio,
so that column is the timer's reproducibility with the machine held still.

Run: ``python suites/method_benchmark.py`` (``--reps 5 --threads 1`` by default; ``--json FILE``
writes the figures). One thread by default: on a shared machine a multi-threaded BLAS measures
the neighbours as much as the operation.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np


def operations() -> list[tuple[str, Callable[[], Any]]]:
    """Operations spanning ~5 us to ~1 s on a one-thread laptop-class core."""
    from convbench.cases import parse_descriptor
    from convbench.measure.bench import _calls
    from convbench.registry import get_impl

    rng = np.random.default_rng(0)
    ops: list[tuple[str, Callable[[], Any]]] = []
    a = rng.standard_normal(2000).astype(np.float32)
    out = np.empty_like(a)
    ops.append(("np.multiply 2k", lambda: np.multiply(a, a, out=out)))
    for n in (64, 256, 512):
        x = rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty_like(x)
        ops.append((f"matmul {n}", lambda x=x, c=c: np.matmul(x, x, out=c)))
    ops.append(("im2col fwd n8c32h28w28o32k3p1", _calls(get_impl("im2col"), parse_descriptor("n8c32h28w28o32k3p1"), "forward")))
    for n in (1024, 2048):
        x = rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty_like(x)
        ops.append((f"matmul {n}", lambda x=x, c=c: np.matmul(x, x, out=c)))
    x = rng.standard_normal((2048, 2048)).astype(np.float64)
    c = np.empty_like(x)
    ops.append(("matmul 2048 f64", lambda: np.matmul(x, x, out=c)))
    return ops


def convbench_median(fn: Callable[[], Any]) -> tuple[float, float]:
    from convbench.measure.bench import MAX_ITEM_S, MIN_TIME_S
    from convbench.measure.timer import time_call

    t = time_call(fn, budget_s=MAX_ITEM_S, min_time_s=MIN_TIME_S)
    return t.median, t.rel_iqr if t.median > 0 else 0.0


def torch_median(fn: Callable[[], Any], threads: int) -> float:
    from torch.utils.benchmark import Timer

    m = Timer("fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(min_run_time=0.2)
    return m.median


def fmt(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each timer (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = ap.parse_args(argv)
    if args.reps < 2:
        ap.error(f"--reps must be >= 2 to measure a spread, got {args.reps}")
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")

    from convbench.measure.bench import thread_limits
    from convbench.measure.machine import fingerprint

    rows = []
    t_start = time.perf_counter()
    with thread_limits(args.threads):
        fp = fingerprint()
        print(f"machine {fp['id']}: {fp['cpu']}, {fp['cores_logical']} cores, threads={args.threads}, "
              f"numpy {fp['numpy']}, torch {fp['torch']}", flush=True)
        header = ("operation", "convbench", "torch", "ratio", f"spread({args.reps})", "torch spread",
                  "paired-ratio spread", "cb rel.IQR")
        print("  ".join(header), flush=True)
        for name, fn in operations():
            cb, tb, iqr = [], [], []
            for rep in range(args.reps):
                # alternate which tool goes first, so a drift of the machine does not favour one
                order = (0, 1) if rep % 2 == 0 else (1, 0)
                for which in order:
                    if which == 0:
                        m, r = convbench_median(fn)
                        cb.append(m)
                        iqr.append(r)
                    else:
                        tb.append(torch_median(fn, args.threads))
            mc, mt = statistics.median(cb), statistics.median(tb)
            paired = [c / t for c, t in zip(cb, tb)]
            row = {"operation": name, "convbench_median_s": mc, "torch_median_s": mt, "ratio": mc / mt,
                   "convbench_spread": (max(cb) - min(cb)) / mc, "torch_spread": (max(tb) - min(tb)) / mt,
                   "paired_ratio_spread": (max(paired) - min(paired)) / statistics.median(paired),
                   "convbench_rel_iqr": statistics.median(iqr), "convbench_medians_s": cb, "torch_medians_s": tb}
            rows.append(row)
            print(f"{name:32s} {fmt(mc):>10s} {fmt(mt):>10s} {row['ratio']:6.3f} {100 * row['convbench_spread']:8.1f}% "
                  f"{100 * row['torch_spread']:8.1f}% {100 * row['paired_ratio_spread']:8.1f}% "
                  f"{100 * row['convbench_rel_iqr']:7.1f}%", flush=True)
    worst = max(abs(r["ratio"] - 1) for r in rows)
    over_1ms = [r for r in rows if r["convbench_median_s"] > 1e-3]
    spread = max((r["convbench_spread"] for r in over_1ms), default=0.0)
    paired = max((r["paired_ratio_spread"] for r in over_1ms), default=0.0)
    print(f"\nworst |ratio - 1| = {100 * worst:.1f}% (target <= 5%); worst spread of convbench's medians over "
          f"{args.reps} runs for ops > 1 ms = {100 * spread:.1f}% (target <= 3%); of the paired ratios "
          f"{100 * paired:.1f}%; {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": fp, "threads": args.threads, "reps": args.reps, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
