"""Interleaved rounds: every implementation of a case timed in alternation; records paired."""
from __future__ import annotations

import numpy as np

from convbench.cases import parse_descriptor
from convbench.cli import main
from convbench.measure.bench import run_bench
from convbench.measure.rounds import MAX_ROUNDS, MIN_BLOCK_S, plan_rounds, run_rounds
from convbench.registry import ImplInfo, Implementation

from _fakes import MACHINE, MockClock


class Ticking(Implementation):
    """Takes ``t`` mock seconds a call, plus the machine's drift of the moment; returns zeros."""

    def __init__(self, name: str, t: float, clock: MockClock) -> None:
        self.info = ImplInfo(op="conv2d", name=name)
        self.t, self.clock, self.calls = t, clock, 0

    def forward(self, p, x, w, b):
        self.calls += 1
        drift = 1.0 + 0.3 * np.sin(self.clock.now * 7.0)  # the machine's speed moves, for both
        self.clock.now += self.t * drift
        return np.zeros(p.shapes()["y"], x.dtype)

    def backward(self, p, dy, x, w):
        raise NotImplementedError


class _Part:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def block(self, number):
        self.log.append((self.name, number))
        return 1.0


def test_plan_sizes_blocks_and_fits_rounds_in_the_budget():
    numbers, rounds = plan_rounds([1e-6, 1e-3], budget_s=1.0)
    assert numbers[0] * 1e-6 >= MIN_BLOCK_S and numbers[1] == 1
    assert rounds == min(MAX_ROUNDS, int(1.0 / (numbers[0] * 1e-6 + 1e-3)))
    assert plan_rounds([1.0, 1.0], budget_s=3.0)[1] == 0  # fewer than MIN_ROUNDS fit: none


def test_rounds_alternate_in_a_random_order_with_one_block_each():
    log: list = []
    out = run_rounds([_Part("a", log), _Part("b", log), _Part("c", log)], [1, 2, 3], rounds=20, seed=1)
    assert [len(r) for r in out] == [20, 20, 20]
    body = log[3:]  # after one warm-up block each
    rounds = [tuple(n for n, _ in body[i:i + 3]) for i in range(0, 60, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # each round: one block of each
    assert len(set(rounds)) > 1  # not always the same order
    assert ("b", 2) in log and ("c", 3) in log


def test_a_bench_run_pairs_the_rounds_and_a_baseline_run_compares_itself(tmp_path, capsys):
    clock = MockClock()
    case = parse_descriptor("n1c1h4w4o1k1")
    old, new = Ticking("mine", 2e-3, clock), Ticking("mine", 2.1e-3, clock)   # same name, new 5 % slower
    out = tmp_path / "ab.jsonl"
    recs = run_bench([new], [case], out=out, budget=None, threads=None, resume=False, progress=False,
                     machine=MACHINE, directions=("forward",), baseline=old, after_check=False, clock=clock)
    assert [r.get("role") for r in recs] == ["baseline", None]
    assert len(recs[0]["rounds"]) == len(recs[1]["rounds"]) >= 5 and recs[0]["paired"] == recs[1]["paired"]
    assert np.median(np.array(recs[1]["rounds"]) / np.array(recs[0]["rounds"])) > 1.03
    assert main(["compare", str(out), "--threshold", "3"]) == 1
    text = capsys.readouterr().out
    assert "SLOWER" in text and "paired" in text and "can see changes of" in text
    # without interleaving: no rounds, and compare falls back to the samples
    recs = run_bench([new, old], [case], out=None, budget=None, threads=None, resume=False, progress=False,
                     machine=MACHINE, directions=("forward",), interleave_rounds=False, after_check=False,
                     clock=clock)
    assert all("rounds" not in r for r in recs)
