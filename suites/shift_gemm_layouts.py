"""shift_gemm's GEMM layouts side by side, on the layers where its size rules pick each one.

``shift_gemm``'s forward multiplies a layer in one of four layouts (``impls.shift_gemm``):
``rows`` (one GEMM per kernel row over ``kw`` stacked copies of the input), ``taps`` (one GEMM
per tap straight on the stride phases: layers with 64 or more channels per group),
``taps_unpadded`` (the same on the input's even and odd rows, channels-last, with no padding:
3x3 stride-2 layers of even size) and
``tap_columns`` (one GEMM over compacted tap columns, filters in their own layout: few outputs
per filter). This script takes the layers of a suite whose layout the rules make ``--layout``,
times that layout against ``--baseline`` (``rows`` unless given) in alternation (``--rounds``
rounds; the median of each), forward and backward, and prints the time ratio (``--layout`` /
baseline) per layer and in geometric mean: the evidence behind the thresholds ``_TAP_C`` and
``_FULL_K`` and the switch ``_UNPADDED`` (docs/fast-algorithms.md). ``--chunk-mib`` gives
``--layout`` another cache budget per chunk of images (``_CHUNK_BYTES`` and
``_UNPADDED_CHUNK_BYTES``); with it the baseline may be the same layout at its own budget.

Usage::

    .venv/bin/python suites/shift_gemm_layouts.py [--layout tap_columns|taps|taps_unpadded]
        [--baseline rows|taps|taps_unpadded] [--chunk-mib MIB] [--model all] [--batch 1]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from typing import Any, Iterator

import numpy as np

from convbench.cases import Case, get_suite
from convbench.ops import get_op

__all__ = ["compare", "main", "LAYOUTS"]

#: module settings of impls.shift_gemm that force each layout whatever the size rules say
LAYOUTS = {"rows": {"_FULL_K": 0, "_TAP_C": 10 ** 9},
           "taps": {"_FULL_K": 0, "_TAP_C": 1, "_UNPADDED": False},
           "taps_unpadded": {"_FULL_K": 0, "_TAP_C": 1, "_UNPADDED": True},
           "tap_columns": {"_FULL_K": 10 ** 9}}


@contextlib.contextmanager
def forced(layout: str, chunk_bytes: int | None = None) -> Iterator[None]:
    """``impls.shift_gemm`` with its size rules overridden to take ``layout`` (and its cache budget
    per chunk of images to be ``chunk_bytes``, if given); restored after."""
    from impls import shift_gemm

    rules = dict(LAYOUTS[layout])
    if chunk_bytes is not None:
        rules.update(_CHUNK_BYTES=chunk_bytes, _UNPADDED_CHUNK_BYTES=chunk_bytes)
    saved = {k: getattr(shift_gemm, k) for k in rules}
    try:
        for k, v in rules.items():
            setattr(shift_gemm, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(shift_gemm, k, v)


def _once(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def candidates(cases: list[Case], layout: str, batch: int | None) -> list[Case]:
    """Distinct layers (at ``batch`` if given) whose forward the size rules send to ``layout``."""
    from impls import shift_gemm

    out, seen = [], set()
    for c in cases:
        p = dataclasses.replace(c.params, n=batch) if batch else c.params
        if p.descriptor in seen or shift_gemm.forward_layout(p) != layout:
            continue
        seen.add(p.descriptor)
        out.append(dataclasses.replace(c, params=p))
    return out


def compare(cases: list[Case], layout: str, rounds: int = 5, baseline: str = "rows",
            chunk_bytes: int | None = None) -> list[dict[str, Any]]:
    """Per layer: median seconds of ``layout`` (at a cache budget of ``chunk_bytes`` per chunk of
    images, if given) and of ``baseline`` (at its own), forward and backward, timed in alternation
    (one warm-up call of each first). Keys name them ``layout`` and ``baseline``."""
    from impls import shift_gemm

    op = get_op("conv2d")
    rows = []
    for c in cases:
        p = c.params
        inp = op.make_inputs(p, "float32")
        fns = {"forward": lambda: shift_gemm._forward(p, inp["x"], inp["w"], inp.get("b")),
               "backward": lambda: shift_gemm._backward_gemm(p, inp["dy"], inp["x"], inp["w"])}
        times: dict[tuple[str, str], list[float]] = {}
        for warm in (True, *([False] * rounds)):
            for key, lay, budget in (("baseline", baseline, None), ("layout", layout, chunk_bytes)):
                with forced(lay, budget):
                    for d, fn in fns.items():
                        t = _once(fn)
                        if not warm:
                            times.setdefault((key, d), []).append(t)
        oh, ow = p.out_hw
        row = {"case": c.id, "descriptor": p.descriptor, "outputs_per_filter": p.n * oh * ow / p.o,
               "channels_per_group": p.c // p.groups}
        for d in fns:
            row[f"baseline_{d}_s"] = float(np.median(times[("baseline", d)]))
            row[f"layout_{d}_s"] = float(np.median(times[("layout", d)]))
            row[f"ratio_{d}"] = row[f"layout_{d}_s"] / row[f"baseline_{d}_s"]
        rows.append(row)
    return rows


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", choices=("tap_columns", "taps", "taps_unpadded"), default="tap_columns")
    ap.add_argument("--baseline", choices=("rows", "taps", "taps_unpadded"), default="rows",
                    help="the layout it is timed against")
    ap.add_argument("--chunk-mib", type=float, default=None,
                    help="cache budget per chunk of images for --layout, in MiB (default: its own)")
    ap.add_argument("--model", default="all", help="a model of the models suite (resnet50, vgg16, ...) or all")
    ap.add_argument("--batch", type=int, default=1, help="batch size the layers run at (0: the suite's own)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.batch < 0:
        ap.error(f"--batch must be >= 0, got {args.batch}")
    if args.chunk_mib is not None and args.chunk_mib <= 0:
        ap.error(f"--chunk-mib must be > 0, got {args.chunk_mib}")
    if args.baseline == args.layout and args.chunk_mib is None:
        ap.error(f"--baseline must differ from --layout unless --chunk-mib is given, both are {args.layout}")
    chunk_bytes = None if args.chunk_mib is None else int(args.chunk_mib * 2 ** 20)
    suite = [c for c in get_suite("models") if args.model == "all" or f"model:{args.model}" in c.tags]
    if not suite:
        ap.error(f"--model: no layers tagged model:{args.model} in the models suite")
    cases = candidates(suite, args.layout, args.batch or None)
    name = args.layout + ("" if chunk_bytes is None else f" in chunks of {args.chunk_mib:g} MiB")
    print(f"{len(cases)} layers of {args.model} at batch {args.batch or 'as given'} take the {args.layout} layout; "
          f"time ratio {name} / {args.baseline} (below 1: {name} faster)")
    base = f"{args.baseline} fwd ms"
    print(f"{'layer':40s} {'C/g':>5s} {'outputs/filter':>14s} {base:>11s} {'fwd':>6s} {'bwd':>6s}")
    rows = compare(cases, args.layout, args.rounds, args.baseline, chunk_bytes)
    for r in rows:
        print(f"{r['case']:40s} {r['channels_per_group']:5d} {r['outputs_per_filter']:14.2f} "
              f"{1e3 * r['baseline_forward_s']:11.2f} {r['ratio_forward']:6.2f} {r['ratio_backward']:6.2f}")
    print(f"geometric mean: forward {_geomean([r['ratio_forward'] for r in rows]):.3f}, "
          f"backward {_geomean([r['ratio_backward'] for r in rows]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
