"""`convbench compare`: a planted slowdown is flagged, the same code twice stays quiet."""
from __future__ import annotations

import numpy as np
import pytest

from _reports_fakes import QUICK, bench_records, write_jsonl
from convbench.cli import main
from reports.compare import compare, compare_frames
from reports._load import frame_from_records


def _pair(tmp_path, old_kw=None, new_kw=None):
    old = write_jsonl(tmp_path / "old.jsonl", bench_records(cases=QUICK[:3], **({"seed": 1} | (old_kw or {}))))
    new = write_jsonl(tmp_path / "new.jsonl", bench_records(cases=QUICK[:3], **({"seed": 2} | (new_kw or {}))))
    return old, new


def test_planted_30pct_slowdown_is_flagged_and_cli_exits_1(tmp_path, capsys):
    old, new = _pair(tmp_path, new_kw={"slowdown": {"im2col": 1.3}})
    text, regressed = compare(old, new, threshold_pct=10)
    assert regressed and "SLOWER" in text and "REGRESSION" in text
    table, _ = compare_frames(frame_from_records(bench_records(cases=QUICK[:3], seed=1)),
                              frame_from_records(bench_records(cases=QUICK[:3], seed=2, slowdown={"im2col": 1.3})), 10)
    slower = table[table["verdict"] == "SLOWER"]
    assert set(slower["impl"]) == {"im2col"} and len(slower) == 6  # every im2col case, nothing else
    assert slower["change_pct"].between(20, 40).all()
    assert main(["compare", str(old), str(new), "--threshold", "10%"]) == 1
    assert "im2col" in capsys.readouterr().out


@pytest.mark.parametrize("seeds", [(1, 2), (3, 4), (5, 6), (7, 8)])
def test_same_code_twice_stays_quiet(tmp_path, seeds):
    old, new = _pair(tmp_path, {"seed": seeds[0], "noise": 0.05}, {"seed": seeds[1], "noise": 0.05})
    text, regressed = compare(old, new, threshold_pct=10)
    assert not regressed and "SLOWER" not in text and "no regression" in text
    assert main(["compare", str(old), str(new)]) == 0


def test_significant_but_small_change_is_not_a_regression(tmp_path):
    old, new = _pair(tmp_path, {"noise": 0.005}, {"noise": 0.005, "slowdown": {"im2col": 1.05}})
    table, _ = compare_frames(frame_from_records(bench_records(cases=QUICK[:3], seed=1, noise=0.005)),
                              frame_from_records(bench_records(cases=QUICK[:3], seed=2, noise=0.005,
                                                               slowdown={"im2col": 1.05})), 10)
    im = table[table["impl"] == "im2col"]
    assert (im["p_value"] < 0.01).all() and (im["verdict"] == "unchanged").all()
    assert not compare(old, new, threshold_pct=10)[1]
    assert compare(old, new, threshold_pct=2)[1]  # past a 2 % threshold it is one


def test_faster_is_reported_not_flagged(tmp_path):
    old, new = _pair(tmp_path, new_kw={"slowdown": {"torch_cpu": 0.5}})
    text, regressed = compare(old, new, threshold_pct=10)
    assert not regressed and "faster" in text


def test_ok_to_failing_is_a_regression(tmp_path):
    recs = bench_records(cases=QUICK[:2], seed=2)
    recs[0] = {**recs[0], "status": "crashed", "reason": "segfault", "t_median_s": None, "samples": None}
    old = write_jsonl(tmp_path / "old.jsonl", bench_records(cases=QUICK[:2], seed=1))
    new = write_jsonl(tmp_path / "new.jsonl", recs)
    text, regressed = compare(old, new, threshold_pct=10)
    assert regressed and "NOW FAILING" in text


def test_without_samples_changes_are_shown_but_untested(tmp_path):
    old_r = bench_records(cases=QUICK[:1], seed=1)
    new_r = bench_records(cases=QUICK[:1], seed=2, slowdown={"im2col": 2.0})
    for r in old_r + new_r:
        r.pop("samples", None)
    old, new = write_jsonl(tmp_path / "o.jsonl", old_r), write_jsonl(tmp_path / "n.jsonl", new_r)
    text, regressed = compare(old, new, threshold_pct=10)
    assert not regressed and "untested" in text


def test_machines_matched_when_shared(tmp_path):
    old = write_jsonl(tmp_path / "o.jsonl", bench_records(machines=("alpha", "beta"), cases=QUICK[:1], seed=1))
    new = write_jsonl(tmp_path / "n.jsonl", bench_records(machines=("alpha", "beta"), cases=QUICK[:1], seed=2))
    text, regressed = compare(old, new, threshold_pct=10)
    # beta is 4x faster than alpha: matching across machines would call half of it a regression
    assert not regressed and "different machines" not in text


def test_bad_threshold_is_named(tmp_path):
    old, new = _pair(tmp_path)
    with pytest.raises(ValueError, match="threshold_pct.*-5"):
        compare(old, new, threshold_pct=-5)
    assert main(["compare", str(old), str(new), "--threshold", "ten"]) == 2


def _state_run(rng, t, factor=1.0, n=300):
    """One separate run's samples on a shared VM: calls in a fast or a slow (1.5x) state of the
    machine, in spells; the slow share differs from run to run (5-80 %), and so does the process's
    own floor (1 %), as measured on the project's 2-vCPU VM."""
    floor = t * factor * rng.lognormal(0.0, 0.01)
    slow_share, out, slow = rng.uniform(0.05, 0.8), [], False
    while len(out) < n:
        slow = rng.random() < slow_share
        out += [floor * (1.5 if slow else 1.0) * (1 + rng.exponential(0.02))
                for _ in range(int(rng.integers(5, 40)))]
    return out[:n]


def _run_record(base, samples):
    return {**base, "samples": samples, "t_median_s": float(np.median(samples)), "t_min_s": min(samples)}


def test_separate_runs_on_a_two_state_machine_find_5pct_by_their_floors():
    """Planted: 5 % more work, timed in separate runs whose calls fall into the machine's fast and
    slow states. The medians move with the slow share (a median rule misses half the slowdowns
    and flags unchanged code); the floors find the slowdown and leave unchanged code alone."""
    base = bench_records(impls=("im2col",), cases=QUICK[:1], directions=("forward",), seed=1)[0]
    found = flagged = median_rule_right = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        old, new, same = (_run_record(base, _state_run(rng, 1e-3, f)) for f in (1.0, 1.05, 1.0))
        for other, planted in ((new, True), (same, False)):
            table, _ = compare_frames(frame_from_records([old]), frame_from_records([other]), 3)
            row = table.loc[0]
            assert row["basis"] == "samples" and row["detectable_pct"] > 3  # the floor noise counts
            if planted:
                found += row["verdict"] == "SLOWER"
            else:
                flagged += row["verdict"] == "SLOWER"
            median_rule_right += (abs(row["change_pct"]) > 3) == planted
    assert found >= 16 and flagged <= 2
    assert median_rule_right <= 30  # of 40: the premise, medians of separate runs are noise here
