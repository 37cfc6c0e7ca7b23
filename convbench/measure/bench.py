"""The bench runner: implementations x cases x directions -> bench records.

For each item: availability and support (else ``skipped`` with the reason), the run's give-ups (a
deadline passed, an implementation that timed out or crashed too often), a time prediction against
the budget (:mod:`convbench.measure.budget`; else ``skipped`` with the estimate), then one
measurement (:mod:`convbench.measure.measurement`: the prepared call timed, its memory, a check
after timing). A measurement whose one timed call took most of its budget is taken again when the
run can spare it: that call was the first, which may pay one-time costs. Once a case's items are
measured, its implementations are timed again in interleaved rounds
(:mod:`convbench.measure.rounds`). Records carry % of peak against the peak of the
implementation's device (the CPU's or the GPU's). Every record is appended to ``out`` as soon as
its case is done; an exception becomes an ``error`` record and the run goes on. Implementations
whose ``ImplInfo.isolate`` is set run in a worker process (:mod:`convbench.measure.isolate`), where
a hang is a ``timeout`` and a crash ``crashed``.

Record listeners: an implementation (registered, or in the run) may declare
``bench_listener(machine) -> callable or None``; it is asked once per class at the start of a run,
and what it returns is given every record of the run as soon as it is made (``fastest`` keeps the
times it chooses from so). Such an implementation is timed after the others on each case, so that
it can use what the run has just measured. A listener that raises is dropped with a warning; the
run goes on.
"""
from __future__ import annotations

import math
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convbench import store
from convbench._errors import ParamError
from convbench._progress import progress as progress_bar
from convbench.measure import guard
from convbench.measure.budget import MAX_ITEM_S, Budget, Plan, Planner
from convbench.measure.instructions import instruction_fields
from convbench.measure.isolate import STARTUP_TIMEOUT, Worker
from convbench.measure.machine import device_peak, fingerprint, here_worker, machine_record, peaks
from convbench.measure.measurement import MIN_TIME_S, measure_one
from convbench.measure.memory import warm_up_profiler, workspace_bytes
from convbench.measure.rounds import interleave
from convbench.measure.threads import thread_limits
from convbench.measure.timer import summarise
from convbench.ops import DIRECTIONS
from convbench.registry import availability, registered

#: ``measure_one`` and ``MIN_TIME_S`` live in :mod:`convbench.measure.measurement`; named here too, where
#: callers have imported them from
__all__ = ["run_bench", "measure_one", "MAX_ITEM_S", "MIN_TIME_S"]

#: run_bench's default for checking each timed call once more, on fresh inputs, after its timing
AFTER_CHECK = True
#: a worker gets this many seconds beyond its item's share before it is a timeout (start-up, imports)
ISOLATE_GRACE_S = 60.0
#: after this many timeouts (crashes) of one implementation its other items are skipped, as
#: ``convbench check`` gives up (convbench.verify.runner): a hanging implementation costs a couple
#: of timeouts, not one per item
MAX_TIMEOUTS = 2
MAX_CRASHES = 3
#: the grace of an isolated implementation's calls after its first (imports done by then)
WARM_GRACE_S = 10.0
#: an isolated implementation's item is timed in two processes when each gets at least this long
SECOND_PROCESS_MIN_S = 0.25


# --- the run -------------------------------------------------------------------------------------

