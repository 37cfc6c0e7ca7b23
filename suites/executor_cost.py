"""What the executors cost and what they save: per-unit overhead, and `make run`'s check phase.

    python suites/executor_cost.py overhead [--units 400] [--dask dask://HOST:PORT]
    python suites/executor_cost.py phase [--rounds 2] [--jobs 2]

``overhead`` runs the same cheap check units (the shape check of im2col on a small case) here in
this process, through the local pool and, with ``--dask``, through a cluster, and prints the
seconds per unit beyond the check itself (the pool's processes are started before the clock).
``phase`` times `make run`'s check phase (every operator's implementations on its edge suite)
one at a time here (``jobs=1``) and in the local pool, alternating the two ``--rounds`` times in
this one process, and prints each time and the ratio. Both print the machine first.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from convbench.cases import get_suite
from convbench.execute import LocalExecutor, Unit, get_executor
from convbench.measure.machine import describe, fingerprint
from convbench.ops import op_names
from convbench.registry import get_impl, registered
from convbench.verify import run_checks
from convbench.verify.runner import check_unit


def _units(n: int) -> list[Unit]:
    case = get_suite("edge", "conv2d")[0]
    return [Unit("check", "im2col", "im2col", "conv2d", case, ("forward",), index=i, timeout=60.0,
                 options={"check": "shape", "shrink": False}) for i in range(n)]


def _through(ex: Any, units: list[Unit]) -> float:
    list(ex.run(units[:8]))  # processes started, implementation loaded
    t0 = time.perf_counter()
    outs = list(ex.run(units))
    assert all(o.status == "ok" for o in outs), {o.status for o in outs}
    return (time.perf_counter() - t0) / len(units)


def overhead(n: int, dask: str | None) -> None:
    units = _units(n)
    impl = get_impl("im2col")
    check_unit(impl, units[0])
    t0 = time.perf_counter()
    for u in units:
        check_unit(impl, u)
    here = (time.perf_counter() - t0) / n
    print(f"{n} units (shape check, im2col, {units[0].case.descriptor}), seconds per unit:")
    print(f"  in this process        {here * 1e3:7.2f} ms")
    for jobs in (1, 2):
        with LocalExecutor(jobs) as ex:
            t = _through(ex, units)
        print(f"  local pool, {jobs} job{'s' if jobs > 1 else ' '}    {t * 1e3:7.2f} ms   "
              f"(overhead {(t * jobs - here) * 1e3:+.2f} ms a unit per job)")
    if dask:
        with get_executor(dask) as ex:
            n_workers = len(ex.workers)
            t = _through(ex, units)
        print(f"  dask, {n_workers} workers       {t * 1e3:7.2f} ms   (wall time per unit, the cluster's "
              f"threads together)")


def _phase(jobs: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    with LocalExecutor(jobs) as ex:
        for op in op_names():
            impls = sorted(registered(op), key=lambda m: m.info.name != "torch_cpu")
            if impls:
                n += len(run_checks(impls, get_suite("edge", op), executor=ex, progress=False))
    return time.perf_counter() - t0, n


def phase(rounds: int, jobs: int) -> None:
    times: dict[int, list[float]] = {1: [], jobs: []}
    counts = set()
    for r in range(rounds):
        for j in ((1, jobs) if r % 2 == 0 else (jobs, 1)):
            t, n = _phase(j)
            counts.add(n)
            times[j].append(t)
            print(f"  round {r + 1}, jobs={j}: {t:7.1f} s  ({n} check records)", flush=True)
    s, p = statistics.median(times[1]), statistics.median(times[jobs])
    print(f"check phase: serial {s:.1f} s, local pool of {jobs} {p:.1f} s (medians of {rounds}): "
          f"{s / p:.2f}x; records per run {sorted(counts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--units", type=int, default=400)
    o.add_argument("--dask", default=None, metavar="dask://HOST:PORT")
    p = sub.add_parser("phase")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    print(" | ".join(x.strip() for x in describe(fingerprint()).splitlines()[:2]), "|",
          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    if args.what == "overhead":
        overhead(args.units, args.dask)
    else:
        phase(args.rounds, args.jobs)


if __name__ == "__main__":
    main()
