"""The time budget: shares, rate predictions, calibration probes, skipping what does not fit."""
from __future__ import annotations

import re

import pytest

from convbench import ParamError
from convbench.cases import get_suite, parse_descriptor
from convbench.measure.bench import run_bench
from convbench.measure.budget import Budget, RateBook, format_seconds, probe_params

from _fakes import MACHINE, FakeConv, MockClock
import convbench.measure.bench as bench_module

@pytest.fixture(autouse=True)
def _fakes_return_zeros(monkeypatch):
    """The fakes return zeros, which the check after timing rightly fails: it is off here and
    tested on implementations of its own (tests/test_aftercheck.py)."""
    monkeypatch.setattr(bench_module, "AFTER_CHECK", False)


LARGE = ["n8c64h56w56o64k3p1", "n8c128h28w28o128k3p1", "n4c256h14w14o256k3p1"]


@pytest.mark.parametrize("s, text", [(5e-4, "500 us"), (0.0032, "3.2 ms"), (12.0, "12 s"), (41 * 60, "41 min"),
                                     (3.5 * 3600, "3.5 h"), (2.5 * 86400, "2.5 days")])
def test_format_seconds(s, text):
    assert format_seconds(s) == text


def test_budget_share_spreads_what_is_left_over_what_is_left():
    clock = MockClock()
    b = Budget(10.0, 4, clock=clock)
    assert b.share() == 2.5
    clock.now = 1.0  # the first item used 1 s of its 2.5
    b.done()
    assert b.share() == pytest.approx(3.0)
    clock.now = 20.0
    assert b.remaining() == 0.0 and b.share() == 0.0


def test_unlimited_budget():
    b = Budget(None, 3)
    assert not b.limited and b.share() == float("inf")


@pytest.mark.parametrize("bad", [0, -1.0, "10"])
def test_bad_budget_is_named(bad):
    with pytest.raises(ParamError, match="budget"):
        Budget(bad, 1)


def test_ratebook_scales_the_best_nearby_observation():
    rb = RateBook()
    key = ("naive", "forward", "float32")
    assert rb.estimate(key, 1e6) is None
    rb.update(key, 1e3, 1e-3)
    assert rb.estimate(key, 1e2) == pytest.approx(1e-4)  # only larger observations: the smallest
    rb.update(key, 1e6, 0.5)  # faster per FLOP when larger
    assert rb.estimate(key, 2e6) == pytest.approx(1.0)  # the best rate below the call
    assert rb.estimate(key, 2e3) == pytest.approx(2e-3)  # not the 1e6 observation, above it
    assert not rb.flat(key)  # rate grew 2x from 1e3 to 1e6 FLOPs
    rb.update(key, 1e7, 5.0)
    assert rb.flat(key)
    rb.update(key, 2e7, 100.0)  # one measurement slowed 10x by a neighbour
    assert rb.estimate(key, 4e7) == pytest.approx(20.0)  # does not condemn the implementation


@pytest.mark.parametrize("desc", LARGE + ["n4c96h28w28o96k3p1g96", "n1c3h224w224o64k7s2p3", "n2c32h33w17o16kh3kw5d2"])
def test_probe_is_small_and_keeps_the_shape_of_the_call(desc):
    p = parse_descriptor(desc).params
    q = probe_params(p, 2e5)
    assert q.flops("forward") <= 2e5
    assert (q.kh, q.kw, q.stride, q.dilation, q.padding) == (p.kh, p.kw, p.stride, p.dilation, p.padding)
    assert q.c // q.groups == p.c // p.groups or p.groups == 1  # a grouped call keeps its group shape
    if p.groups > 1:
        assert (q.groups == q.c) == (p.groups == p.c)  # depthwise stays depthwise


def _slow_run(budget, cases, rate=2e6):
    clock = MockClock()
    naive = FakeConv(clock, name="fake_naive", rate=rate, overhead=0.0)
    recs = run_bench([naive], [parse_descriptor(c) for c in cases], out=None, budget=budget, threads=None,
                     resume=False, progress=False, machine=MACHINE, clock=clock, directions=("forward",))
    return clock, naive, recs


