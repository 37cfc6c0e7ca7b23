"""The time budget: split it over the work, predict each case's time, skip what does not fit.

A case's time is predicted from its FLOPs and the implementation's measured rate (FLOP/s) for that
direction and dtype. The rate comes from the cases already measured (the one nearest in FLOPs, on
a log scale, since small cases run below the asymptotic rate) or, before any, from calibration
probes: the case shrunk (batch, then spatial size and channels) to a few hundred thousand FLOPs
and to 1/16 of that, which costs pure-Python loops a fraction of a second; the two sizes show a
fixed cost per call (:meth:`RateBook.overhead`), which larger probes are predicted without scaling.
A prediction over the case's share of the budget makes the case ``skipped`` with the estimate as its
reason, so naive loops never overrun by more than one probe.

:class:`Planner` is what the bench runner asks: once before an item (:meth:`Planner.plan`: run it
with this time and memory measurement, or skip it with this reason), once after
(:meth:`Planner.observe`: the time it took); the probes it needs meanwhile it has timed through
the function the runner gives it.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import time
from typing import Any, Callable

from convbench._errors import ParamError

__all__ = ["Budget", "RateBook", "Planner", "Plan", "probe_params", "format_seconds", "PROBE_FLOPS",
           "MAX_ITEM_S", "MIN_SHARE_S"]

#: FLOPs of the first calibration probe: ~0.1 s for pure-Python loops (~2-5 MFLOP/s)
PROBE_FLOPS = 2e5
#: seconds one item's timer may use when there is no budget, or a generous one
MAX_ITEM_S = 2.0
#: below this share an item is not attempted: even a probe would overrun
MIN_SHARE_S = 1e-3


def format_seconds(s: float) -> str:
    """Short human duration: ``850 us``, ``3.2 ms``, ``12 s``, ``41 min``, ``3.5 h``, ``2.1 days``."""
    if not math.isfinite(s):
        return "inf"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 60:
        return f"{s:.3g} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


class Budget:
    """Seconds for a whole run, shared out over its items (implementation x case x direction).

    Each item's share is what remains divided by the items left, so time a fast implementation
    leaves unused flows to later items.

    Parameters
    ----------
    total_s : float or None
        Seconds for the run; None means unlimited (nothing is skipped for time).
    items : int
        Number of items the run will go through.
    clock : callable
        Seconds as a float; tests inject a mock clock.
    """

    def __init__(self, total_s: float | None, items: int, clock: Callable[[], float] = time.perf_counter) -> None:
        if total_s is not None and not (isinstance(total_s, (int, float)) and total_s > 0):
            raise ParamError(f"budget must be a positive number of seconds or None, got {total_s!r}")
        if not (isinstance(items, int) and items >= 0):
            raise ParamError(f"items must be a non-negative int, got {items!r}")
        self.total_s, self.items_left, self.clock = total_s, items, clock
        self.t0 = clock()

    @property
    def limited(self) -> bool:
        return self.total_s is not None

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def remaining(self) -> float:
        return math.inf if self.total_s is None else max(0.0, self.total_s - self.elapsed())

    def share(self) -> float:
        """Seconds the next item may use."""
        if self.total_s is None:
            return math.inf
        return self.remaining() / max(self.items_left, 1)

    def done(self, n: int = 1) -> None:
        self.items_left = max(0, self.items_left - n)


class RateBook:
    """Measured seconds per FLOP of each (implementation, direction, dtype), to predict times."""

    def __init__(self) -> None:
        self._obs: dict[tuple[str, ...], list[tuple[float, float]]] = {}
        self._probes: dict[tuple[str, ...], list[tuple[float, float]]] = {}

    def update(self, key: tuple[str, ...], flops: float, seconds: float, probe: bool = False) -> None:
        """Add an observation; ``probe``: of a calibration probe (a shrunk copy of one case), which
        :meth:`overhead` reads the fixed cost of a call from."""
        if flops > 0 and seconds > 0 and math.isfinite(seconds):
            obs = self._obs.setdefault(key, [])
            bisect.insort(obs, (float(flops), float(seconds)))
            if probe:
                bisect.insort(self._probes.setdefault(key, []), (float(flops), float(seconds)))

    def overhead(self, key: tuple[str, ...]) -> float:
        """Seconds a call costs whatever its FLOPs (dispatch, thread start-up), from the probes.

        The intercept of the line through the smallest and the largest probe, when they are at
        least 4x apart in FLOPs and the larger took no less time (else 0: no evidence). A library
        call whose time barely grows from a 1/16-size probe to the probe is bound by this cost at
        probe sizes, and its rate there says nothing of larger calls.
        """
        probes = self._probes.get(key) or []
        if len(probes) < 2:
            return 0.0
        (fs, ts), (fl, tl) = probes[0], probes[-1]
        if fl < 4 * fs or tl < ts:
            return 0.0
        slope = (tl - ts) / (fl - fs)
        return max(0.0, ts - slope * fs)

    def probe_time(self, key: tuple[str, ...], flops: float) -> float | None:
        """Predicted seconds of a probe of ``flops`` FLOPs larger than every observation: the
        largest observation's time, its part above :meth:`overhead` scaled by FLOPs. Without an
        overhead this is the linear estimate; with one, a call bound by it costs little more
        than it (an implementation that is really linear has no overhead and is predicted so).
        """
        obs = self._obs.get(key)
        if not obs:
            return None
        f, t = obs[-1]
        a = min(self.overhead(key), t)
        return a + (t - a) * max(flops / f, 1.0)

    def known(self, key: tuple[str, ...]) -> bool:
        return bool(self._obs.get(key))

    def estimate(self, key: tuple[str, ...], flops: float) -> float | None:
        """Predicted seconds of one call of ``flops`` FLOPs; None before any observation.

        The best rate among the (up to three) largest observations no larger than the call, scaled
        linearly; the smallest observation when all are larger. Rates grow with size while a call
        is overhead-bound, so a smaller observation errs towards overestimating (probing again,
        never overrunning); the best of three keeps one measurement disturbed by a neighbouring
        process from condemning an implementation to being skipped.
        """
        obs = self._obs.get(key)
        if not obs:
            return None
        below = [o for o in obs if o[0] <= flops][-3:] or obs[:1]
        rate = max(f / t for f, t in below)
        return flops / rate

    def largest(self, key: tuple[str, ...]) -> float:
        """FLOPs of the largest observation (0 without any)."""
        obs = self._obs.get(key)
        return obs[-1][0] if obs else 0.0

    def flat(self, key: tuple[str, ...], factor: float = 1.5) -> bool:
        """The rate stopped growing with size: the two largest observations agree within ``factor``.

        Then the implementation is not overhead-bound and scaling its time by FLOPs is sound.
        """
        obs = self._obs.get(key) or []
        if len(obs) < 2 or obs[-1][0] <= obs[-2][0]:
            return False
        r1, r0 = obs[-1][0] / obs[-1][1], obs[-2][0] / obs[-2][1]
        return r1 <= factor * r0

    def rate(self, key: tuple[str, ...]) -> float | None:
        """FLOP/s of the largest observation (for reports)."""
        obs = self._obs.get(key)
        return obs[-1][0] / obs[-1][1] if obs else None


#: times one calibration probe: (implementation, the shrunk case, direction, seconds it may use)
#: -> its fastest call in seconds, or None when it failed
ProbeFn = Callable[[Any, Any, str, float], "float | None"]


@dataclasses.dataclass
class Plan:
    """What :meth:`Planner.plan` decided for one item."""

    #: seconds the item's measurement may use (``inf``: no limit)
    share: float
    #: measure the peak memory of a call too (a call taking most of the share leaves no time for it)
    memory: bool = True
    #: predicted seconds of one call (None: unknown, or the budget is unlimited)
    est: float | None = None
    #: why the item is skipped for time, else None
    skip: str | None = None
    #: whether the time was predicted (under a limited budget with time left): ``est`` is its outcome
    predicted: bool = False


class Planner:
    """The budget's decisions for a run: which items fit, with what time, probing to know.

    Parameters
    ----------
    budget : Budget
        The run's budget (its share per item).
    probe : callable
        ``probe(impl, case, direction, budget_s) -> seconds or None``: times one calibration probe
        (a shrunk copy of a case); None when it failed.
    """

    def __init__(self, budget: Budget, probe: ProbeFn, slots: int = 1) -> None:
        self.budget, self.rates, self._probe_fn, self.slots = budget, RateBook(), probe, slots

    @staticmethod
    def _key(impl: Any, case: Any, direction: str) -> tuple[str, ...]:
        return (impl.info.name, direction, case.dtype)

    def plan(self, impl: Any, case: Any, direction: str, flops: float) -> Plan:
        """Whether ``impl`` runs ``case`` in ``direction`` within its share, and how.

        Under a limited budget this predicts the call's time (:meth:`predict`, which may probe)
        and skips the item when the prediction is over its share or the budget is spent. An item
        holds ``slots`` of the budget's shares: it is timed within one, and skipped only when a
        call would not fit in all of them (the others pay for its case's interleaved rounds,
        which a call that large leaves out).
        """
        share = self.budget.share()
        if not self.budget.limited:
            return Plan(share=share)
        allot = share * self.slots
        if allot < MIN_SHARE_S:
            return Plan(share=share, skip=f"budget spent ({format_seconds(allot)} left for this case)")
        est = self.predict(impl, case, direction, flops, allot)
        share = self.budget.share()  # what the probes left
        allot = share * self.slots
        if est is not None and est > allot:
            return Plan(share=share, est=est, predicted=True,
                        skip=f"est. {format_seconds(est)} > budget {format_seconds(allot)}")
        # one call that takes most of the share leaves no time for the separate memory call
        return Plan(share=share, est=est, predicted=True, memory=est is None or est * 2 <= allot)

    def observe(self, impl: Any, case: Any, direction: str, flops: float, seconds: float) -> None:
        """A measured call of ``flops`` FLOPs took ``seconds``: the rate later predictions use."""
        self.rates.update(self._key(impl, case, direction), flops, seconds)

    def spare(self, seconds: float) -> bool:
        """Whether the run can afford a repeated call of ``seconds``: a quarter of an unlimited
        item's time at most, and within a limited budget no more than an item's share of what is
        left (so the repeat is paid by the later items' shares, as the budget spreads any time
        spent, and a run never ends later for it)."""
        if seconds > MAX_ITEM_S / 4:
            return False
        return not self.budget.limited or seconds <= self.budget.share()

    def predict(self, impl: Any, case: Any, direction: str, flops: float, share: float) -> float | None:
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
        budget_s = min(share / 4, MAX_ITEM_S) if math.isfinite(share) else 0.05
        best = math.inf
        for _ in range(2 if twice else 1):
            t = self._probe_fn(impl, probe_case, direction, budget_s)
            if t is None:
                if math.isfinite(best):
                    break
                return None
            best = min(best, t)
        self.rates.update(self._key(impl, case, direction), pp.flops(direction), best, probe=True)
        return best


def _shrink(p: Any, field: str, value: int) -> Any | None:
    try:
        return dataclasses.replace(p, **{field: value})
    except (ParamError, ValueError, TypeError):
        return None


def _shrink_all(p: Any, **kw: int) -> Any | None:
    try:
        return dataclasses.replace(p, **kw)
    except (ParamError, ValueError, TypeError):
        return None


def probe_params(p: Any, target_flops: float = PROBE_FLOPS, direction: str = "forward") -> Any:
    """A smaller call like ``p`` with about ``target_flops`` FLOPs (or as close as it can shrink).

    Shrinks the batch first (the cheapest dimension to drop, rates barely depend on it), then
    the spatial size, then channels (keeping ``groups`` a divisor; depthwise stays depthwise).
    """
    cur = p
    for _ in range(200):
        if cur.flops(direction) <= target_flops:
            return cur
        nxt = next((c for c in _candidates(cur) if c is not None and c.flops(direction) < cur.flops(direction)), None)
        if nxt is None:
            return cur
        cur = nxt
    return cur


def _axes(p: Any) -> list[tuple[str, int]]:
    """(size field, effective kernel extent) of each spatial axis, for every operator."""
    dil = getattr(p, "dilation", 1)
    if hasattr(p, "l"):  # conv1d
        d = dil if isinstance(dil, int) else dil[0]
        return [("l", d * (p.k - 1) + 1)]
    dh, dw = (dil, dil) if isinstance(dil, int) else dil
    return [("h", dh * (p.kh - 1) + 1), ("w", dw * (p.kw - 1) + 1)]


def _channels(p: Any, c: int) -> Any | None:
    """``p`` with ``c`` input channels (and as many fewer outputs, for convolutions)."""
    if hasattr(p, "o"):
        return _shrink_all(p, c=c, o=max(1, p.o * c // p.c))
    return _shrink(p, "c", c)


def _candidates(p: Any) -> Any:
    """Smaller calls in order of preference (generated lazily)."""
    axes = _axes(p)
    if p.n > 1:
        yield _shrink(p, "n", p.n // 2)
    # spatial size while the border (padding, partial windows) stays a small part of the work:
    # a tiny probe with mostly padded taps would run unrepresentatively fast in naive loops
    for field, keff in axes:
        if getattr(p, field) // 2 >= 3 * keff:
            yield _shrink(p, field, getattr(p, field) // 2)
    g = getattr(p, "groups", 1)
    width = max(p.c, getattr(p, "o", p.c))
    if g == 1 and width > 4:
        yield _channels(p, max(1, p.c // 2))
    if g > 1 and g % 2 == 0 and p.c % 2 == 0 and p.o % 2 == 0:
        # c, o and groups shrink together: the per-group shape c/groups, o/groups stays
        yield _shrink_all(p, c=p.c // 2, o=p.o // 2, groups=g // 2)
    for field, _ in axes:
        if getattr(p, field) > 1:
            yield _shrink(p, field, getattr(p, field) // 2)
    if g == 1 and width > 1:
        yield _channels(p, max(1, p.c // 2))
