"""Every planted bug in tests/planted/ is caught, with the right check and direction named."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convbench.cases import get_suite
from convbench.registry import load_impl
from convbench.verify import format_report, run_checks

PLANTED = Path(__file__).parent / "planted"
CLI = [sys.executable, "-m", "convbench.cli"]
CASES = get_suite("edge") + get_suite("random")

# spec -> (check, direction, status) that must appear among the records
BUGS = {
    "pad_one_side.py:conv2d": ("shape", "forward", "failed"),
    "swapped_stride.py:conv2d": ("random", "forward", "failed"),
    "col2im_assign.py:Conv2DAssign": ("random", "grad_input", "failed"),
    "batch_dropped.py:Conv2DDropSample": ("random", "grad_weight", "failed"),
    "mean_bias.py:Conv2DMeanBias": ("random", "grad_bias", "failed"),
    "clip_inplace.py:conv2d": ("inputs_unmodified", "forward", "failed"),
    "fp16_accum.py:conv2d": ("random", "forward", "failed"),
    "ignored_bias.py:conv2d": ("exact", "forward", "failed"),
    "nondeterministic.py:conv2d": ("deterministic", "forward", "failed"),
    "ceil_output.py:conv2d": ("shape", "forward", "failed"),
    "flipped_kernel.py:conv2d": ("exact", "forward", "failed"),
    "kernel_swapped.py:conv2d": ("random", "forward", "failed"),
    "im2col_order.py:conv2d": ("exact", "forward", "failed"),
    "stride_not_indexed.py:conv2d": ("exact", "forward", "failed"),
    "float64_out.py:conv2d": ("dtype", "forward", "failed"),
    "abort.py:conv2d": ("shape", "forward", "crashed"),
    "hang.py:conv2d": ("shape", "forward", "timeout"),
    "reused_output.py:conv2d": ("results_kept", "forward", "failed"),
}
# checks that must stay silent for a bug that is not theirs
SILENT = {
    "float64_out.py:conv2d": ("random", "exact", "shape", "inputs_unmodified", "deterministic"),
    "mean_bias.py:Conv2DMeanBias": ("shape", "dtype", "inputs_unmodified", "deterministic"),
    "col2im_assign.py:Conv2DAssign": ("shape", "dtype", "inputs_unmodified", "deterministic"),
    "reused_output.py:conv2d": ("random", "exact", "shape", "dtype", "inputs_unmodified", "deterministic"),
    "nondeterministic.py:conv2d": ("random", "exact", "shape", "dtype", "inputs_unmodified", "results_kept"),
}


def _records(spec: str) -> list[dict]:
    impl = load_impl(str(PLANTED / spec), op="conv2d")
    return run_checks([impl], CASES, timeout=2.0 if spec.startswith("hang") else None)


@pytest.mark.parametrize("spec", sorted(BUGS))
def test_planted_bug_is_caught(spec):
    recs = _records(spec)
    check, direction, status = BUGS[spec]
    hits = [r for r in recs if (r["check"], r["direction"], r["status"]) == (check, direction, status)]
    assert hits, f"{spec}: no {status} {check}/{direction}; got " + \
        str(sorted({(r['check'], r['direction'], r['status']) for r in recs if r['status'] != 'passed'}))
    for r in hits:
        assert r["repro"].startswith("convbench check --op conv2d --impl ") and "--case " in r["repro"]
        assert r["message"]
    for quiet in SILENT.get(spec, ()):
        loud = [r for r in recs if r["check"] == quiet and r["status"] != "passed" and r["status"] != "unsupported"]
        assert not loud, f"{spec}: check {quiet} fired: {loud[0]['message']}"


def test_a_hang_costs_a_few_timeouts_not_one_per_case():
    recs = _records("hang.py:conv2d")
    assert sum(r["status"] == "timeout" for r in recs) == 2
    skipped = [r for r in recs if r["status"] == "skipped"]
    assert skipped and all("after 2 timeouts" in r["message"] for r in skipped)


def test_a_crash_is_reported_with_the_signal_and_the_run_goes_on():
    recs = _records("abort.py:conv2d")
    crashed = [r for r in recs if r["status"] == "crashed"]
    assert 1 <= len(crashed) <= 3 and "SIGABRT" in crashed[0]["message"]


def test_random_failures_are_shrunk():
    recs = _records("col2im_assign.py:Conv2DAssign")
    shrunk = [r for r in recs if r["status"] == "failed" and "shrunk" in r["message"]]
    assert shrunk
    desc = shrunk[0]["message"].rsplit("still fails on ", 1)[1].rstrip(")")
    assert desc in shrunk[0]["repro"]


def test_report_names_indices_expected_got_bound_and_repro():
    text = format_report(_records("mean_bias.py:Conv2DMeanBias"))
    assert "grad_bias" in text and "first bad" in text
    assert "expected" in text and "got" in text and "bound" in text and "repro: convbench check" in text
    assert "FAILED" in text


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("spec, check, direction", [
    ("mean_bias.py:Conv2DMeanBias", "random", "grad_bias"),
    ("float64_out.py:conv2d", "dtype", "forward"),
    ("abort.py:conv2d", "shape", "forward"),
])
def test_cli_exits_1_and_writes_records(tmp_path, spec, check, direction):
    out = tmp_path / "out.json"
    res = _cli("check", "--impl", str(PLANTED / spec), "--suite", "edge", "--json", str(out))
    assert res.returncode == 1, res.stderr
    recs = json.loads(out.read_text())
    assert set(recs[0]) == {"impl", "op", "case", "direction", "check", "status", "max_abs_err", "err_ratio",
                            "tolerance", "message", "repro", "worker", "machine"}
    assert any(r["check"] == check and r["direction"] == direction and r["status"] != "passed" for r in recs)
    assert "repro:" in res.stdout


def test_cli_timeout_flag_turns_a_hang_into_timeouts(tmp_path):
    out = tmp_path / "out.json"
    res = _cli("check", "--impl", str(PLANTED / "hang.py:conv2d"), "--suite", "edge", "--timeout", "1", "--json", str(out))
    assert res.returncode == 1
    recs = json.loads(out.read_text())
    assert sum(r["status"] == "timeout" for r in recs) == 2


@pytest.mark.parametrize("spec", ["correct.py:conv2d", "correct.py:Conv2D", "correct.py:TinyConv2d"])
def test_correct_student_code_passes_the_cli(tmp_path, spec):
    out = tmp_path / "out.json"
    res = _cli("check", "--impl", str(PLANTED / spec), "--suite", "edge", "--suite", "random", "--json", str(out))
    assert res.returncode == 0, res.stdout[-3000:]
    recs = json.loads(out.read_text())
    assert sum(r["status"] == "passed" for r in recs) > 100
    assert {r["status"] for r in recs} <= {"passed", "unsupported"}


def test_cli_relative_spec_from_another_directory(tmp_path):
    res = _cli("check", "--impl", "planted/correct.py:conv2d", "--case", "n2c3h7w7o4k3p1", cwd=PLANTED.parent)
    assert res.returncode == 0, res.stdout + res.stderr