def test_naive_loops_on_large_cases_are_skipped_with_their_estimate_not_run():
    clock, naive, recs = _slow_run(10.0, ["n1c2h8w8o2k3"] + LARGE)
    assert recs[0]["status"] == "ok"
    for r in recs[1:]:
        assert r["status"] == "skipped"
        assert re.fullmatch(r"est\. [\d.]+ (min|h) > budget [\d.]+ s", r["reason"]), r["reason"]
    big = min(parse_descriptor(c).params.flops("forward") for c in LARGE)
    assert all(f < big / 100 for _, f in naive.log)  # nothing large ever ran
    assert clock.now <= 10.0  # within the budget


def test_naive_loops_overrun_by_at_most_one_probe_even_when_nothing_fits():
    clock, naive, recs = _slow_run(1.0, LARGE)
    assert all(r["status"] == "skipped" for r in recs)
    probes = [f for _, f in naive.log]
    assert probes and max(probes) <= 2e5
    assert clock.now <= 1.0 + 2 * 2e5 / 2e6  # the probe (warm-up + one sample), nothing more


def test_fast_implementations_are_not_skipped_on_an_overhead_bound_probe():
    clock = MockClock()
    # 1 ms of overhead a call: a 2e5-FLOP probe says 5 GFLOP/s would take minutes; it does not
    fast = FakeConv(clock, name="fake_fast", rate=5e10, overhead=1e-3)
    case = parse_descriptor(LARGE[0])
    recs = run_bench([fast], [case], out=None, budget=10.0, threads=None, resume=False, progress=False,
                     machine=MACHINE, clock=clock, directions=("forward",))
    assert recs[0]["status"] == "ok", recs[0]["reason"]
    assert recs[0]["t_median_s"] == pytest.approx(1e-3 + case.params.flops("forward") / 5e10)


def test_a_fixed_cost_per_call_does_not_get_a_fast_implementation_skipped_on_a_tight_budget():
    """Seen on a 16-core VM in `convbench run`: torch_cpu's conv2d probes cost ~2-3.5 ms a call
    whatever their size, the item's share was ~70 ms; scaled by FLOPs the probe predicted seconds for every
    quick case and for the 16x probe that would have told otherwise, and torch_cpu was skipped on
    all of them. The 1/16 probe shows the fixed cost; the larger probes go ahead; every case runs."""
    clock = MockClock()
    fast = FakeConv(clock, name="fake_torch", rate=5e11, overhead=3.5e-3)
    cases = get_suite("quick", "conv2d")
    recs = run_bench([fast], cases, out=None, budget=0.07 * 2 * len(cases), threads=None, resume=False,
                     progress=False, machine=MACHINE, clock=clock)
    assert [r["status"] for r in recs] == ["ok"] * len(recs), [r["reason"] for r in recs]
    for r in recs:
        assert r["t_median_s"] == pytest.approx(3.5e-3 + r["flops"] / 5e11)


class _LazyLoading(FakeConv):
    """Like CUDA loading cuDNN's kernels on their first launch: the first call of each kernel (here
    one per direction and kernel size) costs ``load`` seconds more, every later call nothing."""

    def __init__(self, clock, load, **kw):
        super().__init__(clock, **kw)
        self.load, self.loaded = load, set()

    def _cost(self, p, direction):
        if (direction, p.kh) not in self.loaded:
            self.loaded.add((direction, p.kh))
            self.clock.now += self.load
        super()._cost(p, direction)


def test_a_first_call_that_pays_one_time_costs_is_not_the_measurement():
    """Seen on an H200 in `convbench run`: torch_cuda's conv2d backward timed at 24 and 67 ms (one
    sample each: the first call, loading kernels lazily, ate the 80 ms share) where it takes
    0.13 ms; the slow times then made later cases look too dear and two were skipped. A
    single-sample measurement is taken again when the run can spare it, and the faster kept."""
    clock = MockClock()
    lazy = _LazyLoading(clock, load=0.06, name="fake_cuda", rate=5e11, overhead=1e-4)
    cases = get_suite("quick", "conv2d")
    budget = 0.08 * 2 * len(cases) + 6 * 0.06  # the loads are paid once whatever happens
    recs = run_bench([lazy], cases, out=None, budget=budget, threads=None, resume=False, progress=False,
                     machine=MACHINE, clock=clock)
    assert [r["status"] for r in recs] == ["ok"] * len(recs), [r["reason"] for r in recs]
    for r in recs:
        assert r["t_median_s"] == pytest.approx(1e-4 + r["flops"] / 5e11), (r["case"], r["direction"])
    firsts = [r for r in recs if r.get("first_call_s")]
    assert firsts and all(r["first_call_s"] > 0.06 for r in firsts)  # what the first call cost, kept
    assert clock.now <= budget * 1.05