class _Runner:
    def __init__(self, out: Path | None, budget: Budget, machine: dict[str, Any], threads: dict[str, Any],
                 timeout_grace: float = ISOLATE_GRACE_S, clock: Callable[[], float] | None = None,
                 deadline: float | None = None, slots: int = 1) -> None:
        self.clock = clock
        self.out, self.budget, self.machine, self.threads = out, budget, machine, threads
        self.planner = Planner(budget, self._probe, slots)
        self.run_id = uuid.uuid4().hex[:12]
        #: the records' ``worker``: this process (a cluster's run names its worker instead)
        self.worker_name = here_worker()
        self.workers: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.grace = timeout_grace
        self.mem_slowdown: dict[str, float] = {}
        self.baseline: set[int] = set()  # id() of the baseline implementation
        self.after_check = AFTER_CHECK
        #: timeouts and crashes of each implementation: after a few, its other items are skipped
        self.timeouts: dict[str, int] = {}
        self.called: set[tuple[str, bool]] = set()   # (implementation, second process) whose worker has had a call
        self.crashes: dict[str, int] = {}
        #: ``time.monotonic()`` by which the whole run ends (``--deadline``), or None
        self.end = None if deadline is None else time.monotonic() + deadline

    def given_up(self, impl: Any) -> str | None:
        """Why ``impl``'s next item is not run: the run's deadline passed, or the implementation
        timed out or crashed too often (as ``convbench check`` gives up), else None."""
        if self.end is not None and time.monotonic() >= self.end:
            return "not run: the run's deadline passed"
        name = impl.info.name
        if self.timeouts.get(name, 0) >= MAX_TIMEOUTS:
            return f"skipped after {self.timeouts[name]} timeouts of {name}"
        if self.crashes.get(name, 0) >= MAX_CRASHES:
            return f"skipped after {self.crashes[name]} crashes of {name}"
        return None

    def worker(self, impl: Any, second: bool = False) -> Any:
        """The isolate worker of an isolated implementation (one per spec, kept for the run; with
        ``second``, its second process)."""
        key = f"{impl.info.spec}\0second" if second else impl.info.spec
        wk = self.workers.get(key)
        if wk is None:
            wk = self.workers[key] = Worker(impl.info.spec, impl.info.op)
        return wk

    # one measurement, in-process or isolated; returns (status, result-or-message)
    def _measure(self, impl: Any, case: Any, direction: str, second: bool = False, **kw: Any) -> tuple[str, Any]:
        if not getattr(impl.info, "isolate", False):
            try:
                return "ok", measure_one(impl, case, direction, clock=self.clock, **kw)
            except Exception as exc:
                return "error", f"{type(exc).__name__}: {exc}"
        wk = self.worker(impl, second)
        # the first call of an implementation may import what it needs (torch): the full grace;
        # after that a call is its timed work and a little more; a short --budget shortens both
        first = (impl.info.name, second) not in self.called
        self.called.add((impl.info.name, second))
        grace = self.grace if first else min(self.grace, WARM_GRACE_S)
        if self.budget.limited:
            grace = min(grace, max(WARM_GRACE_S, self.budget.total_s))
        timeout = kw.get("budget_s", MAX_ITEM_S) * 3 + grace
        if self.end is not None:
            timeout = max(min(timeout, self.end - time.monotonic()), 0.1)
            wk.startup_timeout = min(STARTUP_TIMEOUT, timeout)   # loading counts against the deadline too
        res = wk.call("convbench.measure.measurement:_measure_in_worker", case, direction, kw, impl.info.name,
                      timeout=timeout)
        if res.status == "timeout":
            self.timeouts[impl.info.name] = self.timeouts.get(impl.info.name, 0) + 1
        elif res.status == "crashed":
            self.crashes[impl.info.name] = self.crashes.get(impl.info.name, 0) + 1
        return (res.status, res.value) if res.ok else (res.status, res.message.strip().splitlines()[0] if res.message else res.status)

    def _measure_settled(self, impl: Any, case: Any, direction: str, **kw: Any) -> tuple[str, Any, float | None]:
        """:meth:`_measure`, and once more when its one timed call may have been a first call's
        one-time cost: (status, result, the first call's seconds when measured again, else None).

        A call that takes most of its budget is timed once (the timer's ``single``), and that
        call is the item's first: CUDA loads cuDNN's kernels lazily (on an H200, 150-425 ms for
        a conv2d backward that then takes 0.13 ms), oneDNN builds its kernels per shape. When
        the run can spare another such call (:meth:`Planner.spare`), it is measured again and
        the faster kept; an implementation that is simply slow costs the same twice and keeps
        its first time."""
        status, res = self._measure(impl, case, direction, **kw)
        if status != "ok" or res.get("stop") != "single" or not self.planner.spare(res["t_median_s"]):
            return status, res, None
        again_status, again = self._measure(impl, case, direction, **dict(kw, memory=False))
        if again_status != "ok" or again["t_median_s"] >= res["t_median_s"]:
            return status, res, None
        again.update(peak_mem_bytes=res["peak_mem_bytes"], mem_method=res["mem_method"], mem_s=res.get("mem_s"))
        return status, again, res["t_median_s"]

    def _second_process(self, impl: Any, case: Any, direction: str, budget_s: float,
                        res: dict[str, Any]) -> dict[str, Any]:
        """``res`` with the samples of the item timed again in the implementation's second worker
        process (no memory, no check after): median, minimum and IQR of both processes' samples;
        ``processes`` says how many gave them. A second process that fails leaves ``res`` as it was."""
        status, again = self._measure(impl, case, direction, second=True, budget_s=budget_s, memory=False,
                                      after_check=False)
        if status != "ok" or not again.get("samples"):
            return res
        samples = list(res["samples"]) + list(again["samples"])
        median, low, iqr = summarise(samples)
        host = {k: max((v for v in (res.get(k), again.get(k)) if v is not None), default=None)
                for k in ("steal_pct", "others_pct")}
        return dict(res, samples=samples, t_median_s=median, t_min_s=low, t_iqr_s=iqr, processes=2, **host)

    def _probe(self, impl: Any, case: Any, direction: str, budget_s: float) -> float | None:
        """The planner's calibration probe: the fastest of two timed calls, no memory; None when
        it failed."""
        status, res, _ = self._measure_settled(impl, case, direction, budget_s=budget_s, memory=False,
                                               min_time_s=0.0, max_samples=2)
        return res["t_min_s"] if status == "ok" else None

    def item(self, impl: Any, case: Any, direction: str, base: dict[str, Any]) -> dict[str, Any]:
        rec = dict(base, status="ok", reason="", t_median_s=None, t_min_s=None, t_iqr_s=None, samples=[],
                   gflops=None, pct_peak=None, peak_mem_bytes=None)
        why = self.given_up(impl)
        if why:   # said without asking the implementation anything (its worker may be gone)
            rec.update(status="skipped", reason=why)
            return rec
        why = availability(impl)
        if why is None and hasattr(impl, "unsupported"):
            try:
                why = impl.unsupported(case.params, case.dtype, direction)
            except Exception as exc:
                rec.update(status="error", reason=f"unsupported() raised {type(exc).__name__}: {exc}")
                return rec
        why = why or guard.too_big(case)   # before any array is made
        if why:
            rec.update(status="skipped", reason=why)
            return rec
        plan = self.planner.plan(impl, case, direction, rec["flops"])
        if plan.predicted:
            rec["t_est_s"] = plan.est
        if plan.skip is not None:
            rec.update(status="skipped", budget_skip=True, reason=plan.skip)
            return rec
        return self._measured(impl, case, direction, rec, plan)

    def _measured(self, impl: Any, case: Any, direction: str, rec: dict[str, Any], plan: Plan) -> dict[str, Any]:
        """``rec`` with the measurement of the item (or the status and reason of its failure)."""
        # until measured: the profiler adds little per torch call; tracemalloc up to ~20x on
        # pure-Python loops that allocate an object per product
        slow = self.mem_slowdown.get(impl.info.name, 2.0 if impl.info.backend == "torch" else 20.0)
        budget_s = min(plan.share, MAX_ITEM_S)
        if self.end is not None:
            budget_s = max(min(budget_s, self.end - time.monotonic()), 1e-3)
        # an isolated implementation's item is timed in two processes, half the time each: a whole
        # process can run in the machine's slow state (docs/measurement.md), and the item's floor
        # is then the other's
        two = getattr(impl.info, "isolate", False) and budget_s >= 2 * SECOND_PROCESS_MIN_S
        status, res, first_call = self._measure_settled(impl, case, direction, budget_s=budget_s / (2 if two else 1),
                                                        memory=plan.memory, mem_slowdown=slow,
                                                        after_check=self.after_check)
        if status != "ok":
            rec.update(status=status, reason=str(res))
            return rec
        if two and res.get("stop") != "single":
            res = self._second_process(impl, case, direction, budget_s / 2, res)
        if first_call is not None:
            rec["first_call_s"] = first_call
        if res.get("processes"):
            rec["processes"] = res["processes"]
        rec.update(t_median_s=res["t_median_s"], t_min_s=res["t_min_s"], t_iqr_s=res["t_iqr_s"],
                   samples=res["samples"], number=res["number"], stop=res["stop"],
                   peak_mem_bytes=res["peak_mem_bytes"], mem_method=res["mem_method"],
                   steal_pct=res.get("steal_pct"), others_pct=res.get("others_pct"),
                   **({"heap": res["heap"]} if res.get("heap") else {}))
        if res.get("after_check"):  # the times stay, but they timed something other than the work
            rec.update(status="failed", reason=res["after_check"])
        if not plan.memory:
            rec["mem_method"] = "not measured: one call takes most of the case budget"
        if res.get("mem_s") and res["t_median_s"] > 1e-3:
            # what tracing really costs this implementation, for the next items' decision
            self.mem_slowdown[impl.info.name] = max(1.0, res["mem_s"] / res["t_median_s"])
        self.planner.observe(impl, case, direction, rec["flops"], res["t_median_s"])
        if res["t_median_s"] > 0:
            rec["gflops"] = rec["flops"] / res["t_median_s"] / 1e9
            peak = device_peak(self.machine, impl.info.device, case.dtype)
            if peak:
                rec["pct_peak"] = 100.0 * rec["gflops"] / peak
        return rec

    def close(self) -> None:
        for wk in self.workers.values():
            wk.close()


