"""Where a planted NaN goes: each implementation against the float64 reference, per input.

The ``nan`` check (docs/verification.md) asks that a NaN reach every result element that
depends on it and nothing more. This script shows why it asks no more: it plants NaNs at the
first, middle and last element of one input at a time, runs every available implementation and
the reference (``convbench.verify.oracle.expected``) on the same inputs, and counts, per
implementation, input and result, the cases where the implementation has a NaN where the
reference has none (``extra``) and where the reference has one the implementation has not
(``fewer``). Direct methods legitimately differ both ways, as they multiply by different
structural zeros (``0 * NaN`` is NaN); FFT and Winograd mix whole signals or tiles.

Usage::

    .venv/bin/python suites/nan_spread.py [--op conv2d] [--suite edge --suite quick --suite random]
        [--impl NAME ...] [--examples]
"""
from __future__ import annotations

import argparse
import collections
import sys
from typing import Any

import numpy as np

from convbench.cases import Case, get_suite, suite_names
from convbench.ops import get_op
from convbench.registry import get_impl, implementations
from convbench.verify.checks import SEED
from convbench.verify.oracle import expected, run_impl

__all__ = ["spread", "main"]


def _ends(shape: tuple[int, ...]) -> set[tuple[int, ...]]:
    return {tuple(0 for _ in shape), tuple(s // 2 for s in shape), tuple(s - 1 for s in shape)}


def spread(impls: list[Any], cases: list[Case], op: str) -> list[dict[str, Any]]:
    """One row per implementation x case x direction x planted input x result: ``extra`` and
    ``fewer`` (element counts against the reference), or ``status`` ``error`` with its message.
    Cases an implementation does not support are left out."""
    spec = get_op(op)
    rows = []
    for impl in impls:
        name = impl.info.name
        for case in cases:
            p = case.params
            for direction in ("forward", "backward"):
                if direction not in impl.info.directions or impl.unsupported(p, case.dtype, direction):
                    continue
                for planted in (spec.forward_inputs if direction == "forward" else spec.backward_inputs):
                    inputs = spec.make_inputs(p, case.dtype, fill="random", seed=SEED)
                    if planted not in inputs:
                        continue   # no bias
                    for pos in _ends(inputs[planted].shape):
                        inputs[planted][pos] = np.nan
                    row = {"impl": name, "case": case.id, "direction": direction, "planted": planted}
                    ref = expected(p, {k: v.astype(np.float64) for k, v in inputs.items()}, direction)
                    try:
                        got = run_impl(impl, p, inputs, direction)
                    except Exception as exc:   # reported, the scan goes on
                        rows.append({**row, "result": None, "status": "error", "message": f"{type(exc).__name__}: {exc}"})
                        continue
                    for d, want in ref.items():
                        g = got.get(d)
                        if g is None or np.shape(g) != want.shape:
                            continue   # the shape check's business
                        g_nan, r_nan = np.isnan(np.asarray(g, np.float64)), np.isnan(want)
                        rows.append({**row, "result": d, "status": "ok", "extra": int((g_nan & ~r_nan).sum()),
                                     "fewer": int((r_nan & ~g_nan).sum())})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", default="conv2d")
    ap.add_argument("--suite", action="append", help="suite of cases (repeatable; default edge, quick, random "
                                                     "where the operator has them)")
    ap.add_argument("--impl", action="append", help="implementation name (repeatable; default every available one)")
    ap.add_argument("--examples", action="store_true", help="name the first case of each count")
    args = ap.parse_args(argv)
    try:
        get_op(args.op)
    except Exception as exc:
        ap.error(f"--op: {exc}")
    known = suite_names(args.op)
    suites = args.suite or [s for s in ("edge", "quick", "random") if s in known]
    bad = [s for s in suites if s not in known]
    if bad:
        ap.error(f"--suite {bad[0]!r} is not a suite of {args.op}; choose from {', '.join(known)}")
    avail = {i.name: i for i in implementations(args.op)}
    names = args.impl or [n for n, i in avail.items() if i.available]
    for n in names:
        if n not in avail:
            ap.error(f"--impl {n!r} is not an implementation of {args.op}; choose from {', '.join(avail)}")
        if not avail[n].available:
            ap.error(f"--impl {n!r} cannot run here: {avail[n].reason}")
    cases = [c for s in suites for c in get_suite(s, args.op)]
    rows = spread([get_impl(n, args.op) for n in names], cases, args.op)
    print(f"{args.op}, {len(cases)} cases ({', '.join(suites)}): NaNs at the first, middle and last element "
          f"of one input; cases with NaNs the reference lacks (extra) or has (fewer)")
    count: dict[tuple[str, str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    first: dict[tuple[str, str, str, str], str] = {}
    for r in rows:
        key = (r["impl"], r["planted"], r["result"] or "-")
        count[key]["runs"] += 1
        for what in ("extra", "fewer"):
            if r.get(what):
                count[key][what] += 1
                first.setdefault((*key, what), r["case"])
        if r["status"] == "error":
            count[key]["error"] += 1
            first.setdefault((*key, "error"), f"{r['case']} ({r['message'][:80]})")
    print(f"{'impl':14s} {'NaN in':6s} {'result':12s} {'runs':>5s} {'extra':>6s} {'fewer':>6s} {'error':>6s}")
    for key in sorted(count):
        c = count[key]
        print(f"{key[0]:14s} {key[1]:6s} {key[2]:12s} {c['runs']:5d} {c['extra']:6d} {c['fewer']:6d} {c['error']:6d}")
        if args.examples:
            for what in ("extra", "fewer", "error"):
                if (*key, what) in first:
                    print(f"{'':22s}{what}: first on {first[(*key, what)]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
