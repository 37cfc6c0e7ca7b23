"""The timed call checked once more after timing, on fresh inputs: planted cheats are caught."""
from __future__ import annotations

import numpy as np

from convbench.cases import parse_descriptor
from convbench.measure.aftercheck import check_after_timing
from convbench.measure.bench import run_bench
from convbench.measure.measurement import measure_one
from convbench.registry import ImplInfo, Implementation
from convbench.ops import get_op

from _fakes import MACHINE

CASE = parse_descriptor("n2c3h8w8o4k3p1")


class Honest(Implementation):
    """The float64 reference, rounded to the input dtype."""

    def __init__(self, name: str = "honest") -> None:
        self.info = ImplInfo(op="conv2d", name=name)
        self.calls = 0

    def forward(self, p, x, w, b):
        self.calls += 1
        return get_op("conv2d").reference_forward(p, x, w, b).astype(x.dtype)

    def backward(self, p, dy, x, w):
        g = get_op("conv2d").reference_backward(p, dy, x, w)
        return tuple(None if v is None else v.astype(x.dtype) for v in g)


class CachesResult(Honest):
    """Planted: keeps its first result and hands it back (a cache keyed on the shape)."""

    def __init__(self) -> None:
        super().__init__("caches_result")
        self.kept = None

    def forward(self, p, x, w, b):
        if self.kept is None:
            self.kept = super().forward(p, x, w, b)
        return self.kept


class LazyWhenTimed(Honest):
    """Planted: correct for its first few calls (a check), zeros once called in a loop."""

    def forward(self, p, x, w, b):
        y = super().forward(p, x, w, b)
        return y if self.calls <= 3 else np.zeros_like(y)


def test_an_honest_implementation_passes():
    assert check_after_timing(Honest(), CASE, "forward") is None
    rec = measure_one(Honest(), CASE, "forward", budget_s=0.3, memory=False)
    assert rec["after_check"] is None


def test_a_cached_result_is_caught_after_timing():
    impl = CachesResult()
    impl.forward(CASE.params, *[np.ones(s, np.float32) for s in (CASE.params.shapes()["x"], CASE.params.shapes()["w"])], None)
    why = check_after_timing(impl, CASE, "forward")
    assert why and "fresh inputs failed the oracle check" in why and "cached or stale" in why


def test_behaving_differently_while_timed_fails_the_record_and_keeps_its_times():
    recs = run_bench([LazyWhenTimed("lazy"), Honest()], [CASE], out=None, budget=None, threads=None,
                     resume=False, progress=False, machine=MACHINE, directions=("forward",))
    by = {r["impl"]: r for r in recs}
    assert by["lazy"]["status"] == "failed" and "after timing" in by["lazy"]["reason"]
    assert by["lazy"]["t_median_s"] > 0 and by["lazy"]["samples"]  # measured results never lost
    assert by["honest"]["status"] == "ok" and "steal_pct" in by["honest"] and "others_pct" in by["honest"]
    # the check can be switched off; then the cheat goes unseen (what the check is for)
    recs = run_bench([LazyWhenTimed("lazy")], [CASE], out=None, budget=None, threads=None, resume=False,
                     progress=False, machine=MACHINE, directions=("forward",), after_check=False)
    assert recs[0]["status"] == "ok"
