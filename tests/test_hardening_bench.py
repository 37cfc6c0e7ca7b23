"""Hardening of ``convbench bench``: it gives up on an implementation that keeps timing out (as
check does), ends by a run-wide deadline, and skips a case larger than the machine before making
any array. Each test is a probe that misbehaved once."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _fakes import MACHINE

from convbench import cli
from convbench.cases import parse_descriptor
from convbench.measure import bench
from convbench.measure.bench import run_bench
from convbench.registry import get_impl, load_impl

SLEEPER = '''
import time
from convbench.registry import Implementation, ImplInfo, register


class Sleeper(Implementation):
    def forward(self, p, x, w, b):
        time.sleep(600)

    def backward(self, p, dy, x, w):
        time.sleep(600)


sleeper = Sleeper()
register(sleeper, op="conv2d", name="NAME", replace=True)
'''
CASES = [parse_descriptor(d) for d in ("n1c2h5w5o2k3", "n1c2h6w6o2k3", "n1c2h7w7o2k3")]


def _sleeper(tmp_path, name="fake_sleeper"):
    f = tmp_path / "sleeper.py"
    f.write_text(SLEEPER.replace("NAME", name))
    return load_impl(f"{f}:sleeper")


def test_bench_gives_up_on_an_implementation_after_repeated_timeouts(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "MAX_ITEM_S", 0.3)
    recs = run_bench([_sleeper(tmp_path)], CASES, budget=None, progress=False, machine=MACHINE, timeout_grace=1.0)
    statuses = [r["status"] for r in recs]
    assert statuses.count("timeout") == bench.MAX_TIMEOUTS
    assert all(r["status"] == "skipped" and "after 2 timeouts of fake_sleeper" in r["reason"]
               for r in recs if r["status"] != "timeout")


def test_a_run_wide_deadline_ends_the_run_and_skips_what_is_left(tmp_path):
    t0 = time.monotonic()
    recs = run_bench([_sleeper(tmp_path, "fake_sleeper_late"), get_impl("im2col")], CASES, budget=None, progress=False,
                     machine=MACHINE, deadline=6.0)
    took = time.monotonic() - t0
    assert took < 40, took
    assert recs[0]["status"] == "timeout"   # stopped at the deadline, not after its own timeout
    rest = recs[1:]
    assert rest and all(r["status"] == "skipped" and "deadline passed" in r["reason"] for r in rest)


def test_a_case_larger_than_the_machine_is_skipped_before_any_array(monkeypatch):
    huge = parse_descriptor("n1000000c1000000h56w56o64k3")
    recs = run_bench([get_impl("im2col")], [huge], budget=None, progress=False, machine=MACHINE)
    assert [r["status"] for r in recs] == ["skipped", "skipped"]
    assert all("PiB" in r["reason"] and "available" in r["reason"] for r in recs)


def test_compacting_the_crossover_file_loses_no_line_appended_meanwhile(tmp_path, monkeypatch):
    """A bench appending while another run compacts: the append waits for the rewrite and lands
    in the new file (without the lock it went to the old one, replaced a moment later)."""
    import threading

    from convbench import store
    from impls import _crossover

    path = tmp_path / "crossover.jsonl"
    for i in range(50):
        store.append(path, {"op": "conv2d", "impl": f"i{i}", "descriptor": "d", "direction": "forward",
                            "dtype": "float32", "status": "ok", "t_median_s": 1.0}, fsync=False)
    real_read = store.read
    appended = threading.Event()

    def slow_read(p, **kw):   # the rewrite's read, with a concurrent append in the middle of it
        recs = real_read(p, **kw)
        threading.Thread(target=add_one).start()
        appended.wait(2)
        return recs

    def add_one():
        with _crossover._locked(path, __import__("fcntl").LOCK_SH):
            store.append(path, {"op": "conv2d", "impl": "late", "descriptor": "d", "direction": "forward",
                                "dtype": "float32", "status": "ok", "t_median_s": 2.0}, fsync=False)
        appended.set()

    monkeypatch.setattr(store, "read", slow_read)
    assert _crossover.compact_crossover(path, max_bytes=10)
    appended.wait(10)
    monkeypatch.setattr(store, "read", real_read)
    assert "late" in {r["impl"] for r in store.read(path)}


CLI = [sys.executable, "-m", "convbench.cli"]


def test_bench_deadline_on_the_command_line_ends_a_hanging_run(tmp_path):
    f = tmp_path / "sleeper.py"
    f.write_text(SLEEPER.replace("NAME", "fake_sleeper_cli"))
    t0 = time.monotonic()
    p = subprocess.run(CLI + ["bench", "--impl", f"{f}:sleeper", "--case", "n1c2h5w5o2k3", "--deadline", "20",
                              "--no-interleave"], capture_output=True, text=True, timeout=300)
    assert time.monotonic() - t0 < 60           # the deadline and a few process starts, not 600 s
    assert p.returncode == 1, p.stderr          # nothing measured, said, no traceback
    assert "timeout" in p.stdout and "deadline passed" in p.stdout and "Traceback" not in p.stderr
    assert "nothing was measured" in p.stderr


def test_bench_baseline_file_is_loaded_in_a_worker_and_its_failure_is_one_line(tmp_path):
    f = tmp_path / "exits.py"
    f.write_text("import os\nos._exit(3)\n")
    p = subprocess.run(CLI + ["bench", "--impl", "im2col", "--case", "n1c2h5w5o2k3", "--baseline", f"{f}:conv"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--baseline" in lines[0] and str(f) in lines[0], p.stderr


def test_an_unknown_baseline_name_is_said_as_the_baseline(capsys):
    # it once read "impl 'nosuch' is not a registered ...", naming no --baseline
    assert cli.main(["bench", "--impl", "im2col", "--case", "n1c2h5w5o2k3", "--baseline", "nosuch"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--baseline 'nosuch'" in line and "not a registered" in line, line


def test_bench_refuses_what_only_runs_here_on_a_cluster():
    # refused before any connection: the address need not exist
    p = subprocess.run(CLI + ["bench", "--impl", "im2col", "--deadline", "5", "--executor", "dask://127.0.0.1:9"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "--executor dask://127.0.0.1:9" in p.stderr and "--deadline" in p.stderr and "Traceback" not in p.stderr


TERMINATES = f'''
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent / "planted_exec")!r})
from _conv import conv2d as _conv2d


def conv2d(x, w, b=None, stride=1, padding=0):
    # what a batch system does at its time limit: SIGTERM to the command (from here: its worker)
    if x.shape[1] == 3:
        os.kill(os.getppid(), signal.SIGTERM)
    return _conv2d(x, w, b, stride, padding)
'''


def test_sigterm_keeps_the_records_measured_so_far_and_says_so(tmp_path):
    # records wait for their case's interleaved rounds: SIGTERM (a batch system's time limit) once
    # ended the command at once, and the items measured on the unfinished case were lost
    f = tmp_path / "terminates.py"
    f.write_text(TERMINATES)
    out = tmp_path / "b.jsonl"
    p = subprocess.run(CLI + ["bench", "--impl", "im2col", "--impl", f"{f}:conv2d", "--case", "n1c2h6w6o2k3",
                              "--case", "n1c3h6w6o2k3", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 143, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and lines and "terminated" in lines[-1] and str(out) in lines[-1], p.stderr
    recs = [__import__("json").loads(line) for line in out.read_text().splitlines()]
    got = {(r["case"][:12], r["impl"], r["direction"], r["status"]) for r in recs}
    # the first case whole; of the second, what im2col measured before the signal came
    assert {("n1c2h6w6o2k3", "terminates_conv2d", "forward", "ok"), ("n1c3h6w6o2k3", "im2col", "forward", "ok"),
            ("n1c3h6w6o2k3", "im2col", "backward", "ok")} <= got, got


def test_sigterm_to_check_writes_and_reports_the_finished_checks(tmp_path):
    # check.json was written only at the end: Ctrl-C or SIGTERM lost every check already made
    f = tmp_path / "terminates.py"
    f.write_text(TERMINATES)
    out = tmp_path / "check.json"
    p = subprocess.run(CLI + ["check", "--impl", f"{f}:conv2d", "--jobs", "1", "--case", "n1c2h6w6o2k3",
                              "--case", "n1c3h6w6o2k3", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 143, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and "terminated" in lines[-1] and str(out) in lines[-1], p.stderr
    recs = __import__("json").loads(out.read_text())
    cases = {r["case"][:12] for r in recs}
    fwd = [r["status"] for r in recs if r["direction"] == "forward"]
    assert cases == {"n1c2h6w6o2k3"} and fwd and set(fwd) == {"passed"}, recs
    # the report of what was checked, said to be partial
    assert "finished before the interruption" in p.stdout and "9 checks passed" in p.stdout, p.stdout


def test_sigterm_to_pooled_check_keeps_what_finished(tmp_path):
    # through the pool of workers (--jobs 2) the finished units are what is kept
    f = tmp_path / "terminates.py"
    f.write_text(TERMINATES)
    out = tmp_path / "check.json"
    p = subprocess.run(CLI + ["check", "--impl", f"{f}:conv2d", "--jobs", "2", "--case", "n1c2h6w6o2k3",
                              "--case", "n1c2h7w7o2k3", "--case", "n1c3h6w6o2k3", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 143 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    if out.exists():   # units that finished before the signal: written, and said to be partial
        recs = __import__("json").loads(out.read_text())
        assert recs and f"the {len(recs)} check records finished" in p.stdout
        assert {r["status"] for r in recs if r["direction"] == "forward"} <= {"passed"}, recs
    else:
        assert "finished before the interruption" not in p.stdout


def test_an_interrupted_bench_that_wrote_nothing_does_not_claim_records_were_kept(tmp_path):
    # it once said "the records written to b.jsonl so far are kept" of a file never created
    f = tmp_path / "terminates.py"
    f.write_text(TERMINATES)
    out = tmp_path / "b.jsonl"
    p = subprocess.run(CLI + ["bench", "--impl", f"{f}:conv2d", "--case", "n1c3h6w6o2k3", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 143, (p.returncode, p.stderr)
    last = p.stderr.strip().splitlines()[-1]
    assert not out.exists() and f"nothing was written to {out}" in last and "kept" not in last, p.stderr
