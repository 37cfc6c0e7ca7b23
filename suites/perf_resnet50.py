"""NumPy conv2d against torch_cpu on ResNet-50's distinct conv layers, batch 8, float32.

Runs torch_cpu and every NumPy implementation (shift_gemm, im2col, stride_tricks, fft, winograd,
and ``fastest`` choosing among them from the records this run just made), forward and backward,
and prints per layer and in geometric mean the time ratio to torch_cpu and the % of this machine's
measured GEMM peak, with the BLAS library and kernel that ran.

Per layer and direction the implementations are timed in alternation (three rounds, each a short
measurement of every one in turn; the median of the rounds is the figure), and then ``fastest``
in alternation with the best single implementation of that layer and torch_cpu (five rounds):
fastest's ratios come from that second stretch. On a VM whose speed drifts by 10-20 % within a
minute, only figures taken side by side can be divided by each other. For the same reason the
closing table of the 3x3 layers with 64 or more channels times fastest, torch_cpu and shift_gemm's
GEMMs alone once more in alternation with the peak GEMM itself, and gives their % of that peak.

Usage::

    .venv/bin/python suites/perf_resnet50.py [--quick] [--native-blas] [--out FILE.jsonl]
    .venv/bin/python suites/perf_resnet50.py --model all --batch 1    # the whole models suite

``--native-blas`` re-executes this script with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
removed from its environment, so OpenBLAS picks the kernel for the CPU it finds (never used by
tests or CI: it changes nothing outside this process).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from convbench.cases import Case, get_suite
from convbench.ops import get_op
from convbench.registry import get_impl

__all__ = ["main", "resnet50_cases", "blas_description"]

NUMPY_IMPLS = ("shift_gemm", "im2col", "stride_tricks", "fft", "winograd")
_FORCED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_QUICK = ("resnet50.layer1.0.conv2", "resnet50.layer2.1.conv2", "resnet50.layer3.1.conv2",
          "resnet50.layer1.1.conv1", "resnet50.layer2.0.downsample")


def resnet50_cases(batch: int = 8, quick: bool = False, model: str = "resnet50") -> list[Case]:
    """ResNet-50's distinct conv layers (the ``models`` suite, tag ``model:resnet50``) at ``batch``;
    ``model`` picks another model of the suite by its tag, or ``all`` for the whole suite."""
    cases = [c.with_batch(batch) for c in get_suite("models") if model == "all" or f"model:{model}" in c.tags]
    if not cases:
        models = sorted({t[6:] for c in get_suite("models") for t in c.tags if t.startswith("model:")})
        raise SystemExit(f"--model must be one of {', '.join(models)} or all, got {model!r}")
    if quick:
        cases = [c for c in cases if c.id in _QUICK]
    return cases


def select_layers(cases: list[Case], patterns: list[str]) -> list[Case]:
    """The cases whose id contains one of ``patterns`` (all when none is given)."""
    if not patterns:
        return cases
    picked = [c for c in cases if any(pat in c.id for pat in patterns)]
    if not picked:
        raise SystemExit(f"--layer {' '.join(patterns)!r} matches none of the {len(cases)} layers "
                         f"({cases[0].id} ... {cases[-1].id})")
    return picked


def blas_description() -> str:
    """The BLAS libraries loaded, with the kernel each runs (threadpoolctl) and the forcing variables."""
    from threadpoolctl import threadpool_info

    import scipy.linalg  # noqa: F401  - load scipy's BLAS too, so it is listed

    parts = []
    for i in threadpool_info():
        if i.get("user_api") != "blas":
            continue
        parts.append(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                     f"threads={i.get('num_threads')} ({Path(i.get('filepath', '')).name})")
    env = ", ".join(f"{k}={os.environ[k]}" for k in _FORCED if k in os.environ) or "none"
    return "; ".join(parts) + f" | forcing variables: {env}"


def _peak_gflops() -> tuple[float, str]:
    """The float32 GEMM peak the percentages are taken of, and where it comes from: the higher of
    this machine's cached peak (``convbench machine``) and one measured now. A peak cached in a
    slow minute of a VM whose speed swings 20-30 % made later GEMMs reach 104 % of it; the
    higher of the two never flatters a percentage."""
    try:
        from convbench.measure.machine import gemm_peak, peaks

        cached = peaks()
        now = float(gemm_peak("float32")["peak"])
        old = float(cached["peak_gflops"]["float32"])
        return max(old, now), f"the higher of {old:.1f} cached ({cached.get('measured_at', '?')}) and {now:.1f} now"
    except Exception:  # no measure layer: a large float32 GEMM, best of a few
        a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
        a @ a
        best = min(_once(lambda: a @ a) for _ in range(5))
        return 2 * 1024**3 / best / 1e9, "a 1024^3 GEMM now, best of 5"


def _once(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _time(fn: Any, budget: float) -> float:
    """Median seconds per call, after a warm-up (convbench's timer when present)."""
    try:
        from convbench.measure.bench import park_blas_threads
        from convbench.measure.timer import time_call

        park_blas_threads()   # no OpenBLAS worker left spinning by the implementation before
        return time_call(fn, budget_s=budget, min_samples=3, min_time_s=0.0).median
    except ImportError:
        fn()  # warm-up: thread pools, page faults, first-call caches
        return float(np.median([_once(fn) for _ in range(3)]))


def _call(impl: Any, case: Case, direction: str, inputs: dict[str, np.ndarray]) -> Any:
    p = case.params
    if direction == "forward":
        args = impl.prepare(inputs["x"], inputs["w"], inputs.get("b"))
        return lambda: impl.forward(p, *args)
    args = impl.prepare(inputs["dy"], inputs["x"], inputs["w"])
    return lambda: impl.backward(p, *args)


def _record(impl: str, case: Case, direction: str, t: float | None, status: str, reason: str = "") -> dict[str, Any]:
    return {"impl": impl, "case": case.id, "descriptor": case.descriptor, "op": "conv2d",
            "params": case.as_dict()["params"], "direction": direction, "dtype": case.dtype,
            "status": status, "reason": reason, "t_median_s": t,
            "gflops": case.params.flops(direction) / t / 1e9 if t else None}


def _geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def _rounds(fns: list[Any], budget: float, rounds: int = 3) -> list[list[float]]:
    """Median seconds of each of ``fns`` in each of ``rounds`` rounds (per function, per round),
    every round a short measurement of every one in turn, ``budget`` seconds per function in all."""
    per: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            per[i].append(_time(fn, budget / rounds))
    return per


def _paired(fns: list[Any], budget: float, rounds: int = 3) -> list[float]:
    """Median seconds of each of ``fns``, timed in alternation (``rounds`` rounds, each a short
    measurement of every one in turn, ``budget`` seconds per function in all): a drift of the machine then moves all of them alike, so
    their ratio holds even when this VM's speed changes by 10-20 % from one minute to the next."""
    return [float(np.median(t)) for t in _rounds(fns, budget, rounds)]


def run(cases: list[Case], impls: list[str], directions: list[str], budget: float, slow_factor: float,
        out: Path | None) -> list[dict[str, Any]]:
    """Time every implementation on every case, in alternation; then ``fastest``, choosing from the
    records this run has made so far, timed in alternation with the best single implementation of
    that case and torch_cpu."""
    from impls.fastest import FastestConv2d

    op = get_op("conv2d")
    records: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkstemp(prefix="crossover-", suffix=".jsonl")[1])
    try:
        for case in cases:
            inputs = op.make_inputs(case.params, case.dtype)
            for d in directions:
                mine: list[dict[str, Any]] = []
                fns: dict[str, Any] = {}
                for name in ("torch_cpu", *impls):
                    impl = get_impl(name)
                    why = impl.unsupported(case.params, case.dtype, d)
                    if why:
                        mine.append(_record(name, case, d, None, "skipped", why))
                    else:
                        fns[name] = _call(impl, case, d, inputs)
                # one call each first: an implementation far behind torch_cpu has that call as its figure
                firsts = {name: _once(fn) for name, fn in fns.items()}
                slow = {n for n, t in firsts.items()
                        if n != "torch_cpu" and "torch_cpu" in firsts and t > slow_factor * firsts["torch_cpu"]}
                timed = [n for n in fns if n not in slow]
                # the rest in alternation, so that this VM's drift moves every ratio to torch_cpu alike
                medians = dict(zip(timed, _paired([fns[n] for n in timed], budget)))
                for name in fns:
                    if name in slow:
                        mine.append(_record(name, case, d, firsts[name], "ok", "single call (slow)"))
                    else:
                        mine.append(_record(name, case, d, medians[name], "ok"))
                    print(f"  {case.id:30s} {d:8s} {name:14s} {mine[-1]['t_median_s']:8.4f} s", file=sys.stderr)
                with open(tmp, "a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in mine)
                records += mine
                singles = [r for r in mine if r["impl"] in impls and r["status"] == "ok"]
                if not singles:
                    continue
                best = min(singles, key=lambda r: r["t_median_s"])
                fastest = FastestConv2d(crossover=tmp)
                # fastest, the best single and torch_cpu side by side again: fastest's ratios to both
                # come from one stretch of time (more rounds: the two NumPy figures are close calls)
                t_fast, t_best, t_torch = _paired([_call(fastest, case, d, inputs),
                                                   _call(get_impl(best["impl"]), case, d, inputs),
                                                   fns["torch_cpu"]], budget, rounds=5)
                r = _record("fastest", case, d, t_fast, "ok")
                r.update(choice=fastest.choice(case.params, case.dtype, d), best_single=best["impl"],
                         best_single_paired_s=t_best, vs_best_single=t_fast / t_best,
                         torch_paired_s=t_torch, vs_torch=t_fast / t_torch)
                records.append(r)
                print(f"  {case.id:30s} {d:8s} {'fastest':14s} {t_fast:8.4f} s ({r['choice']}; "
                      f"{best['impl']} alongside: {t_best:.4f} s)", file=sys.stderr)
    finally:
        tmp.unlink()
    if out is not None:
        with open(out, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    return records


def _big_3x3(case: Case) -> bool:
    p = case.params
    return (p.kh, p.kw) == (3, 3) and p.c >= 64 and p.groups == 1


def gemms_alone(case: Case) -> Any:
    """A call running shift_gemm's forward GEMMs alone on ``case`` (operands of the very shapes its
    forward multiplies, no copy, no layout change): the best any shifted-view method built on
    this BLAS could do, whatever its copies cost. None for a layer without GEMMs."""
    from impls.shift_gemm import forward_gemms

    shapes = forward_gemms(case.params)
    if not shapes:
        return None
    rng = np.random.default_rng(0)
    ops = {s: (rng.standard_normal(s[:2], dtype=np.float32), rng.standard_normal(s[1:], dtype=np.float32),
               np.empty((s[0], s[2]), np.float32)) for s in set(shapes)}

    def gemms() -> None:
        for s in shapes:
            a, b, c = ops[s]
            np.matmul(a, b, out=c)
    return gemms


#: the size of the peak GEMM the 3x3 table times alongside (``convbench machine``'s)
PEAK_N = 1024


def peak_calls(n: int = PEAK_N) -> dict[str, Any]:
    """The calls the machine's float32 GEMM peak is measured with (``convbench machine``: an
    ``n``-cubed matmul in NumPy and in torch, the faster of the two is the peak), by library."""
    from convbench.measure.machine import peak_gemm_calls

    return peak_gemm_calls("float32", n)


#: seconds per function in the 3x3 table's alternation at the least (0.15 s per round): with
#: --quick's 0.3 s, blocks of 50 ms put shift_gemm's GEMMs alone at 51 % where longer ones give 75 %
_MIN_ALONGSIDE_S = 0.9


def alongside(fns: dict[str, Any], budget: float, rounds: int = 6) -> dict[str, list[float]]:
    """Seconds of each of ``fns`` per round, timed in alternation (:func:`_rounds`), by name."""
    return dict(zip(fns, _rounds(list(fns.values()), budget, rounds)))


def ceiling_report(records: list[dict[str, Any]], cases: list[Case], budget: float, peak: float) -> str:
    """3x3 layers with >= 64 channels, where issue 8 asks for 50 % of the GEMM peak: fastest's
    forward (and backward, where the run timed it), torch_cpu's forward and shift_gemm's GEMMs
    alone, timed once more in alternation with the peak GEMM itself (:func:`peak_calls`): six
    rounds, each a short measurement of every one in turn; a percentage is the median over the
    rounds of each round's time against that round's peak, measured seconds apart. This VM's speed
    swings by 20-30 % from one minute to the next: a peak measured at the start moved the
    percentages of a layer timed minutes later by as much (34-55 % for one layer over five runs).
    The figures of the run's own timing, of the peak given at the start, are printed beside them."""
    from impls.fastest import FastestConv2d

    by = {(r["impl"], r["case"], r["direction"]): r for r in records}
    rows = [c for c in cases if _big_3x3(c) and ("fastest", c.id, "forward") in by]
    if not rows:
        return ""
    fd, tmp = tempfile.mkstemp(prefix="crossover-", suffix=".jsonl")
    with os.fdopen(fd, "w") as f:   # fastest chooses from this run's records, as it did in the run
        f.writelines(json.dumps(r) + "\n" for r in records if r["impl"] != "fastest")
    try:
        fastest = FastestConv2d(crossover=tmp)
        op = get_op("conv2d")
        calls = peak_calls()
        table = []
        for c in rows:
            inputs = op.make_inputs(c.params, c.dtype)
            fns = {"fastest": _call(fastest, c, "forward", inputs),
                   "torch_cpu": _call(get_impl("torch_cpu"), c, "forward", inputs)}
            gemms = gemms_alone(c)
            if gemms is not None:
                fns["gemms"] = gemms
            if ("fastest", c.id, "backward") in by:
                fns["backward"] = _call(fastest, c, "backward", inputs)
            fns.update({f"peak_{k}": v for k, v in calls.items()})
            t = alongside(fns, max(budget, _MIN_ALONGSIDE_S))
            # each round's peak is the faster library's in that round; each percentage is the
            # median over the rounds of the round's own ratio (seconds apart, not minutes)
            local = [max(2 * PEAK_N ** 3 / t[f"peak_{k}"][i] / 1e9 for k in calls) for i in range(len(t["fastest"]))]

            def pct(name: str, direction: str = "forward") -> float:
                if name not in t:
                    return math.nan
                flops = c.params.flops(direction)
                return float(np.median([100 * flops / s / 1e9 / pk for s, pk in zip(t[name], local)]))
            run_pct = 100 * by[("fastest", c.id, "forward")]["gflops"] / peak
            table.append((c.id, float(np.median(local)), pct("torch_cpu"), pct("fastest"), pct("gemms"),
                          pct("backward", "backward"), run_pct))
    finally:
        os.unlink(tmp)
    lines = [f"\n3x3 layers with >= 64 channels, timed again in alternation with the {PEAK_N}^3 float32 GEMM peak "
             f"(NumPy's and torch's, the faster): median over the rounds of % of that round's peak; the last "
             f"column is fastest in the run above, % of its {peak:.1f} GFLOP/s",
             f"{'layer':30s} {'peak GF/s':>9s} {'torch_cpu':>9s} {'fastest':>8s} {'its GEMMs alone':>16s} "
             f"{'fastest backward':>17s} {'fastest, run':>13s}"]

    def cell(x: float, width: int) -> str:
        return f"{x:{width - 1}.1f}%" if math.isfinite(x) else f"{'-':>{width}s}"

    for name, local, tp, fp, gp, bp, rp in table:
        lines.append(f"{name:30s} {local:9.1f} {cell(tp, 9)} {cell(fp, 8)} {cell(gp, 16)} {cell(bp, 17)} "
                     f"{cell(rp, 13)}")
    cols = list(zip(*table))
    fast, ceil, back, run_ = cols[3], cols[4], cols[5], cols[6]

    def span(xs: Any) -> str:
        xs = [x for x in xs if math.isfinite(x)]
        return f"{min(xs):.1f}-{max(xs):.1f} % (geometric mean {_geomean(xs):.1f} %)" if xs else "-"
    lines.append(f"of the peak alongside: fastest {span(fast)}, {sum(x >= 50 for x in fast)}/{len(fast)} at >= 50 %; "
                 f"shift_gemm's GEMMs alone {span(ceil)}")
    if any(math.isfinite(b) for b in back):
        lines.append(f"fastest backward {span(back)}")
    lines.append(f"in the run, of {peak:.1f} GFLOP/s: fastest {span(run_)}")
    return "\n".join(lines)


def report(records: list[dict[str, Any]], cases: list[Case], impls: list[str], directions: list[str],
           peak: float) -> str:
    """Per layer and geometric-mean table: ratio to torch_cpu (lower is better) and % of GEMM peak."""
    names = [*impls, "fastest"]
    by = {(r["impl"], r["case"], r["direction"]): r for r in records}
    lines = []
    for d in directions:
        lines.append(f"\n{d}: time / torch_cpu time (% of {peak:.1f} GFLOP/s GEMM peak)")
        head = f"{'layer':30s} {'torch ms':>9s} {'torch%':>6s} " + " ".join(f"{n:>16s}" for n in names) + "  choice"
        lines.append(head)
        ratios: dict[str, list[float]] = {n: [] for n in names}
        pcts: dict[str, list[float]] = {n: [] for n in ["torch_cpu", *names]}
        for case in cases:
            ref = by.get(("torch_cpu", case.id, d))
            tr = ref["t_median_s"] if ref else None
            pct = {n: (100 * r["gflops"] / peak if (r := by.get((n, case.id, d))) and r["gflops"] else None)
                   for n in ["torch_cpu", *names]}
            cells = []
            for n in names:
                r = by.get((n, case.id, d))
                if not r or r["status"] != "ok" or not tr:
                    cells.append(f"{'-':>16s}")
                    continue
                ratio = r.get("vs_torch") or r["t_median_s"] / tr   # fastest: against its own torch_cpu
                ratios[n].append(ratio)
                pcts[n].append(pct[n])
                cells.append(f"{ratio:7.2f} ({pct[n]:5.1f}%)")
            pcts["torch_cpu"].append(pct["torch_cpu"])
            choice = (by.get(("fastest", case.id, d)) or {}).get("choice", "")
            lines.append(f"{case.id:30s} {1e3 * tr:9.2f} {pct['torch_cpu'] or 0:5.1f}% " + " ".join(cells) + f"  {choice}")
        lines.append(f"{'geometric mean':30s} {'':9s} {_geomean(pcts['torch_cpu']):5.1f}% "
                     + " ".join(f"{_geomean(ratios[n]):7.2f} ({_geomean(pcts[n]):5.1f}%)" for n in names))
        vs = [(r["vs_best_single"], c.id) for c in cases
              if (r := by.get(("fastest", c.id, d))) and r.get("vs_best_single")]
        worst, where = max(vs, default=(math.nan, "-"))
        same = sum(1 for c in cases if (r := by.get(("fastest", c.id, d))) and r.get("choice") == r.get("best_single"))
        lines.append(f"fastest / best single NumPy impl, timed in alternation: worst {worst:.2f}x ({where}), "
                     f"geometric mean {_geomean([v for v, _ in vs]):.3f}, {sum(v <= 1.1 for v, _ in vs)}/{len(vs)} "
                     f"within 10 %; it chose the best single on {same}/{len(vs)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="five layers, short timing budget (smoke test)")
    ap.add_argument("--native-blas", action="store_true",
                    help="re-run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (this process only)")
    ap.add_argument("--impl", action="append", choices=NUMPY_IMPLS, help="NumPy implementations (default: all)")
    ap.add_argument("--direction", action="append", choices=("forward", "backward"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--peak", type=float, default=None, metavar="GFLOPS",
                    help="float32 GEMM peak to take percentages of (default: the higher of the cached peak and one "
                         "measured at the start), to compare runs against one reference")
    ap.add_argument("--model", default="resnet50",
                    help="another model of the models suite (vgg16, mobilenetv2, ...) or 'all' (default resnet50)")
    ap.add_argument("--layer", action="append", default=[], metavar="PATTERN",
                    help="only the layers whose id contains PATTERN (repeatable), e.g. layer2.0.conv2")
    ap.add_argument("--budget", type=float, default=None, help="timing budget per call, seconds")
    ap.add_argument("--out", type=Path, help="append the records (JSON lines) to this file")
    args = ap.parse_args(argv)
    if args.native_blas and any(k in os.environ for k in _FORCED):
        env = {k: v for k, v in os.environ.items() if k not in _FORCED}
        argv2 = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--native-blas"]
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv2], env)
    impls = args.impl or list(NUMPY_IMPLS)
    directions = args.direction or ["forward", "backward"]
    cases = select_layers(resnet50_cases(args.batch, args.quick, args.model), args.layer)
    budget = args.budget or (0.3 if args.quick else 2.0)
    print(f"BLAS: {blas_description()}")
    import torch

    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
          f"{'mkldnn' if torch.backends.mkldnn.is_available() else 'no mkldnn'}")
    peak, source = (args.peak, "given with --peak") if args.peak else _peak_gflops()
    print(f"measured float32 GEMM peak: {peak:.1f} GFLOP/s ({source}); {len(cases)} layers of {args.model}, "
          f"batch {args.batch}, float32")
    records = run(cases, impls, directions, budget, slow_factor=8.0 if args.quick else 20.0, out=args.out)
    print(report(records, cases, impls, directions, peak))
    if "forward" in directions:
        print(ceiling_report(records, cases, budget, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