def test_a_slow_implementation_is_not_timed_twice_when_the_run_cannot_spare_it():
    clock, naive, recs = _slow_run(20.0, ["n1c8h16w16o8k3p1"], rate=1e5)  # one call ~3 s: "single"
    assert recs[0]["status"] == "ok" and recs[0]["stop"] == "single" and "first_call_s" not in recs[0]
    assert sum(1 for _, f in naive.log if f == recs[0]["flops"]) == 1


def test_the_fixed_cost_is_read_from_probes_only_when_they_show_one():
    rb, key = RateBook(), ("x", "forward", "float32")
    rb.update(key, 1e4, 3.0e-3, probe=True)
    rb.update(key, 2e5, 3.2e-3, probe=True)
    assert rb.overhead(key) == pytest.approx(3.0e-3 - 1e4 * 0.2e-3 / 1.9e5)
    assert rb.probe_time(key, 3.2e6) == pytest.approx(rb.overhead(key) + (3.2e-3 - rb.overhead(key)) * 16)
    lin, key2 = RateBook(), ("naive", "forward", "float32")  # time follows FLOPs: no fixed cost
    lin.update(key2, 1e4, 5e-3, probe=True)
    lin.update(key2, 2e5, 0.1, probe=True)
    assert lin.overhead(key2) == pytest.approx(0.0, abs=1e-12) and lin.probe_time(key2, 3.2e6) == pytest.approx(1.6)
    noisy, key3 = RateBook(), ("y", "forward", "float32")  # the larger probe faster: no evidence
    noisy.update(key3, 1e4, 4e-3, probe=True)
    noisy.update(key3, 2e5, 3e-3, probe=True)
    assert noisy.overhead(key3) == 0.0
    real, key4 = RateBook(), ("z", "forward", "float32")  # measured cases of other shapes say nothing
    real.update(key4, 1e4, 3.0e-3)
    real.update(key4, 2e5, 3.2e-3)
    assert real.overhead(key4) == 0.0
    close, key5 = RateBook(), ("w", "forward", "float32")  # probes too close in size to tell
    close.update(key5, 1e5, 3.0e-3, probe=True)
    close.update(key5, 2e5, 3.2e-3, probe=True)
    assert close.overhead(key5) == 0.0


def test_estimate_is_recorded_and_rate_learnt_from_completed_cases():
    clock, naive, recs = _slow_run(100.0, ["n1c2h8w8o2k3", "n1c4h8w8o4k3", "n1c8h16w16o8k3"])
    assert [r["status"] for r in recs] == ["ok"] * 3
    # after the first case, estimates come from measured cases and are exact for a linear fake
    for r in recs[1:]:
        assert r["t_est_s"] == pytest.approx(r["t_median_s"], rel=0.05)


def test_unlimited_budget_runs_everything():
    clock, naive, recs = _slow_run(None, ["n1c2h8w8o2k3", "n1c4h8w8o4k3"])
    assert all(r["status"] == "ok" for r in recs)


def test_a_single_timed_call_is_repeated_only_when_spared_and_the_faster_kept():
    from convbench.measure.bench import _Runner

    clock = MockClock()
    runner = _Runner(None, Budget(1.0, 10, clock=clock), MACHINE, {}, clock=clock)  # a share of 0.1 s
    assert runner.planner.spare(0.09) and not runner.planner.spare(0.11)
    assert _Runner(None, Budget(None, 10), MACHINE, {}).planner.spare(0.5)
    assert not _Runner(None, Budget(None, 10), MACHINE, {}).planner.spare(0.6)  # a quarter of MAX_ITEM_S at most

    def measured(*times):
        queue = [dict(t_median_s=t, stop="single" if i == 0 else "converged", peak_mem_bytes=7, mem_method="m")
                 for i, t in enumerate(times)]
        calls = []
        runner._measure = lambda *a, **kw: (calls.append(kw) or "ok", queue.pop(0))
        return calls

    calls = measured(0.08, 0.001)
    status, res, first = runner._measure_settled(None, None, "forward", memory=True)
    assert (status, res["t_median_s"], first, res["peak_mem_bytes"]) == ("ok", 0.001, 0.08, 7)
    assert calls[1]["memory"] is False  # the first measurement's memory is kept, not measured twice
    measured(0.08, 0.09)  # simply slow: the second is no faster, the first stands
    assert runner._measure_settled(None, None, "forward")[1:] == ({"t_median_s": 0.08, "stop": "single",
                                                                   "peak_mem_bytes": 7, "mem_method": "m"}, None)
    calls = measured(0.2)  # more than a share: not repeated
    assert runner._measure_settled(None, None, "forward")[2] is None and len(calls) == 1


