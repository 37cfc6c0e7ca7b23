"""The bench runner: implementations x cases x directions -> bench records.

For each item: availability and support (else ``skipped`` with the reason), a time prediction
against the budget (else ``skipped`` with the estimate), then one measurement: inputs made and
prepared untimed, the timer, then one call under the memory tracer (a measurement whose one timed
call took most of its budget is taken again when the run can spare it: that call was the first,
which may pay one-time costs). Records carry % of peak against the peak of the implementation's
device (the CPU's or the GPU's). The values are never checked
here (the verification layer does that on calls of its own). Every record is appended to ``out``
as soon as it is made; an exception becomes an ``error`` record and the run goes on. Implementations
whose ``ImplInfo.isolate`` is set run in a worker process (:mod:`convbench.measure.isolate`), where
a hang is a ``timeout`` and a crash ``crashed``.
"""
from __future__ import annotations

import contextlib
import math
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from convbench import store
from convbench.measure.budget import PROBE_FLOPS, Budget, RateBook, format_seconds, probe_params
from convbench.measure.machine import device_peak
from convbench.measure.memory import FIXED_COST_S, method_for, peak_extra_bytes, workspace_bytes
from convbench.measure.timer import time_call

__all__ = ["run_bench", "measure_one", "format_summary", "thread_limits", "park_blas_threads", "DIRECTIONS"]

DIRECTIONS = ("forward", "backward")
#: seconds one item's timer may use when there is no budget, or a generous one
MAX_ITEM_S = 2.0
#: the timer's minimum sampling time (torch.utils.benchmark's blocked_autorange default)
MIN_TIME_S = 0.2
#: below this share an item is not attempted: even a probe would overrun
MIN_SHARE_S = 1e-3
#: a worker gets this many seconds beyond its item's share before it is a timeout (start-up, imports)
ISOLATE_GRACE_S = 60.0


# --- one measurement (runs in this process or in a worker) --------------------------------------

def _calls(impl: Any, case: Any, direction: str, seed: int = 0) -> Callable[[], Any]:
    """The bound call to time, inputs made and prepared (untimed)."""
    from convbench.ops import get_op

    op = get_op(case.op)
    p = case.params
    arrays = op.make_inputs(p, case.dtype, fill="random", seed=seed)
    names = op.forward_inputs if direction == "forward" else op.backward_inputs
    native = impl.prepare(*[arrays.get(n) for n in names])
    fn = impl.forward if direction == "forward" else impl.backward
    impl.sync()
    return lambda: fn(p, *native)


_OPENBLAS: dict[str, Any] = {}


def park_blas_threads() -> int:
    """Stop OpenBLAS's worker threads (``blas_thread_shutdown_``), in every OpenBLAS loaded.

    After a GEMM, OpenBLAS's workers busy-wait for the next one (up to ~0.1 s). On a machine
    with as many cores as threads, a library measured next (torch's OpenMP pool) then finds a core
    taken: its parallel regions wait for the scheduler's tick, and a 30 us call was timed at 8 ms
    (a calibration probe of torch_cpu right after stride_tricks: 8 of 37 runs slow, none with the
    workers parked). OpenBLAS starts the workers again on its next threaded call; the timer's
    warm-up absorbs that. Returns the number of libraries parked.
    """
    try:
        import ctypes

        from threadpoolctl import threadpool_info

        for info in threadpool_info():   # ~1 ms; libraries loaded since the last call are found
            path = info.get("filepath")
            if info.get("internal_api") == "openblas" and path and path not in _OPENBLAS:
                fn = getattr(ctypes.CDLL(path), "blas_thread_shutdown_", None)
                if fn is not None:
                    fn.restype = ctypes.c_int
                _OPENBLAS[path] = fn
    except Exception:  # no threadpoolctl, an unloadable library: nothing to park
        pass
    parked = 0
    for fn in _OPENBLAS.values():
        if fn is not None:
            fn()
            parked += 1
    return parked


