"""Interleaved rounds: every implementation of a case timed in alternation; records paired."""
from __future__ import annotations

import numpy as np

from convbench.cases import parse_descriptor
from convbench.cli import main
from convbench.measure import rounds
from convbench.measure.bench import run_bench
from convbench.measure.rounds import MAX_ROUNDS, MIN_BLOCK_S, MIN_ROUNDS, plan_rounds, run_rounds
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


def test_a_limited_budget_pays_for_the_rounds_and_still_measures_every_case(monkeypatch):
    # the rounds once came on top of the items' shares, planned from the calls' times alone while
    # each block also paid its settling: `convbench run` measured half the items it had before
    # the rounds existed, its later cases all "budget spent"
    clock = MockClock()

    def settle():   # parking the BLAS threads after a block: ~1-3 ms on a 2-core VM
        clock.now += 2e-3

    monkeypatch.setattr(rounds, "park_blas_threads", settle)
    a, b = Ticking("a", 1e-3, clock), Ticking("b", 1.2e-3, clock)
    cases = [parse_descriptor(f"n1c1h{4 + i}w4o1k1") for i in range(8)]
    recs = run_bench([a, b], cases, out=None, budget=2.0, threads=None, resume=False, progress=False,
                     machine=MACHINE, directions=("forward",), after_check=False, clock=clock)
    assert [r["status"] for r in recs] == ["ok"] * 16, [(r["case"], r["status"], r.get("reason")) for r in recs]
    assert all(len(r.get("rounds", ())) >= MIN_ROUNDS for r in recs), [len(r.get("rounds", ())) for r in recs]
    assert clock.now <= 2.0 * 1.1   # the run kept to its budget, rounds included
    late = [r["budget_s"] for r in recs[-4:]]
    assert min(late) >= 0.5 * recs[0]["budget_s"], late   # the last cases still had their shares


class _Costly:
    """A participant whose every block costs ``extra`` mock seconds on top of its calls (a
    settling of the BLAS threads, a worker's message)."""

    def __init__(self, clock, t, extra):
        self.clock, self.t, self.extra, self.blocks = clock, t, extra, 0

    def block(self, number):
        self.blocks += 1
        self.clock.now += number * self.t + self.extra
        return self.t


def test_rounds_keep_to_their_budget_with_what_each_block_costs_beside_its_calls():
    # planned from the calls' times alone, a phase of small calls once took 3-8x its budget
    clock = MockClock()
    parts = [_Costly(clock, 1e-3, 4e-3), _Costly(clock, 1e-3, 4e-3)]
    out = run_rounds(parts, [1, 1], rounds=MAX_ROUNDS, seed=0, budget_s=0.2, clock=clock)
    assert MIN_ROUNDS <= len(out[0]) == len(out[1]) < MAX_ROUNDS
    assert clock.now <= 0.2 + 1e-9
    clock.now = 0.0   # a budget that pays for fewer than MIN_ROUNDS rounds: none recorded
    out = run_rounds(parts, [1, 1], rounds=MAX_ROUNDS, seed=0, budget_s=0.04, clock=clock)
    assert out == [[], []] and clock.now <= 0.04
