"""The main job (``convbench run``): check, then bench, every operator's shipped implementations.

Per operator: every registered implementation checked on the edge suite, then timed on the quick
suite within the operator's share of the budget (what is left divided by the operators left, so
time one operator does not use goes to the next), the baseline first in each case so that it is
the last to go when the budget runs short. The records are written into the output directory
(``check.json`` after each operator's checks, so they are kept whatever happens to the benchmarks;
``bench.jsonl`` as each measurement is made, an earlier run's file moved aside first, never
deleted); turning them into a report is the caller's part (the command line ties in
:mod:`reports`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from convbench import store
from convbench._errors import ParamError
from convbench.cases import get_suite
from convbench.measure.bench import run_bench
from convbench.measure.fleet import run_bench_on
from convbench.measure.machine import fingerprint, machine_record, peaks
from convbench.ops import get_op, op_names
from convbench.registry import registered
from convbench.verify import run_checks
from convbench.verify.report import checked_in
from convbench.records import FAILING

__all__ = ["MainJob", "run_main_job", "move_aside", "BASELINE"]

#: the implementation every case is timed with first, and that speedups are measured against
BASELINE = "torch_cpu"


@dataclass
class MainJob:
    """What :func:`run_main_job` made."""

    #: the check records of every operator, in order
    check_records: list[dict[str, Any]]
    #: the bench records (JSON lines) and the check records (a JSON array)
    bench_path: Path
    check_path: Path
    #: the machine record the bench records carry
    machine: dict[str, Any]
    #: the operators, in the order they ran
    ops: list[str] = field(default_factory=list)
    #: ``time.perf_counter()`` when the checking began (after the machine's peaks were measured)
    started: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The check records that failed (failed, error, timeout, crashed)."""
        return [r for r in self.check_records if r["status"] in FAILING]


def _quiet(line: str) -> None:
    pass


def move_aside(path: Path) -> Path | None:
    """A fresh run must not mix its records with an earlier run's: move ``path`` aside (never
    deleted) to ``<stem>.<its time><suffix>``; returns where it went (None: nothing there)."""
    if not path.exists():
        return None
    if not path.is_file():
        raise ParamError(f"{path} exists and is not a records file; move it away first")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
    dest = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
        n += 1
    path.rename(dest)
    return dest


def run_main_job(out: Path, budget: float | None = 100.0, ops: list[str] | None = None, *,
                 mine: list[Any] | None = None, executor: Any = None, say: Callable[[str], None] = _quiet,
                 note: Callable[[str], None] = _quiet) -> MainJob:
    """Check and bench the shipped implementations of ``ops``; write the records into ``out``.

    Parameters
    ----------
    out : Path
        Directory for ``check.json`` and ``bench.jsonl`` (created; a ``bench.jsonl`` of an
        earlier run is moved aside, not added to).
    budget : float, optional
        Seconds for benchmarking, all operators together; None: no limit.
    ops : list of str, optional
        Operators (default: those of ``mine``, else every operator with a registered
        implementation).
    mine : list, optional
        The user's own implementations, checked and timed beside the shipped ones (right after
        the baseline in each case: if the budget runs short, they are the last to go after it).
    executor : Executor, optional
        Where the checks run and, on a cluster, the benchmarks (default: here; see
        :func:`convbench.execute.get_executor`).
    say : callable, optional
        Called with each progress line (``convbench run`` prints them).
    note : callable, optional
        Called with each notice (an earlier run's records moved aside; ``convbench run`` prints
        them on stderr).

    Returns
    -------
    MainJob
        The check records and where the records went.
    """
    if budget is not None and not budget > 0:
        raise ParamError(f"budget must be a positive number of seconds or None, got {budget!r}")
    for op in ops or []:
        get_op(op)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bench_path = out / "bench.jsonl"
    moved = move_aside(bench_path)
    if moved is not None:
        note(f"an earlier run's records {bench_path} were moved to {moved}")
    mine = list(mine or [])
    ops = list(ops or (dict.fromkeys(m.info.op for m in mine) if mine else [o for o in op_names() if registered(o)]))
    # the peaks are measured afresh: % of peak must not rest on a measurement cached while the
    # machine was busy
    fp = fingerprint()
    machine = machine_record(fp, peaks(fp, refresh=True))
    job = MainJob([], bench_path, out / "check.json", machine, ops, time.perf_counter())
    left = budget
    for i, op in enumerate(ops):
        # the baseline first in each case, then the user's: if the budget runs short, they are the
        # last to go
        own = [m for m in mine if m.info.op == op]
        shipped = sorted((m for m in registered(op) if m not in own), key=lambda m: m.info.name != BASELINE)
        impls = (shipped[:1] + own + shipped[1:] if shipped and shipped[0].info.name == BASELINE
                 else own + shipped)
        say(f"== {op}: checking {len(impls)} implementations on the edge suite")
        t0 = time.perf_counter()
        recs = run_checks(impls, get_suite("edge", op), executor=executor)
        took = time.perf_counter() - t0
        job.check_records += recs
        store.write_json(job.check_path, job.check_records)  # kept whatever happens to the benchmarks
        say(f"   {sum(r['status'] == 'passed' for r in recs)} passed, {sum(r['status'] in FAILING for r in recs)} "
            f"failed, {sum(r['status'] in ('skipped', 'unsupported') for r in recs)} skipped or unsupported; "
            f"{checked_in(recs, took)}")
        share = left / (len(ops) - i) if left else None
        spent = time.perf_counter()
        say(f"== {op}: benchmarking the quick suite (budget {f'{share:.0f} s' if share else 'unlimited'})")
        if executor is not None and executor.remote:  # on the cluster's workers, one per host at a time
            run_bench_on(executor, impls, get_suite("quick", op), out=job.bench_path, budget=share)
        else:
            run_bench(impls, get_suite("quick", op), out=job.bench_path, budget=share, threads=None, resume=False,
                      machine=machine)
        left = max(left - (time.perf_counter() - spent), 1.0) if left else None
    return job