def _base(runner: _Runner, impl: Any, case: Any, direction: str) -> dict[str, Any]:
    p = case.params
    flops = int(p.flops(direction))
    bytes_min = int(p.bytes_min(direction, np.dtype(case.dtype).itemsize))
    choice = chosen_by = None
    f = getattr(impl, "choice", None)
    if f is not None:
        try:
            choice = f(p, case.dtype, direction) if callable(f) else f
        except Exception as exc:
            choice = f"choice() raised {type(exc).__name__}: {exc}"
    why = getattr(impl, "why", None)
    if choice is not None and callable(why):   # what decided it (fastest: crossover, autotune, cost model)
        try:
            chosen_by = str(why(p, case.dtype, direction))
        except Exception:
            chosen_by = None
    return {"schema": store.SCHEMA_VERSION, "run_id": runner.run_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": runner.machine, "worker": runner.worker_name,
            "op": case.op,
            "direction": direction, "impl": impl.info.name, "backend": impl.info.backend,
            "device": impl.info.device, "case": case.id, "descriptor": case.descriptor,
            "params": case.as_dict()["params"], "dtype": case.dtype, "count": case.count,
            "flops": flops, "bytes_min": bytes_min, "intensity": flops / bytes_min if bytes_min else None,
            "workspace_bytes": workspace_bytes(impl, p, case.dtype, direction), "threads": runner.threads,
            "choice": choice, "chosen_by": chosen_by,
            **({"role": "baseline"} if id(impl) in getattr(runner, "baseline", ()) else {}),
            **({"includes_forward": True} if direction == "backward" and
               getattr(impl.info, "backward_includes_forward", False) else {})}


