"""Timing one call: warm-up, blocks of calls, repetitions until the spread is small.

The method is that of ``torch.utils.benchmark.Timer.blocked_autorange``: calls are grouped in
blocks long enough that the clock's resolution and the loop's own overhead are negligible, each
block gives one sample (its time divided by its number of calls), and blocks are repeated until
enough samples are in. Here the repetitions also stop early once the relative interquartile range
is small, and never run past the time budget.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from convbench._errors import ParamError

__all__ = ["Timing", "time_call", "summarise"]


@dataclass
class Timing:
    """The result of :func:`time_call`: raw per-call samples and their statistics (seconds)."""

    samples: list[float]
    number: int  # calls per block (each sample is a block's time / number)
    median: float
    min: float
    iqr: float
    warmup_s: float
    total_s: float
    stop: str  # why repetitions stopped: converged, budget, max_samples, single

    @property
    def rel_iqr(self) -> float:
        return self.iqr / self.median if self.median > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(samples: list[float]) -> tuple[float, float, float]:
    """(median, min, IQR) of ``samples``.

    The median is the headline figure: a run's slow outliers (another process, a page fault) only
    say how slow the system can go, and the median ignores them without the optimism of the min.
    """
    if not samples:
        raise ParamError("samples must not be empty")
    a = np.asarray(samples, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return float(med), float(a.min()), float(q3 - q1)


def _block(fn: Callable[[], Any], number: int, sync: Callable[[], None] | None,
           clock: Callable[[], float], events: Callable[[], Any] | None) -> float:
    """Seconds of ``number`` back-to-back calls, the device drained before and after."""
    if events is not None:
        # device events time the GPU's own stream: the host clock would add launch latency
        start, end = events(), events()
        if sync is not None:
            sync()
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # ms -> s
    if sync is not None:
        sync()  # queued work of earlier calls must not be billed to this block
    t0 = clock()
    for _ in range(number):
        fn()
    if sync is not None:
        sync()  # an asynchronous device returns before the work is done
    return clock() - t0


def time_call(fn: Callable[[], Any], *, sync: Callable[[], None] | None = None, budget_s: float = 1.0,
              min_time_s: float = 0.2, min_block_s: float = 2e-4, rel_iqr: float = 0.02,
              min_samples: int = 7, max_samples: int = 1000, warmup: int = 1, warmup_s: float = 0.1,
              clock: Callable[[], float] = time.perf_counter, events: Callable[[], Any] | None = None) -> Timing:
    """Time ``fn()``: per-call seconds, median, min and IQR.

    Parameters
    ----------
    fn : callable
        The call to time, arguments bound; its result is discarded (it is never checked here).
    sync : callable, optional
        The implementation's device barrier (``impl.sync``), called before and after each block.
    budget_s : float
        Seconds the whole measurement may take, warm-up included. A call slower than the budget
        is still measured once (the warm-up's time is then the only sample).
    min_time_s : float
        Keep sampling at least this long (within the budget) even when the spread is small, so
        that slow drifts (frequency scaling, a background task) show in the samples.
    min_block_s : float
        Calls are grouped so that one block lasts at least this long: a ``perf_counter`` reading
        costs ~50 ns, negligible against 0.2 ms (torch's ``blocked_autorange`` floor,
        ``min_run_time / 1000``). Blocks no longer than that keep most samples inside one
        scheduler time slice, so on a shared machine the median picks the blocks no other process
        preempted; ever longer blocks would average the preemptions in.
    rel_iqr : float
        Stop once IQR / median is below this (after ``min_samples`` and ``min_time_s``).
    min_samples, max_samples : int
        Bounds on the number of blocks.
    warmup : int
        Untimed-for-statistics calls first: caches, allocator pools, lazy initialisation and
        BLAS thread start-up belong to the first call only.
    warmup_s : float
        Keep warming up (calling, untimed) this long, at most a quarter of the budget. The
        previous measurement's library may still have threads spinning for the cores: OpenBLAS's
        and OpenMP's workers busy-wait up to ~0.1 s after their last parallel region, and on a
        2-core machine torch's first calls after a NumPy GEMM were seen 5-50x slow in 4 ms
        scheduler quanta until they gave up the cores.
    clock : callable
        Seconds as a float (``time.perf_counter``); tests inject a mock clock.
    events : callable, optional
        Factory of device timing events (``torch.cuda.Event(enable_timing=True)``-like: ``record``,
        ``synchronize``, ``elapsed_time(other)`` in ms); when given they time each block.

    Returns
    -------
    Timing
    """
    for name, v in (("budget_s", budget_s), ("min_block_s", min_block_s)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise ParamError(f"{name} must be a positive number of seconds, got {v!r}")
    if not (isinstance(min_samples, int) and isinstance(max_samples, int) and 1 <= min_samples <= max_samples):
        raise ParamError(f"need 1 <= min_samples <= max_samples, got min_samples={min_samples!r}, "
                         f"max_samples={max_samples!r}")
    if not (isinstance(warmup, int) and warmup >= 1):
        raise ParamError(f"warmup must be an int >= 1 (the first call sizes the blocks), got {warmup!r}")
    t_start = clock()
    first = 0.0
    for _ in range(warmup):
        first = _block(fn, 1, sync, clock, events)
    # a first call that looks slow may only be paying for lazy initialisation (torch's oneDNN
    # primitives, a JIT): when there is room, a second call decides
    if first >= (budget_s - (clock() - t_start)) / 2 and budget_s - (clock() - t_start) >= 1.2 * first:
        first = _block(fn, 1, sync, clock, events)
    settle, calls = min(warmup_s, budget_s / 4), 0
    while clock() - t_start + first <= settle and calls < 10_000:
        first, calls = _block(fn, 1, sync, clock, events), calls + 1
    warmup_s = clock() - t_start
    remaining = budget_s - warmup_s
    # a call that alone takes most of the budget: its one timing is all there will be
    if first >= remaining / 2 or first >= budget_s / 3:
        return Timing([first], 1, first, first, 0.0, warmup_s, clock() - t_start, "single")
    number = 1
    if first < min_block_s:
        # size the block from a calibration block rather than the first call, which can be far
        # slower than steady state (lazy initialisation)
        number = max(1, int(min_block_s / max(first, 1e-9)))
        while True:
            t = _block(fn, number, sync, clock, events)
            if t >= min_block_s or clock() - t_start > budget_s / 4:
                break
            number = max(number * 2, int(number * min_block_s / max(t, 1e-12) * 1.2))
    samples: list[float] = []
    stop = "max_samples"
    while len(samples) < max_samples:
        samples.append(_block(fn, number, sync, clock, events) / number)
        elapsed = clock() - t_start
        if len(samples) >= min_samples and elapsed >= min_time_s:
            med, _, iqr = summarise(samples)
            if iqr <= rel_iqr * med:
                stop = "converged"
                break
        per_block = (elapsed - warmup_s) / len(samples)
        if elapsed + per_block > budget_s:
            stop = "budget"
            break
    med, mn, iqr = summarise(samples)
    return Timing(samples, number, med, mn, iqr, warmup_s, clock() - t_start, stop)
