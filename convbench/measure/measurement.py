"""One measurement: one implementation, one case, one direction -> times, memory, a check.

The prepared call (:mod:`convbench.measure.calls`, inputs made and converted untimed), the timer
(:mod:`convbench.measure.timer`), then one call under the memory tracer when the item's budget
allows it (:mod:`convbench.measure.memory`), then, unless told otherwise, the call once more on
fresh inputs checked against the oracle (:mod:`convbench.measure.aftercheck`). It runs in the
bench runner's process (:mod:`convbench.measure.bench`) or, for an isolated implementation, in its
worker (:func:`_measure_in_worker`, called through :mod:`convbench.measure.isolate`); the asv suite
times through it too.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from convbench.measure.aftercheck import check_after_timing
from convbench.measure.budget import MAX_ITEM_S, format_seconds
from convbench.measure.calls import prepared_call
from convbench.measure.heap import heap_policy
from convbench.measure.hostload import load_mark, load_since
from convbench.measure.memory import FIXED_COST_S, allocation_sizes, method_for, peak_extra_bytes
from convbench.measure.threads import park_blas_threads
from convbench.measure.timer import time_call
from convbench.registry import get_impl

__all__ = ["measure_one", "MIN_TIME_S"]

#: the timer's minimum sampling time (torch.utils.benchmark's blocked_autorange default)
MIN_TIME_S = 0.2


def _events_for(impl: Any) -> Callable[[], Any] | None:
    if getattr(impl.info, "device", "cpu") != "cuda":
        return None
    try:
        import torch  # deferred: seconds to import, and only a CUDA implementation's timing needs it

        if torch.cuda.is_available():
            return lambda: torch.cuda.Event(enable_timing=True)
    except ImportError:
        pass
    return None


def measure_one(impl: Any, case: Any, direction: str, *, budget_s: float = MAX_ITEM_S,
                memory: bool = True, mem_slowdown: float = 20.0, min_time_s: float = MIN_TIME_S,
                max_samples: int = 1000, after_check: bool = True,
                clock: Callable[[], float] | None = None, events: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Time (and measure the memory of) one implementation on one case and direction.

    Parameters
    ----------
    impl : Implementation
        The implementation (protocol of :class:`convbench.protocol.Implementation`).
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
    after_check : bool
        After the timing, make the call once more on fresh inputs and check it against the oracle
        (:mod:`convbench.measure.aftercheck`).
    clock, events
        Injected clock and device-event factory (tests); default ``time.perf_counter`` and, for
        CUDA implementations, ``torch.cuda.Event``.

    Returns
    -------
    dict
        ``t_median_s, t_min_s, t_iqr_s, samples, number, stop, peak_mem_bytes, mem_method``,
        ``steal_pct`` (the hypervisor's steal during the timing), ``others_pct`` (the CPU time
        other processes and the hypervisor took meanwhile), ``heap`` (the C heap's policy and
        thresholds, where the implementation declares one: :mod:`convbench.measure.heap`) and
        ``after_check`` (why the check after timing failed, or None). Exceptions propagate.
    """
    clock = clock or time.perf_counter
    t0 = clock()
    call = prepared_call(impl, case, direction)
    park_blas_threads()  # every measurement starts with no other library's threads spinning
    out: dict[str, Any] = {"peak_mem_bytes": None, "mem_method": None}
    with heap_policy(getattr(impl, "heap", None), lambda: allocation_sizes(impl, call)) as heap:
        if heap["policy"] is not None:
            out["heap"] = heap
        _timed(impl, call, out, budget_s, t0, memory, mem_slowdown, min_time_s, max_samples, clock, events)
    out["after_check"] = check_after_timing(impl, case, direction) if after_check else None
    return out


def _timed(impl: Any, call: Callable[[], Any], out: dict[str, Any], budget_s: float, t0: float, memory: bool,
           mem_slowdown: float, min_time_s: float, max_samples: int, clock: Callable[[], float],
           events: Callable[[], Any] | None) -> None:
    """The timer, then the memory call, into ``out``."""
    # timing first: its warm-up absorbs lazy initialisation (oneDNN primitives, FFT plans), which
    # would otherwise make the memory call look like the implementation's cost
    left = max(budget_s - (clock() - t0), 1e-3)
    if memory:
        left *= 0.75  # a quarter kept for the memory call
    host = load_mark()
    t = time_call(call, sync=impl.sync, budget_s=left, min_time_s=min(min_time_s, left / 2), clock=clock,
                  min_samples=min(7, max_samples), max_samples=max_samples,
                  events=events if events is not None else _events_for(impl))
    out.update(load_since(host))
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


def _measure_in_worker(impl: Any, case: Any, direction: str, kwargs: dict[str, Any], name: str) -> dict[str, Any]:
    """:func:`measure_one` as the isolate worker calls it (the worker passes its loaded impl).

    A file may register several implementations under one spec: the one named ``name`` is
    looked up among what loading the spec registered.
    """
    if impl is None or impl.info.name != name:
        impl = get_impl(name, case.op)
    return measure_one(impl, case, direction, **kwargs)
