"""The timer, driven by a mock clock: statistics without noise, the device path with fakes."""
from __future__ import annotations

import itertools

import pytest

from convbench import ParamError
from convbench.measure.timer import summarise, time_call


class MockClock:
    """A clock that only moves when a fake call (or a fake device) says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def op(clock: MockClock, costs):
    """A fake call whose successive durations come from ``costs`` (an iterable, cycled)."""
    it = itertools.cycle(costs)
    calls = []

    def fn():
        c = next(it)
        clock.now += c
        calls.append(c)

    fn.calls = calls
    return fn


def test_summarise_median_min_iqr():
    med, mn, iqr = summarise([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (med, mn, iqr) == (3.0, 1.0, 2.0)


def test_summarise_rejects_empty():
    with pytest.raises(ParamError, match="samples"):
        summarise([])


def test_microsecond_call_is_blocked_until_one_block_lasts_min_block():
    clock = MockClock()
    fn = op(clock, [1e-6])
    t = time_call(fn, clock=clock, min_block_s=1e-3, budget_s=1.0, min_time_s=0.01)
    assert t.number >= 1000  # 1000 calls of 1 us fill 1 ms: the clock's resolution no longer matters
    assert t.number * 1e-6 >= 1e-3
    assert t.median == pytest.approx(1e-6)
    assert t.min == pytest.approx(1e-6)
    assert all(s == pytest.approx(1e-6) for s in t.samples)


def test_constant_call_converges_after_min_samples_and_min_time():
    clock = MockClock()
    fn = op(clock, [0.01])
    t = time_call(fn, clock=clock, budget_s=10.0, min_time_s=0.2, min_samples=7, rel_iqr=0.02)
    assert t.stop == "converged"
    assert len(t.samples) >= 7
    assert t.total_s >= 0.2  # sampled at least min_time_s
    assert t.total_s < 0.5  # and stopped soon after
    assert t.iqr == pytest.approx(0.0, abs=1e-12) and t.median == pytest.approx(0.01)


def test_noisy_call_stops_at_the_budget_and_keeps_raw_samples():
    clock = MockClock()
    fn = op(clock, [0.01, 0.02, 0.01, 0.03])  # IQR never under 2% of the median
    t = time_call(fn, clock=clock, budget_s=1.0, rel_iqr=0.02)
    assert t.stop == "budget"
    assert t.total_s <= 1.0 + 0.03  # never more than one block past the budget
    assert len(t.samples) > 10
    assert sorted(set(round(s, 6) for s in t.samples)) == [0.01, 0.02, 0.03]
    assert t.median == pytest.approx(0.015, abs=0.0051)
    assert t.min == pytest.approx(0.01)


def test_call_slower_than_the_budget_is_timed_once():
    clock = MockClock()
    fn = op(clock, [5.0])
    t = time_call(fn, clock=clock, budget_s=2.0)
    assert t.stop == "single"
    assert t.samples == [5.0]
    assert len(fn.calls) == 1  # no second call of a slow implementation


def test_lazy_initialisation_of_the_first_call_is_not_taken_for_slowness():
    clock = MockClock()
    costs = iter([0.5] + [1e-3] * 10**6)

    def fn2():
        clock.now += next(costs)

    t = time_call(fn2, clock=clock, budget_s=1.5, min_time_s=0.1)
    assert t.stop != "single"
    assert t.median == pytest.approx(1e-3)


def test_max_samples_bounds_the_number_of_blocks():
    clock = MockClock()
    fn = op(clock, [0.01, 0.02])
    t = time_call(fn, clock=clock, budget_s=100.0, min_samples=3, max_samples=5)
    assert len(t.samples) == 5 and t.stop == "max_samples"


@pytest.mark.parametrize("kw, name", [({"budget_s": 0}, "budget_s"), ({"budget_s": -1}, "budget_s"),
                                      ({"min_block_s": 0}, "min_block_s"),
                                      ({"min_samples": 0}, "min_samples"), ({"warmup": 0}, "warmup")])
def test_bad_arguments_name_the_argument(kw, name):
    with pytest.raises(ParamError, match=name):
        time_call(lambda: None, clock=MockClock(), **kw)


class FakeDevice:
    """An asynchronous device: calls queue work, ``sync`` waits for it (moves the clock)."""

    def __init__(self, clock: MockClock, cost: float) -> None:
        self.clock, self.cost, self.queued, self.log = clock, cost, 0.0, []

    def launch(self) -> None:
        self.log.append("call")
        self.clock.now += 1e-6  # the launch itself is quick
        self.queued += self.cost

    def sync(self) -> None:
        self.log.append("sync")
        self.clock.now += self.queued
        self.queued = 0.0


def test_device_path_synchronises_around_every_block():
    clock = MockClock()
    dev = FakeDevice(clock, cost=2e-3)
    t = time_call(dev.launch, sync=dev.sync, clock=clock, budget_s=0.5, min_block_s=1e-3)
    assert t.median == pytest.approx(2e-3 + 1e-6)
    # every run of calls is preceded and followed by a sync
    log = "".join("c" if e == "call" else "s" for e in dev.log)
    assert log.startswith("s") and log.endswith("s")
    assert "cc" not in log or t.number > 1
    assert log.count("s") >= 2 * len(t.samples)


def test_without_sync_an_asynchronous_device_is_mis_timed():
    """The planted bug: dropping the sync times launches, not work; the check above would fail."""
    clock = MockClock()
    dev = FakeDevice(clock, cost=2e-3)
    t = time_call(dev.launch, sync=None, clock=clock, budget_s=0.5, min_block_s=1e-3)
    assert t.median < 1e-4  # launch latency only: this is what the sync is there to prevent


class FakeEvent:
    """A ``torch.cuda.Event``-like event stamped from the fake device's timeline."""

    def __init__(self, dev: FakeDevice, log: list) -> None:
        self.dev, self.log, self.t = dev, log, None

    def record(self) -> None:
        self.log.append("record")
        self.t = self.dev.clock.now + self.dev.queued  # when the stream reaches the event

    def synchronize(self) -> None:
        self.log.append("synchronize")
        self.dev.sync()

    def elapsed_time(self, end: "FakeEvent") -> float:
        return (end.t - self.t) * 1e3  # milliseconds, like CUDA


def test_event_path_times_the_device_stream():
    clock = MockClock()
    dev = FakeDevice(clock, cost=3e-3)
    log: list = []
    t = time_call(dev.launch, sync=dev.sync, clock=clock, budget_s=0.5, events=lambda: FakeEvent(dev, log))
    assert t.median == pytest.approx(3e-3, rel=1e-3)
    assert log.count("record") == 2 * log.count("synchronize")