def run_bench(impls: list[Any], cases: list[Any], *, out: Path | None = None, budget: float | None = None,
              threads: int | None = None, resume: bool = False, progress: bool | None = None,
              directions: tuple[str, ...] = DIRECTIONS, machine: dict[str, Any] | None = None,
              clock: Callable[[], float] | None = None, timeout_grace: float = ISOLATE_GRACE_S,
              baseline: Any | None = None, interleave_rounds: bool = True, metric: str = "time",
              after_check: bool | None = None, deadline: float | None = None) -> list[dict[str, Any]]:
    """Benchmark every implementation on every case, forward and backward; append the records.

    Parameters
    ----------
    impls : list
        Implementation objects (``.info`` and the protocol).
    cases : list of Case
        The calls.
    out : Path, optional
        JSON-lines file the records are appended to as they are made.
    budget : float, optional
        Seconds for the whole run, shared out over the items; items predicted over their share are
        skipped with the estimate. None: no limit, nothing skipped for time.
    threads : int, optional
        BLAS and torch threads for the run (recorded either way).
    resume : bool
        Skip the items ``out`` already holds with status ok or error, or skipped for a reason other
        than time (:func:`convbench.store.done_keys`); items skipped for the budget are re-decided
        under this run's budget.
    progress : bool, optional
        Draw a progress bar (default: when stderr is a terminal).
    directions : tuple of str
        Directions to time (default forward and backward).
    machine : dict, optional
        The record's ``machine`` (default: this machine's fingerprint and cached peaks).
    clock : callable, optional
        The clock of the budget and of in-process timers (tests inject a mock clock).
    timeout_grace : float
        Seconds an isolated item may run beyond three times its share before it is a timeout.
    baseline : Implementation, optional
        Timed first on every case, its records marked ``role: "baseline"``: ``convbench compare
        FILE`` compares it with every other implementation of the run, round by round.
    interleave_rounds : bool
        Once a case's items are measured, time its ok implementations again in interleaved rounds
        (:func:`convbench.measure.rounds.interleave`): records get ``rounds`` and ``paired``, and
        are written when their case is done.
    metric : str
        ``"time"``, or ``"instructions"``: every ok record also gets ``instructions``, one call
        counted under valgrind (:mod:`convbench.measure.instructions`).
    after_check : bool, optional
        Check each timed call once more on fresh inputs after its timing (default
        :data:`AFTER_CHECK`); a failure makes the record ``failed``, its times kept.
    deadline : float, optional
        Seconds for the whole run, whatever the budget: an isolated item still running then is a
        ``timeout``, an in-process one gets what is left as its budget, the items after it are
        ``skipped``. After :data:`MAX_TIMEOUTS` timeouts (:data:`MAX_CRASHES` crashes) of one
        implementation its other items are ``skipped`` too.

    Returns
    -------
    list of dict
        The records made by this call, in order (not those skipped by ``resume``).
    """
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ParamError(f"directions must be among {DIRECTIONS}, got {bad}")
    if metric not in ("time", "instructions"):
        raise ParamError(f"metric must be 'time' or 'instructions', got {metric!r}")
    if baseline is not None:
        impls = [baseline] + [i for i in impls if i is not baseline]
    started = time.monotonic()
    done = store.done_keys(store.read(out)) if (resume and out is not None) else set()
    with thread_limits(threads) as th:
        if machine is None:
            fp = fingerprint()
            machine = machine_record(fp, peaks(fp))
        # an implementation that listens to the run's records goes after the others on each case:
        # it can then learn from (choose among) the times this run has just measured
        impls = sorted(impls, key=lambda i: callable(getattr(i, "bench_listener", None)))
        todo = [(impl, case, d) for case in cases for impl in impls for d in directions
                if store.record_key({"op": case.op, "impl": impl.info.name, "case": case.id,
                                     "descriptor": case.descriptor, "direction": d, "dtype": case.dtype}) not in done]
        if any(getattr(i.info, "backend", "") == "torch" for i in impls) and todo:
            try:
                warm_up_profiler()
            except Exception:
                pass  # torch_cpu_peak reports its own failure where it matters
        # the budget counts from here, the first item: what came before (fingerprinting, measuring
        # the peaks on a machine's first run, warming the profiler) is the same whatever is timed,
        # and must not leave a short budget nothing to measure
        # under a limited budget each item also holds a share for its case's interleaved rounds,
        # released when they are done: the rounds are paid from the budget, not on top of it
        slots = 2 if interleave_rounds and budget is not None and len(impls) > 1 else 1
        budget_clock = Budget(budget, len(todo) * slots, **({"clock": clock} if clock else {}))
        runner = _Runner(out, budget_clock, machine, th, timeout_grace=timeout_grace, clock=clock,
                         deadline=None if deadline is None else deadline - (time.monotonic() - started),
                         slots=slots)
        runner.baseline = {id(baseline)} if baseline is not None else set()
        runner.after_check = AFTER_CHECK if after_check is None else after_check
        listeners = _listeners(impls, machine)
        try:
            with progress_bar(len(todo), "bench", stream=sys.stderr, show=progress) as advance:
                pending: list[tuple[Any, Any, str, dict[str, Any]]] = []
                for n, (impl, case, d) in enumerate(todo):
                    rec = _run_item(runner, impl, case, d)
                    if metric == "instructions" and rec["status"] == "ok":
                        rec.update(instruction_fields(impl, case, d))
                    _tell(listeners, rec)   # at once: a listener timed next on this case (fastest) reads it
                    pending.append((impl, case, d, rec))
                    advance(f"{impl.info.name} {case.id} {d}")
                    if n + 1 < len(todo) and todo[n + 1][1] is case:
                        continue
                    # the case is done: its implementations interleaved, then its records written
                    late = runner.end is not None and time.monotonic() >= runner.end
                    reserved = len(pending) * (slots - 1)   # the rounds' shares: spent here or set free
                    for dd in directions if interleave_rounds and not late else ():
                        group = [g for g in pending if g[2] == dd]
                        cap = runner.budget.share() * len(group) if runner.budget.limited else None
                        interleave(group, budget_cap=cap, run_id=runner.run_id, seed=n,
                                   worker_for=runner.worker, clock=clock)
                        runner.budget.done(min(len(group) * (slots - 1), reserved))
                        reserved -= min(len(group) * (slots - 1), reserved)
                    runner.budget.done(reserved)
                    for *_, r in pending:
                        if out is not None:
                            store.append(out, r)
                    pending = []
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM) or failing: the items measured on the unfinished case
            # are written as they are, without the rounds they were waiting for
            for *_, r in pending if out is not None else ():
                store.append(out, r)
            raise
        finally:
            runner.close()
    return runner.records


