"""The time budget: shares, rate predictions, calibration probes, skipping what does not fit."""
from __future__ import annotations

import re

import pytest

from convbench import ParamError
from convbench.cases import parse_descriptor
from convbench.measure.bench import run_bench
from convbench.measure.budget import Budget, RateBook, format_seconds, probe_params

from _fakes import MACHINE, FakeConv, MockClock

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


def test_estimate_is_recorded_and_rate_learnt_from_completed_cases():
    clock, naive, recs = _slow_run(100.0, ["n1c2h8w8o2k3", "n1c4h8w8o4k3", "n1c8h16w16o8k3"])
    assert [r["status"] for r in recs] == ["ok"] * 3
    # after the first case, estimates come from measured cases and are exact for a linear fake
    for r in recs[1:]:
        assert r["t_est_s"] == pytest.approx(r["t_median_s"], rel=0.05)


def test_unlimited_budget_runs_everything():
    clock, naive, recs = _slow_run(None, ["n1c2h8w8o2k3", "n1c4h8w8o4k3"])
    assert all(r["status"] == "ok" for r in recs)
