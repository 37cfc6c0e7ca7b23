"""shift_gemm's two GEMM layouts side by side, on the layers where its size rule picks the second.

``shift_gemm`` runs a layer either as one GEMM per kernel row (the default) or, where outputs are
few next to the filters (``impls.shift_gemm.full_k``), as one GEMM over compacted tap columns with
the filters in their own layout. This script times both on every layer of a suite that the rule
sends to the second, in alternation (five rounds; the median of each), forward and backward, and
prints the time ratio (tap columns / per kernel row) per layer and in geometric mean: the evidence
behind the threshold ``_FULL_K`` (docs/fast-algorithms.md).

Usage::

    .venv/bin/python suites/shift_gemm_layouts.py [--suite models] [--batch 1] [--rounds 5]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from typing import Any

import numpy as np

from convbench.cases import Case, get_suite
from convbench.ops import get_op

__all__ = ["compare", "main"]


def _once(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _candidates(cases: list[Case], batch: int | None) -> list[Case]:
    """Distinct float32 layers (at ``batch`` if given) that the size rule sends to tap columns."""
    from impls import shift_gemm

    out, seen = [], set()
    for c in cases:
        p = dataclasses.replace(c.params, n=batch) if batch else c.params
        one_by_one = (p.kh, p.kw, p.stride, p.pads, p.groups) == (1, 1, (1, 1), (0, 0, 0, 0), 1) \
            and p.h * p.w >= shift_gemm._MIN_HW
        if p.descriptor in seen or one_by_one or not shift_gemm._fast(p, np.float32) or not shift_gemm.full_k(p):
            continue
        seen.add(p.descriptor)
        out.append(dataclasses.replace(c, params=p))
    return out


def compare(cases: list[Case], rounds: int = 5) -> list[dict[str, Any]]:
    """Per layer: median seconds of each layout, forward and backward, timed in alternation."""
    from impls import shift_gemm

    op = get_op("conv2d")
    rows = []
    saved = shift_gemm._FULL_K
    try:
        for c in cases:
            p = c.params
            inp = op.make_inputs(p, "float32")
            fns = {"forward": lambda: shift_gemm._forward(p, inp["x"], inp["w"], inp.get("b")),
                   "backward": lambda: shift_gemm._backward_gemm(p, inp["dy"], inp["x"], inp["w"])}
            times: dict[tuple[str, str], list[float]] = {}
            for layout, k in (("rows", 0), ("taps", 10 ** 9)):   # one warm-up call each
                shift_gemm._FULL_K = k
                for fn in fns.values():
                    fn()
            for _ in range(rounds):
                for layout, k in (("rows", 0), ("taps", 10 ** 9)):
                    shift_gemm._FULL_K = k
                    for d, fn in fns.items():
                        times.setdefault((layout, d), []).append(_once(fn))
            oh, ow = p.out_hw
            row = {"case": c.id, "descriptor": p.descriptor, "outputs_per_filter": p.n * oh * ow / p.o}
            for d in fns:
                row[f"rows_{d}_s"] = float(np.median(times[("rows", d)]))
                row[f"taps_{d}_s"] = float(np.median(times[("taps", d)]))
                row[f"ratio_{d}"] = row[f"taps_{d}_s"] / row[f"rows_{d}_s"]
            rows.append(row)
    finally:
        shift_gemm._FULL_K = saved
    return rows


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="models")
    ap.add_argument("--batch", type=int, default=1, help="batch size the layers run at (0: the suite's own)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    cases = _candidates(get_suite(args.suite), args.batch or None)
    print(f"{len(cases)} layers of suite {args.suite!r} take the tap-column layout; time ratio tap columns / "
          f"per kernel row (below 1: tap columns faster)")
    print(f"{'layer':40s} {'outputs/filter':>14s} {'rows fwd ms':>11s} {'fwd':>6s} {'bwd':>6s}")
    rows = compare(cases, args.rounds)
    for r in rows:
        print(f"{r['case']:40s} {r['outputs_per_filter']:14.2f} {1e3 * r['rows_forward_s']:11.2f} "
              f"{r['ratio_forward']:6.2f} {r['ratio_backward']:6.2f}")
    print(f"geometric mean: forward {_geomean([r['ratio_forward'] for r in rows]):.3f}, "
          f"backward {_geomean([r['ratio_backward'] for r in rows]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