class _Named:
    def __init__(self, name: str = "fake") -> None:
        self.info = type("Info", (), {"name": name})()


def _planner(total, items, rate=None):
    """A Planner whose probes report ``flops / rate`` seconds (None: every probe fails)."""
    from convbench.measure.budget import Planner

    clock = MockClock()
    probes = []

    def probe(impl, case, direction, budget_s):
        probes.append((case.id, case.params.flops(direction), budget_s))
        return None if rate is None else case.params.flops(direction) / rate

    return Planner(Budget(total, items, clock=clock), probe), probes


def test_planner_without_a_limit_neither_predicts_nor_probes():
    planner, probes = _planner(None, 3, rate=1e9)
    case = parse_descriptor(LARGE[0])
    plan = planner.plan(_Named(), case, "forward", case.params.flops("forward"))
    assert (plan.skip, plan.predicted, plan.memory, plan.share) == (None, False, True, float("inf"))
    assert probes == []


def test_planner_skips_a_case_predicted_over_its_share_from_shrunk_probes():
    planner, probes = _planner(1.0, 1, rate=1e8)   # 0.1 GFLOP/s: a ResNet layer takes ~20 s
    case = parse_descriptor(LARGE[0])
    flops = case.params.flops("forward")
    plan = planner.plan(_Named(), case, "forward", flops)
    assert plan.predicted and plan.skip == f"est. {format_seconds(flops / 1e8)} > budget 1 s"
    assert probes and all(cid == f"{case.id}.probe" and f < flops for cid, f, _ in probes)
    assert plan.est == pytest.approx(flops / 1e8, rel=0.01)


def test_planner_fits_a_small_case_and_learns_from_what_was_measured():
    planner, probes = _planner(10.0, 2, rate=1e9)
    case = parse_descriptor("n1c4h8w8o4k3p1")
    flops = case.params.flops("forward")
    plan = planner.plan(_Named(), case, "forward", flops)
    assert plan.skip is None and plan.memory and plan.est == pytest.approx(flops / 1e9, rel=0.01)
    n = len(probes)
    planner.observe(_Named(), case, "forward", flops, 2 * flops / 1e9)   # measured: slower than probed
    again = planner.plan(_Named(), parse_descriptor("n2c4h8w8o4k3p1"), "forward", 2 * flops)
    assert len(probes) == n and again.est == pytest.approx(2 * flops / 1e9, rel=0.01)


def test_planner_leaves_no_time_for_memory_when_one_call_takes_most_of_the_share():
    planner, _ = _planner(1.0, 1, rate=1e9)
    case = parse_descriptor("n1c4h8w8o4k3p1")
    flops = case.params.flops("forward")
    planner.observe(_Named(), case, "forward", flops, 0.6)    # 0.6 s of a 1 s share
    plan = planner.plan(_Named(), case, "forward", flops)
    assert plan.skip is None and not plan.memory


def test_planner_says_the_budget_is_spent_and_runs_a_case_whose_probes_fail():
    planner, probes = _planner(1.0, 1, rate=None)
    case = parse_descriptor("n1c4h8w8o4k3p1")
    plan = planner.plan(_Named(), case, "forward", case.params.flops("forward"))
    assert plan.skip is None and plan.est is None and plan.predicted and len(probes) == 1
    planner.budget.clock.now = 5.0
    spent = planner.plan(_Named(), case, "forward", case.params.flops("forward"))
    assert spent.skip.startswith("budget spent") and not spent.predicted and len(probes) == 1