def _run_item(runner: _Runner, impl: Any, case: Any, direction: str) -> dict[str, Any]:
    """The record of one item, never an exception; with what the budget allowed it and what it
    took (probes included): the budget's audit."""
    t_item = runner.budget.clock()
    share = runner.budget.share()
    try:
        rec = runner.item(impl, case, direction, _base(runner, impl, case, direction))
    except Exception as exc:  # a bug in the runner's own handling of an impl
        rec = dict(_base(runner, impl, case, direction), status="error",
                   reason=f"{type(exc).__name__}: {exc}", samples=[])
    rec["budget_s"] = share if math.isfinite(share) else None
    rec["elapsed_s"] = runner.budget.clock() - t_item
    runner.budget.done()
    runner.records.append(rec)
    return rec


def _listeners(impls: list[Any], machine: dict[str, Any]) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """The run's record listeners: what ``bench_listener(machine)`` returns, asked once per class
    of every registered implementation and of the run's own (an implementation may keep what a
    run measures, as ``fastest`` keeps the times it chooses from); (name, listener) pairs."""
    asked: set[Any] = set()
    out = []
    for impl in [*registered(), *impls]:
        hook = getattr(type(impl), "bench_listener", None)
        if not callable(hook) or hook in asked:
            continue
        asked.add(hook)
        name = getattr(getattr(impl, "info", None), "name", type(impl).__name__)
        try:
            listener = impl.bench_listener(machine)
        except Exception as exc:  # a faulty hook costs its own listener, never the run
            warnings.warn(f"convbench: bench_listener of {name} raised {type(exc).__name__}: {exc}; "
                          f"it gets no records of this run", RuntimeWarning, stacklevel=3)
            continue
        if listener is not None:
            out.append((name, listener))
    return out


def _tell(listeners: list[tuple[str, Callable[[dict[str, Any]], None]]], rec: dict[str, Any]) -> None:
    """Give ``rec`` to every listener; one that raises is said once and dropped from the run."""
    for entry in list(listeners):
        name, listener = entry
        try:
            listener(rec)
        except Exception as exc:
            listeners.remove(entry)
            warnings.warn(f"convbench: the record listener of {name} raised {type(exc).__name__}: {exc}; "
                          f"it gets no more records of this run", RuntimeWarning, stacklevel=3)
