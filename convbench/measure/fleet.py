"""Benchmarks on the workers of a cluster: one unit per implementation x case, records back here.

Each unit is a small :func:`~convbench.measure.bench.run_bench` of its own on the worker that
takes it, so a remote measurement is made exactly as a local one (prediction against its share of
the budget, warm-up, timer, memory call), against that worker's machine: its fingerprint, and
its peaks measured once per worker process. The client gives every record the run's id and the
worker's name and appends it to ``out`` as it arrives, so ``--resume`` reads a cluster's file as it
reads a local one. Benchmarks on one host never overlap: every bench unit holds the host's lock
(:func:`convbench.execute.slot.bench_lock`) while it runs.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from convbench import store
from convbench.execute import Outcome, Unit, ship_source, worker_machine
from convbench.measure.bench import run_bench
from convbench.measure.budget import MAX_ITEM_S
from convbench.measure.memory import warm_up_profiler
from convbench.ops import DIRECTIONS

__all__ = ["bench_unit", "run_bench_on"]

#: seconds a bench unit may run beyond its directions' shares before it is a timeout (start-up,
#: imports, measuring the worker's peaks on its first unit)
UNIT_GRACE_S = 120.0


_WARM: list[bool] = []


def bench_unit(impl: Any, unit: Unit) -> list[dict[str, Any]]:
    """Run one unit of kind ``bench`` here: ``unit.case`` in ``unit.directions``, within
    ``options["share"]`` seconds a direction (None: no limit), on this machine's record."""
    share = unit.options.get("share")
    machine = worker_machine(with_peaks=True)  # the first unit of a worker measures its peaks
    if impl.info.backend == "torch" and not _WARM:
        # torch's profiler costs seconds to start the first time: not on the first unit's share
        try:
            warm_up_profiler()
        except Exception:
            pass  # the memory call reports its own failure
        _WARM.append(True)
    return run_bench([impl], [unit.case], budget=None if share is None else share * len(unit.directions),
                     threads=unit.options.get("threads"), progress=False, directions=unit.directions,
                     machine=machine)


def _failed(unit: Unit, out: Outcome, run_id: str) -> list[dict[str, Any]]:
    """Records for a unit that came back without any (crashed, timeout, error)."""
    status = out.status if out.status in ("timeout", "crashed") else "error"
    case = unit.case
    return [{"schema": store.SCHEMA_VERSION, "run_id": run_id, "machine": {"id": out.machine} if out.machine else None,
             "op": case.op, "direction": d, "impl": unit.name, "case": case.id, "descriptor": case.descriptor,
             "params": case.as_dict()["params"], "dtype": case.dtype, "count": case.count, "status": status,
             "reason": out.message, "samples": []} for d in unit.directions]


def run_bench_on(executor: Any, impls: list[Any], cases: list[Any], *, out: Path | None = None,
                 budget: float | None = None, threads: int | None = None, resume: bool = False,
                 directions: tuple[str, ...] = DIRECTIONS) -> list[dict[str, Any]]:
    """Benchmark every implementation on every case on the workers of ``executor`` (a Dask cluster).

    Parameters
    ----------
    executor : executor
        From :func:`convbench.execute.get_executor`.
    impls, cases, out, threads, resume, directions
        As for :func:`~convbench.measure.bench.run_bench`.
    budget : float, optional
        Seconds of measuring, shared equally among the units (the cluster's hosts measure side by
        side, so a run takes about ``budget`` divided by the hosts).

    Returns
    -------
    list of dict
        The records, in the order of a serial run; each carries ``machine`` (the worker's) and
        ``worker``.
    """
    run_id = uuid.uuid4().hex[:12]
    done = store.done_keys(store.read(out)) if (resume and out is not None) else set()
    units: list[Unit] = []
    for case in cases:
        for impl in impls:
            dirs = tuple(d for d in directions if store.record_key(
                {"op": case.op, "impl": impl.info.name, "case": case.id, "descriptor": case.descriptor,
                 "direction": d, "dtype": case.dtype}) not in done)
            if not dirs:
                continue
            spec = impl.info.spec or impl.info.name
            units.append(Unit("bench", spec, impl.info.name, case.op, case, dirs, index=len(units),
                              options={"threads": threads}, source=ship_source(spec)))
    share = budget / max(1, sum(len(u.directions) for u in units)) if budget else None
    per = MAX_ITEM_S * 3 if share is None else max(share * 3, 1.0)
    units = [Unit(u.kind, u.spec, u.name, u.op, u.case, u.directions, index=u.index,
                  timeout=per * len(u.directions) + UNIT_GRACE_S, options={**u.options, "share": share},
                  source=u.source) for u in units]
    got: dict[int, list[dict[str, Any]]] = {}
    for o in executor.run(units, parallel=False):
        recs = o.records if o.status == "ok" else _failed(o.unit, o, run_id)
        for r in recs:
            r["run_id"], r["worker"] = run_id, o.worker
            if out is not None:
                store.append(out, r)
        got[o.unit.index] = recs
    return [r for i in sorted(got) for r in got[i]]
