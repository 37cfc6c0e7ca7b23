"""`convbench compare` on paired rounds, instruction counts, a --baseline run, and steal."""
from __future__ import annotations

import numpy as np
import pytest

from _reports_fakes import QUICK, bench_records, write_jsonl
from convbench.cli import main
from reports._load import frame_from_records
from reports._stats import instructions_change, paired_change, unpaired_change
from reports.compare import compare, compare_frames


def _rounds(rng, n, t, drift, jitter, factor=1.0):
    """Per-round times of two implementations in the same rounds: the machine's speed (drift)
    is shared by both within a round; each has its own small jitter."""
    m = t * rng.lognormal(0.0, drift, size=n)
    return (m * rng.lognormal(0.0, jitter, size=n)).tolist(), (m * factor * rng.lognormal(0.0, jitter, size=n)).tolist()


def _ab_records(rng, factor, n=30, drift=0.2, jitter=0.01, case=QUICK[0]):
    base = bench_records(impls=("im2col",), cases=[case], directions=("forward",), seed=1)[0]
    old, new = _rounds(rng, n, base["t_median_s"], drift, jitter, factor)
    recs = []
    for role, r in (("baseline", old), (None, new)):
        rec = {**base, "rounds": r, "samples": r, "t_median_s": float(np.median(r)), "t_min_s": min(r),
               "paired": "run1/conv2d/x/forward/float32"}
        if role:
            rec["role"] = role
        recs.append(rec)
    return recs


def test_paired_rounds_find_a_5pct_slowdown_that_drift_hides_from_unpaired_samples():
    hits_paired = hits_unpaired = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        old, new = _rounds(rng, 30, 1e-3, drift=0.2, jitter=0.01, factor=1.05)
        c = paired_change(old, new, 0.01)
        hits_paired += c.p_value < 0.01 and c.change > 0.03 and c.min_change > 0.03
        u = unpaired_change(old, new, 0.01)
        hits_unpaired += u.p_value < 0.01 and u.change > 0.03
        assert c.detectable < 0.02 < 0.05 < u.detectable  # what each could have seen
    assert hits_paired == 10 and hits_unpaired <= 2


def test_paired_unchanged_code_stays_quiet():
    flagged = 0
    for seed in range(20):
        old, new = _rounds(np.random.default_rng(seed), 30, 1e-3, drift=0.3, jitter=0.02)
        c = paired_change(old, new, 0.01)
        flagged += c.p_value < 0.01 and c.change > 0.03 and c.min_change > 0.03
    assert flagged == 0


def test_median_moved_but_minimum_did_not_is_no_regression():
    """Planted: the new code is slower in most rounds (another process interfered) but its best
    round is as fast as the old one's: the oneDNN CI rule asks that both moved."""
    old = [1.0] * 10 + [1.01] * 10
    new = [1.10] * 19 + [0.999]
    c = paired_change(old, new, 0.01)
    assert c.change > 0.05 and c.p_value < 0.01 and c.min_change < 0.03
    base = bench_records(impls=("im2col",), cases=QUICK[:1], directions=("forward",), seed=1)[0]
    recs = [{**base, "rounds": r, "samples": r, "t_median_s": float(np.median(r)), "t_min_s": min(r),
             "paired": "p1"} for r in (old, new)]
    table, _ = compare_frames(frame_from_records(recs[:1]), frame_from_records(recs[1:]), 3)
    assert table.loc[0, "verdict"] == "unchanged" and table.loc[0, "basis"] == "paired x20"
    # the same rounds with the best one slower too: flagged
    recs[1]["rounds"] = recs[1]["samples"] = [1.10] * 20
    recs[1]["t_min_s"] = 1.10
    table, _ = compare_frames(frame_from_records(recs[:1]), frame_from_records(recs[1:]), 3)
    assert table.loc[0, "verdict"] == "SLOWER"


def test_rounds_of_different_runs_are_not_paired():
    recs = _ab_records(np.random.default_rng(0), 1.05)
    recs[1]["paired"] = "another run"
    table, _ = compare_frames(frame_from_records(recs[:1]), frame_from_records(recs[1:]), 3)
    assert table.loc[0, "basis"] == "samples"


