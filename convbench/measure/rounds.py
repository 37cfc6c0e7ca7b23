"""Interleaved rounds: implementations on one case timed in alternation, so their ratios are paired.

On a shared or virtual machine the speed moves by tens of % within seconds. Two implementations
timed one after the other see different machines; timed in rounds (each round one block of every
implementation, in a random order, as google/benchmark's random interleaving and asv's
``--interleave-rounds`` do) they see the same machine within each round, and the ratio of their
times in one round cancels what the machine did. ``convbench compare`` tests those per-round
ratios (:mod:`reports._stats`).

A participant is anything with ``block(number) -> seconds per call``: an in-process prepared call
(:class:`LocalBlock`; :class:`HeldBlock` with the implementation's heap policy), or a worker
process holding its own prepared call (:class:`WorkerBlock`). :func:`interleave` is the bench
runner's phase: one case and direction, every implementation measured ok on it.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Protocol, Sequence

from convbench.measure.calls import prepared_call
from convbench.measure.heap import set_thresholds, thresholds_for
from convbench.measure.memory import allocation_sizes
from convbench.measure.threads import park_blas_threads
from convbench.registry import get_impl

__all__ = ["Participant", "LocalBlock", "HeldBlock", "WorkerBlock", "run_rounds", "plan_rounds", "interleave",
           "worker_block", "MAX_ROUNDS", "MIN_ROUNDS", "MIN_BLOCK_S", "MAX_PHASE_S"]

#: rounds of one interleaved phase at most, and the fewest worth recording (fewer: unpaired)
MAX_ROUNDS = 60
MIN_ROUNDS = 5
#: a block lasts at least this long (as the timer's), so the clock's reading is negligible
MIN_BLOCK_S = 2e-4
#: seconds of the phase per implementation at most (as one item's timer)
MAX_PHASE_S = 2.0


class Participant(Protocol):
    def block(self, number: int) -> float:
        """Run ``number`` calls; seconds per call."""


class LocalBlock:
    """An in-process participant: ``number`` calls of a prepared call between two syncs.

    ``settle`` runs after each block, untimed: the runner stops OpenBLAS's workers there, which
    otherwise busy-wait for ~0.1 s after a GEMM and take the cores from the next participant
    (two isolated participants' blocks were timed 2x slower so)."""

    def __init__(self, call: Callable[[], Any], sync: Callable[[], None],
                 clock: Callable[[], float] = time.perf_counter, settle: Callable[[], Any] | None = None) -> None:
        self.call, self.sync, self.clock, self.settle = call, sync, clock, settle

    def block(self, number: int) -> float:
        self.sync()
        t0 = self.clock()
        for _ in range(number):
            self.call()
        self.sync()
        t = (self.clock() - t0) / number
        if self.settle is not None:
            self.settle()
        return t


def plan_rounds(per_call_s: Sequence[float], budget_s: float) -> tuple[list[int], int]:
    """(calls per block of each participant, rounds) for a phase of about ``budget_s`` seconds.

    Each block lasts at least :data:`MIN_BLOCK_S`; rounds are as many as the budget pays, at most
    :data:`MAX_ROUNDS`; 0 rounds when fewer than :data:`MIN_ROUNDS` fit.
    """
    numbers = [max(1, int(-(-MIN_BLOCK_S // max(t, 1e-9)))) for t in per_call_s]
    round_s = sum(n * t for n, t in zip(numbers, per_call_s))
    rounds = min(MAX_ROUNDS, int(budget_s / round_s)) if round_s > 0 else MAX_ROUNDS
    return numbers, (rounds if rounds >= MIN_ROUNDS else 0)


def run_rounds(participants: Sequence[Participant], numbers: Sequence[int], rounds: int,
               seed: int = 0, *, budget_s: float | None = None,
               clock: Callable[[], float] = time.perf_counter) -> list[list[float]]:
    """Per-call seconds of each participant in each round (``out[i][r]``), blocks in a random
    order within each round; one untimed warm-up block each first.

    With ``budget_s`` the phase keeps to that many seconds of ``clock``, all it costs included (a
    block's settling, a worker's message, a heap policy's switch: per block, often more than the
    calls themselves on small cases): the warm-up round's cost sizes the rounds, the phase stops
    once the next round would pass the budget, and where fewer than :data:`MIN_ROUNDS` fit the
    result is empty lists (nothing paired).
    """
    rng = random.Random(seed)
    out: list[list[float]] = [[] for _ in participants]
    if budget_s is not None and budget_s <= 0:
        return out
    t0 = clock()
    for p, n in zip(participants, numbers):
        p.block(n)
    if budget_s is not None:
        per_round = clock() - t0   # what one round of blocks costs here, overheads and all
        rounds = min(rounds, int((budget_s - per_round) / per_round)) if per_round > 0 else rounds
        if rounds < MIN_ROUNDS:
            return out
    order = list(range(len(participants)))
    for r in range(rounds):
        if budget_s is not None and r >= MIN_ROUNDS and (clock() - t0) * (r + 2) / (r + 1) > budget_s:
            break   # the rounds so far say the next one would pass the budget
        rng.shuffle(order)
        for i in order:
            out[i].append(participants[i].block(numbers[i]))
    return out


_PREPARED: dict[tuple[str, str, str, str], tuple[Any, LocalBlock]] = {}


def worker_block(impl: Any, case: Any, direction: str, name: str, number: int) -> float:
    """One block in an isolate worker, the prepared call kept between rounds."""
    if impl is None or impl.info.name != name:  # a file may register several: the one named
        impl = get_impl(name, case.op)
    key = (name, case.op, case.id, direction)
    if key not in _PREPARED:
        _PREPARED.clear()  # one case at a time: the previous case's inputs go
        _PREPARED[key] = (impl, LocalBlock(prepared_call(impl, case, direction), impl.sync,
                                           settle=park_blas_threads))
    return _PREPARED[key][1].block(number)


class HeldBlock(LocalBlock):
    """A participant whose blocks run with its heap policy's thresholds (set, then one untimed call
    so that the switch's trim is not timed)."""

    def __init__(self, call: Callable[[], Any], sync: Callable[[], None], held: tuple[int, int],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(call, sync, clock, settle=park_blas_threads)
        self.held = held

    def block(self, number: int) -> float:
        set_thresholds(*self.held)
        self.call()
        return super().block(number)


class WorkerBlock:
    """A participant in an isolate worker: one message per block, the block timed in the worker."""

    def __init__(self, worker: Any, impl: Any, case: Any, direction: str) -> None:
        self.worker, self.impl, self.case, self.direction = worker, impl, case, direction

    def block(self, number: int) -> float:
        res = self.worker.call("convbench.measure.rounds:worker_block", self.case, self.direction,
                               self.impl.info.name, number, timeout=MAX_PHASE_S * 10)
        if not res.ok:
            raise RuntimeError(f"{self.impl.info.name} in its worker: {res.status} {res.message.strip()[:200]}")
        return float(res.value)


def _participant(impl: Any, case: Any, direction: str, worker_for: Callable[[Any], Any],
                 clock: Callable[[], float], held: bool = False) -> Participant:
    """``held``: another participant holds a heap policy, so one without a policy holds ``"kept"``,
    the state it was timed in (after a policy the process is left in it); else it would run in
    whatever the previous block left: torch_cpu's ``"fresh"`` thresholds had a NumPy
    implementation's buffers given back and faulted in again on every call (its rounds 1.3-5x its
    own timing)."""
    if getattr(impl.info, "isolate", False):
        return WorkerBlock(worker_for(impl), impl, case, direction)
    call = prepared_call(impl, case, direction)
    policy = getattr(impl, "heap", None)
    if policy is None and not held:
        return LocalBlock(call, impl.sync, clock, settle=park_blas_threads)
    sizes = allocation_sizes(impl, call) if policy == "fresh" else ()
    return HeldBlock(call, impl.sync, thresholds_for(policy or "kept", sizes), clock)


def interleave(group: Sequence[tuple[Any, Any, str, dict[str, Any]]], *, budget_cap: float | None, run_id: str,
               seed: int, worker_for: Callable[[Any], Any], clock: Callable[[], float] | None = None) -> None:
    """Time the ok measurements of one case and direction again in interleaved rounds; each
    record gets ``rounds`` (seconds per call, one per round) and the ``paired`` id they share.

    ``group``: (implementation, case, direction, record) of each. The phase takes about as long
    again as the items' own timing (at most :data:`MAX_PHASE_S` per implementation, and
    ``budget_cap`` when the run's budget is limited), everything it does counted; left out where
    fewer than :data:`MIN_ROUNDS` rounds fit. A participant that fails leaves ``rounds_error`` on the
    records, which keep their own timing. ``worker_for(impl)``: the isolate worker of an
    isolated implementation; ``clock``: in-process blocks' clock (tests inject a mock).
    """
    ok = [g for g in group if g[3].get("status") == "ok"]
    if len(ok) < 2:
        return
    budget = sum(min(rec.get("elapsed_s") or MAX_PHASE_S, MAX_PHASE_S) for *_, rec in ok)
    if budget_cap is not None:
        budget = min(budget, budget_cap)
    numbers, rounds = plan_rounds([rec["t_median_s"] for *_, rec in ok], budget)
    if not rounds:
        return
    clock = clock or time.perf_counter
    t0 = clock()   # preparing the participants' calls is paid from the phase's budget too
    try:
        held = any(getattr(impl, "heap", None) and not getattr(impl.info, "isolate", False) for impl, *_ in ok)
        parts = [_participant(impl, case, d, worker_for, clock, held) for impl, case, d, _ in ok]
        times = run_rounds(parts, numbers, rounds, seed=seed, budget_s=budget - (clock() - t0), clock=clock)
    except Exception as exc:
        for *_, rec in ok:
            rec["rounds_error"] = f"{type(exc).__name__}: {exc}"
        return
    finally:
        set_thresholds(*thresholds_for("kept"))
    if len(times[0]) < MIN_ROUNDS:
        return   # the budget paid for too few rounds: the records keep their own timing only
    _, case, d, _ = ok[0]
    pid = f"{run_id}/{case.op}/{case.id}/{d}/{case.dtype}"
    for (*_, rec), r in zip(ok, times):
        rec.update(rounds=r, paired=pid)