def _events_for(impl: Any) -> Callable[[], Any] | None:
    if getattr(impl.info, "device", "cpu") != "cuda":
        return None
    try:
        import torch

        if torch.cuda.is_available():
            return lambda: torch.cuda.Event(enable_timing=True)
    except ImportError:
        pass
    return None


def measure_one(impl: Any, case: Any, direction: str, *, budget_s: float = MAX_ITEM_S,
                memory: bool = True, mem_slowdown: float = 20.0, min_time_s: float = MIN_TIME_S,
                max_samples: int = 1000,
                clock: Callable[[], float] | None = None, events: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Time (and measure the memory of) one implementation on one case and direction.

    Parameters
    ----------
    impl : Implementation
        The implementation (protocol of :class:`convbench.registry.Implementation`).
    case : Case
        The call.
    direction : str
        ``forward`` or ``backward`` (backward times ``impl.backward`` alone).
    budget_s : float
        Seconds the timer may use.
    memory : bool
        Measure the peak extra bytes of one call (an extra, untimed call after the timer, made
        when the item's time allows one more call).
    mem_slowdown : float
        How much slower than a timed call the traced memory call is assumed to be; the memory
        call is skipped when that would overrun ``budget_s``.
    min_time_s, max_samples
        Passed to the timer (a calibration probe takes one sample after its warm-up).
    clock, events
        Injected clock and device-event factory (tests); default ``time.perf_counter`` and, for
        CUDA implementations, ``torch.cuda.Event``.

    Returns
    -------
    dict
        ``t_median_s, t_min_s, t_iqr_s, samples, number, stop, peak_mem_bytes, mem_method``.
        Exceptions propagate: the caller records them.
    """
    clock = clock or time.perf_counter
    t0 = clock()
    call = _calls(impl, case, direction)
    park_blas_threads()  # every measurement starts with no other library's threads spinning
    out: dict[str, Any] = {"peak_mem_bytes": None, "mem_method": None}
    # timing first: its warm-up absorbs lazy initialisation (oneDNN primitives, FFT plans), which
    # would otherwise make the memory call look like the implementation's cost
    left = max(budget_s - (clock() - t0), 1e-3)
    if memory:
        left *= 0.75  # a quarter kept for the memory call
    t = time_call(call, sync=impl.sync, budget_s=left, min_time_s=min(min_time_s, left / 2), clock=clock,
                  min_samples=min(7, max_samples), max_samples=max_samples,
                  events=events if events is not None else _events_for(impl))
    out.update(t_median_s=t.median, t_min_s=t.min, t_iqr_s=t.iqr, samples=t.samples, number=t.number,
               stop=t.stop)
    if memory:
        # a traced call is slower than a timed one: tracemalloc intercepts every allocation, ~3x
        # for NumPy code, ~20x for pure-Python loops that allocate a float object per product
        traced = mem_slowdown * t.median
        cost = traced + FIXED_COST_S[method_for(impl.info.backend, getattr(impl.info, "device", "cpu"))]
        # a cheap traced call is always made: a peak left blank costs the report more than the
        # tracer's fixed start-up (at most ~0.1 s) costs the budget
        if budget_s - (clock() - t0) >= cost or traced < 0.02:
            spent: list[float] = []

            def traced() -> Any:
                t1 = clock()
                r = call()
                spent.append(clock() - t1)
                return r

            out["peak_mem_bytes"], out["mem_method"] = peak_extra_bytes(
                traced, backend=impl.info.backend, device=impl.info.device, sync=impl.sync)
            out["mem_s"] = sum(spent)  # the traced call alone, not the tracer's start and stop
        else:
            out["mem_method"] = (f"not measured: a traced call (~{format_seconds(cost)}) would overrun "
                                 f"the case budget")
    return out


def _measure_in_worker(impl: Any, case: Any, direction: str, kwargs: dict[str, Any], name: str) -> dict[str, Any]:
    """:func:`measure_one` as the isolate worker calls it (the worker passes its loaded impl).

    A file may register several implementations under one spec: the one named ``name`` is
    looked up among what loading the spec registered.
    """
    if impl is None or impl.info.name != name:
        from convbench.registry import get_impl

        impl = get_impl(name, case.op)
    return measure_one(impl, case, direction, **kwargs)


# --- threads -------------------------------------------------------------------------------------

@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[dict[str, Any]]:
    """Set the BLAS/OpenMP pools (threadpoolctl) and torch's intra-op threads; restore after.

    Yields what is in force: ``{"requested", "blas", "torch"}``.
    """
    info: dict[str, Any] = {"requested": threads, "blas": None, "torch": None}
    torch = None
    try:
        import torch as _torch

        torch = _torch
    except ImportError:
        pass
    old_torch = torch.get_num_threads() if torch is not None else None
    ctx: Any = contextlib.nullcontext()
    if threads is not None:
        from threadpoolctl import threadpool_limits

        ctx = threadpool_limits(limits=threads)
        if torch is not None:
            torch.set_num_threads(threads)
    try:
        with ctx:
            try:
                from threadpoolctl import threadpool_info

                info["blas"] = max((i.get("num_threads") or 0 for i in threadpool_info()
                                    if i.get("user_api") == "blas"), default=None)
            except ImportError:
                pass
            info["torch"] = torch.get_num_threads() if torch is not None else None
            yield info
    finally:
        if torch is not None and threads is not None:
            torch.set_num_threads(old_torch)


# --- the run -------------------------------------------------------------------------------------

class _Runner:
    def __init__(self, out: Path | None, budget: Budget, machine: dict[str, Any], threads: dict[str, Any],
                 timeout_grace: float = ISOLATE_GRACE_S, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock
        self.out, self.budget, self.machine, self.threads = out, budget, machine, threads
        self.rates = RateBook()
        self.run_id = uuid.uuid4().hex[:12]
        self.workers: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.grace = timeout_grace
        self.mem_slowdown: dict[str, float] = {}

    # one measurement, in-process or isolated; returns (status, result-or-message)
    def _measure(self, impl: Any, case: Any, direction: str, **kw: Any) -> tuple[str, Any]:
        if not getattr(impl.info, "isolate", False):
            try:
                return "ok", measure_one(impl, case, direction, clock=self.clock, **kw)
            except Exception as exc:
                return "error", f"{type(exc).__name__}: {exc}"
        from convbench.measure.isolate import Worker

        wk = self.workers.get(impl.info.spec)
        if wk is None:
            wk = self.workers[impl.info.spec] = Worker(impl.info.spec, impl.info.op)
        timeout = kw.get("budget_s", MAX_ITEM_S) * 3 + self.grace
        res = wk.call("convbench.measure.bench:_measure_in_worker", case, direction, kw, impl.info.name,
                      timeout=timeout)
        return (res.status, res.value) if res.ok else (res.status, res.message.strip().splitlines()[0] if res.message else res.status)

    def _measure_settled(self, impl: Any, case: Any, direction: str, **kw: Any) -> tuple[str, Any, float | None]:
        """:meth:`_measure`, and once more when its one timed call may have been a first call's
        one-time cost: (status, result, the first call's seconds when measured again, else None).

        A call that takes most of its budget is timed once (the timer's ``single``), and that
        call is the item's first: CUDA loads cuDNN's kernels lazily (on an H200, 150-425 ms for
        a conv2d backward that then takes 0.13 ms), oneDNN builds its kernels per shape. When
        the run can spare another such call (:meth:`_spare`), it is measured again and the
        faster kept; an implementation that is simply slow costs the same twice and keeps its
        first time."""
        status, res = self._measure(impl, case, direction, **kw)
        if status != "ok" or res.get("stop") != "single" or not self._spare(res["t_median_s"]):
            return status, res, None
        again_status, again = self._measure(impl, case, direction, **dict(kw, memory=False))
        if again_status != "ok" or again["t_median_s"] >= res["t_median_s"]:
            return status, res, None
        again.update(peak_mem_bytes=res["peak_mem_bytes"], mem_method=res["mem_method"], mem_s=res.get("mem_s"))
        return status, again, res["t_median_s"]

    def _spare(self, seconds: float) -> bool:
        """Whether the run can afford a repeated call of ``seconds``: a quarter of an unlimited
        item's time at most, and within a limited budget no more than an item's share of what is
        left (so the repeat is paid by the later items' shares, as the budget spreads any time
        spent, and a run never ends later for it)."""
        if seconds > MAX_ITEM_S / 4:
            return False
        return not self.budget.limited or seconds <= self.budget.share()

    def _key(self, impl: Any, case: Any, direction: str) -> tuple[str, ...]:
        return (impl.info.name, direction, case.dtype)

    def _predict(self, impl: Any, case: Any, direction: str, flops: int, share: float) -> float | None:
        """Seconds of one call, probing (calibration) while the estimate is unknown or too coarse."""
        key = self._key(impl, case, direction)
        target = PROBE_FLOPS
        while True:
            est = self.rates.estimate(key, flops)
            if est is not None and est <= share:
                return est
            # an estimate from a probe far smaller than the case overestimates fast
            # implementations (overhead-bound): probe 16x larger while that probe fits a quarter
            # of the share by its predicted time, and while the rate still grows with size. The
            # prediction subtracts the fixed cost of a call that the first probes showed: scaled
            # by FLOPs with the rest, ~3 ms a call (torch_cpu's conv2d probes in `convbench run`
            # on a 16-core VM) made a 16x probe look 16x dearer, and torch_cpu was skipped on
            # every conv2d case
            if est is not None:
                largest = self.rates.largest(key)
                if self.rates.flat(key):
                    return est
                target = max(target, largest * 16)
                if target >= flops or (self.rates.probe_time(key, target) or 0.0) > share / 4:
                    return est
            first = not self.rates.known(key)
            pp = probe_params(case.params, target, direction)
            pf = pp.flops(direction)
            if est is not None and pf <= largest:
                return est  # cannot shrink to anything new
            if first:
                # a 1/16-size probe first: with the probe it shows how much of a call's time is
                # fixed cost (RateBook.overhead), and it takes a library's first-call costs
                small = probe_params(case.params, target / 16, direction)
                if small.flops(direction) * 4 <= pf and self._probe(impl, case, small, direction, share) is None:
                    return None
            t = self._probe(impl, case, pp, direction, share, twice=first)
            if t is None:
                return None  # the real measurement will meet the same problem and record it

    def _probe(self, impl: Any, case: Any, pp: Any, direction: str, share: float, twice: bool = False) -> float | None:
        """Time one calibration probe (``case`` shrunk to ``pp``) and add it to the rates; None
        when it failed. The faster of two samples, and with ``twice`` (an implementation's first
        probe) of two probes: a library's first calls can still pay one-time costs after the
        warm-up (oneDNN builds its kernels lazily: 30x on torch's first small conv in a fresh
        process)."""
        probe_case = type(case)(id=f"{case.id}.probe", params=pp, dtype=case.dtype)
        best = math.inf
        for _ in range(2 if twice else 1):
            status, res, _ = self._measure_settled(impl, probe_case, direction, budget_s=min(share / 4, MAX_ITEM_S)
                                                   if math.isfinite(share) else 0.05, memory=False, min_time_s=0.0,
                                                   max_samples=2)
            if status != "ok":
                if math.isfinite(best):
                    break
                return None
            best = min(best, res["t_min_s"])
        pf = pp.flops(direction)
        self.rates.update(self._key(impl, case, direction), pf, best, probe=True)
        return best

    def item(self, impl: Any, case: Any, direction: str, base: dict[str, Any]) -> dict[str, Any]:
        from convbench.registry import availability

        rec = dict(base, status="ok", reason="", t_median_s=None, t_min_s=None, t_iqr_s=None, samples=[],
                   gflops=None, pct_peak=None, peak_mem_bytes=None)
        why = availability(impl)
        if why is None and hasattr(impl, "unsupported"):
            try:
                why = impl.unsupported(case.params, case.dtype, direction)
            except Exception as exc:
                rec.update(status="error", reason=f"unsupported() raised {type(exc).__name__}: {exc}")
                return rec
        if why:
            rec.update(status="skipped", reason=why)
            return rec
        share = self.budget.share()
        if self.budget.limited:
            if share < MIN_SHARE_S:
                rec.update(status="skipped", budget_skip=True,
                           reason=f"budget spent ({format_seconds(share)} left for this case)")
                return rec
            est = self._predict(impl, case, direction, rec["flops"], self.budget.share())
            share = self.budget.share()  # what the probes left
            rec["t_est_s"] = est
            if est is not None and est > share:
                rec.update(status="skipped", budget_skip=True,
                           reason=f"est. {format_seconds(est)} > budget {format_seconds(share)}")
                return rec
            # one call that takes most of the share leaves no time for the separate memory call
            memory = est is None or est * 2 <= share
        else:
            memory = True
        # until measured: the profiler adds little per torch call; tracemalloc up to ~20x on
        # pure-Python loops that allocate an object per product
        slow = self.mem_slowdown.get(impl.info.name, 2.0 if impl.info.backend == "torch" else 20.0)
        status, res, first_call = self._measure_settled(impl, case, direction, budget_s=min(share, MAX_ITEM_S),
                                                        memory=memory, mem_slowdown=slow)
        if status != "ok":
            rec.update(status=status, reason=str(res))
            return rec
        if first_call is not None:
            rec["first_call_s"] = first_call
        rec.update(t_median_s=res["t_median_s"], t_min_s=res["t_min_s"], t_iqr_s=res["t_iqr_s"],
                   samples=res["samples"], number=res["number"], stop=res["stop"],
                   peak_mem_bytes=res["peak_mem_bytes"], mem_method=res["mem_method"])
        if not memory:
            rec["mem_method"] = "not measured: one call takes most of the case budget"
        if res.get("mem_s") and res["t_median_s"] > 1e-3:
            # what tracing really costs this implementation, for the next items' decision
            self.mem_slowdown[impl.info.name] = max(1.0, res["mem_s"] / res["t_median_s"])
        self.rates.update(self._key(impl, case, direction), rec["flops"], res["t_median_s"])
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
    import numpy as np

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
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": runner.machine, "op": case.op,
            "direction": direction, "impl": impl.info.name, "backend": impl.info.backend,
            "device": impl.info.device, "case": case.id, "descriptor": case.descriptor,
            "params": case.as_dict()["params"], "dtype": case.dtype, "count": case.count,
            "flops": flops, "bytes_min": bytes_min, "intensity": flops / bytes_min if bytes_min else None,
            "workspace_bytes": workspace_bytes(impl, p, case.dtype, direction), "threads": runner.threads,
            "choice": choice, "chosen_by": chosen_by,
            **({"includes_forward": True} if direction == "backward" and
               getattr(impl.info, "backward_includes_forward", False) else {})}


def run_bench(impls: list[Any], cases: list[Any], *, out: Path | None = None, budget: float | None = None,
              threads: int | None = None, resume: bool = False, progress: bool | None = None,
              directions: tuple[str, ...] = DIRECTIONS, machine: dict[str, Any] | None = None,
              clock: Callable[[], float] | None = None,
              timeout_grace: float = ISOLATE_GRACE_S) -> list[dict[str, Any]]:
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

    Returns
    -------
    list of dict
        The records made by this call, in order (not those skipped by ``resume``).
    """
    from convbench._progress import progress as progress_bar
    from convbench.measure.machine import fingerprint, machine_record, peaks

    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        from convbench._errors import ParamError

        raise ParamError(f"directions must be among {DIRECTIONS}, got {bad}")
    # the budget counts from here: fingerprinting, measuring peaks and warming the profiler too
    budget_clock = Budget(budget, 0, **({"clock": clock} if clock else {}))
    done = store.done_keys(store.read(out)) if (resume and out is not None) else set()
    with thread_limits(threads) as th:
        if machine is None:
            fp = fingerprint()
            machine = machine_record(fp, peaks(fp))
        # an implementation that chooses among the others (algorithm "any", like fastest) goes
        # after them on each case: it can then choose from the times this run has just measured
        impls = sorted(impls, key=lambda i: getattr(getattr(i, "info", None), "algorithm", None) == "any")
        items = [(impl, case, d) for case in cases for impl in impls for d in directions]
        todo = []
        for impl, case, d in items:
            key = store.record_key({"op": case.op, "impl": impl.info.name, "case": case.id,
                                    "descriptor": case.descriptor, "direction": d, "dtype": case.dtype})
            if key not in done:
                todo.append((impl, case, d))
        if any(getattr(i.info, "backend", "") == "torch" for i in impls) and todo:
            from convbench.measure.memory import warm_up_profiler

            try:
                warm_up_profiler()
            except Exception:
                pass  # torch_cpu_peak reports its own failure where it matters
        budget_clock.items_left = len(todo)
        runner = _Runner(out, budget_clock, machine, th,
                         timeout_grace=timeout_grace, clock=clock)
        crossover = store.crossover_path(str(machine.get("id"))) if machine.get("id") else None
        if crossover is not None:
            try:
                store.compact_crossover(crossover)
            except OSError:
                pass  # unreadable or unwritable: the first append says so
        stream = None
        if progress is False:
            import io

            stream = io.StringIO()
        elif progress is True:
            import sys

            stream = _TTY(sys.stderr)
        try:
            with progress_bar(len(todo), "bench", stream=stream) as advance:
                for impl, case, d in todo:
                    t_item = runner.budget.clock()
                    share = runner.budget.share()
                    try:
                        rec = runner.item(impl, case, d, _base(runner, impl, case, d))
                    except Exception as exc:  # a bug in the runner's own handling of an impl
                        rec = dict(_base(runner, impl, case, d), status="error",
                                   reason=f"{type(exc).__name__}: {exc}", samples=[])
                    # what the item was allowed and what it took (probes included): the budget's audit
                    rec["budget_s"] = share if math.isfinite(share) else None
                    rec["elapsed_s"] = runner.budget.clock() - t_item
                    runner.budget.done()
                    runner.records.append(rec)
                    if out is not None:
                        store.append(out, rec)
                    if crossover is not None and rec.get("status") == "ok":
                        crossover = _add_to_crossover(crossover, rec)
                    advance(f"{impl.info.name} {case.id} {d}")
        finally:
            runner.close()
    return runner.records


def _add_to_crossover(path: Path, rec: dict[str, Any]) -> Path | None:
    """Keep ``rec``'s time in this machine's crossover file (what ``fastest`` chooses from); a file
    that cannot be written is said once and then left alone, never failing the run."""
    try:
        store.append(path, store.crossover_line(rec), fsync=False)
        return path
    except OSError as exc:
        import warnings

        warnings.warn(f"convbench: cannot add to the crossover file {path} ({exc}); set CONVBENCH_CROSSOVER "
                      f"to another file, or to 'off'", RuntimeWarning, stacklevel=3)
        return None


class _TTY:
    """A stream that claims to be a terminal, to force the progress bar."""

    def __init__(self, s: Any) -> None:
        self._s = s

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


def _fmt_t(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def format_summary(records: list[dict[str, Any]]) -> str:
    """A short terminal table: one line per record (time, GFLOP/s, % of peak, memory, status)."""
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
                     str(r.get("dtype", ""))[-2:], _fmt_t(med),
                     f"{100 * iqr / med:.1f}" if med and iqr is not None else "-",
                     f"{r['gflops']:.2f}" if r.get("gflops") is not None else "-",
                     f"{r['pct_peak']:.0f}" if r.get("pct_peak") is not None else "-",
                     f"{mem / 2**20:.1f} MiB" if mem is not None else "-", status))
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip()
             for line in (header, tuple("-" * w for w in widths), *rows)]
    n_ok = sum(r.get("status") == "ok" for r in records)
    lines.append(f"{len(records)} records: {n_ok} ok, {len(records) - n_ok} not ok")
    if any(r.get("includes_forward") for r in records):
        lines.append("bwd*: the backward runs the forward first (for its cache or autograd graph); "
                     "its time includes it")
    return "\n".join(lines)