def test_a_baseline_run_compares_in_one_file_and_says_what_it_could_see(tmp_path, capsys):
    path = write_jsonl(tmp_path / "ab.jsonl", _ab_records(np.random.default_rng(3), 1.05))
    text, regressed = compare(path, None, threshold_pct=3)
    assert regressed and "SLOWER" in text and "paired x30" in text
    assert "this comparison can see changes of" in text
    assert main(["compare", str(path), "--threshold", "3"]) == 1
    quiet = write_jsonl(tmp_path / "aa.jsonl", _ab_records(np.random.default_rng(3), 1.0))
    assert main(["compare", str(quiet), "--threshold", "3"]) == 0
    plain = write_jsonl(tmp_path / "plain.jsonl", bench_records(cases=QUICK[:1], seed=1))
    assert main(["compare", str(plain)]) == 2
    assert "holds no baseline records" in capsys.readouterr().err


def test_instruction_counts_decide_where_both_sides_have_them():
    old = bench_records(impls=("im2col",), cases=QUICK[:1], directions=("forward",), seed=1, noise=0.3)
    new = bench_records(impls=("im2col",), cases=QUICK[:1], directions=("forward",), seed=2, noise=0.3)
    old[0]["instructions"], new[0]["instructions"] = 1_000_000, 1_050_000
    table, _ = compare_frames(frame_from_records(old), frame_from_records(new), 3)
    assert table.loc[0, "basis"] == "instructions" and table.loc[0, "verdict"] == "SLOWER"
    assert table.loc[0, "change_pct"] == pytest.approx(5.0)
    new[0]["instructions"] = 1_002_000  # within the count's own noise
    table, _ = compare_frames(frame_from_records(old), frame_from_records(new), 0.1)
    assert table.loc[0, "verdict"] == "unchanged"
    assert instructions_change(100, 90).change == pytest.approx(-0.1)


def test_heavy_steal_is_flagged(tmp_path):
    old = bench_records(impls=("im2col",), cases=QUICK[:1], seed=1)
    new = bench_records(impls=("im2col",), cases=QUICK[:1], seed=2)
    new[0]["steal_pct"] = 23.0
    new[1]["steal_pct"] = 0.4
    text, _ = compare(write_jsonl(tmp_path / "o.jsonl", old), write_jsonl(tmp_path / "n.jsonl", new), 10)
    assert "steal 23 %" in text and "1 measurement(s) taken while the hypervisor stole" in text


def test_a_busy_machine_is_flagged(tmp_path):
    old = bench_records(impls=("im2col",), cases=QUICK[:1], seed=1)
    new = bench_records(impls=("im2col",), cases=QUICK[:1], seed=2)
    old[0]["others_pct"], new[0]["others_pct"] = 2.0, 41.0
    new[1]["others_pct"] = 14.0
    text, _ = compare(write_jsonl(tmp_path / "o.jsonl", old), write_jsonl(tmp_path / "n.jsonl", new), 10)
    assert "busy 41 %" in text and "busy 14" not in text
    assert "1 measurement(s) taken while" in text and "other processes took more than 15 %" in text


def test_bench_baseline_runs_old_and_new_side_by_side_and_compares_them(capsys):
    from convbench.cli import main

    rc = main(["bench", "--impl", "im2col", "--baseline", "stride_tricks", "--case", "n1c2h6w6o2k3", "--budget", "10"])
    out = capsys.readouterr().out
    assert rc in (0, 1)     # 1: the one timed slower by the threshold, which two implementations may be
    head = next(ln for ln in out.splitlines() if ln.startswith("compare"))
    # said as this run, not as the temporary file the records passed through
    assert head.startswith("compare in this run: the baseline against each implementation"), head
    assert "stride_tricks" in out and "im2col" in out and "paired" in out


def test_a_file_can_be_its_own_baseline_to_see_the_noise(tmp_path, capsys):
    from convbench.cli import main

    f = tmp_path / "same.py"
    f.write_text("from convbench.registry import get_impl\nconv = get_impl('im2col')\n")
    spec = f"{f}:conv"
    rc = main(["bench", "--impl", spec, "--baseline", spec, "--case", "n1c2h6w6o2k3", "--budget", "10"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "compare in this run" in out and "paired" in out, out
