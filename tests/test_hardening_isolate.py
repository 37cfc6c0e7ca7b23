"""Hardening of the isolated worker: process groups, death with the parent, deadlines on every
wait, a memory limit, long messages cut. Each test is a probe that misbehaved once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from convbench.measure import isolate
from convbench.measure.isolate import Worker

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_dead(pid: int, within: float = 15.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def read_pid(path: Path, within: float = 30.0) -> int:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"no pid in {path}")


def test_a_timeout_kills_what_the_implementation_forked(tmp_path):
    pidfile = tmp_path / "pid"
    with Worker() as wk:
        r = wk.call("_hostile:fork_and_hang", str(pidfile), timeout=3)
    assert r.status == "timeout"
    grandchild = read_pid(pidfile)
    assert wait_dead(grandchild), "the grandchild outlived the timeout"


def test_a_child_that_exits_while_a_grandchild_holds_the_pipe_is_crashed_at_once(tmp_path):
    pidfile = tmp_path / "pid"
    with Worker() as wk:
        t0 = time.monotonic()
        r = wk.call("_hostile:leave_a_pipe_holder_and_exit", str(pidfile), timeout=120)
        took = time.monotonic() - t0
    assert r.status == "crashed" and "code 3" in r.message, r
    assert took < 20, f"took {took:.0f} s to notice"
    assert wait_dead(read_pid(pidfile)), "the pipe holder was left running"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_worker_dies_with_its_parent(tmp_path, sig):
    pidfile = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from convbench.measure.isolate import Worker
        wk = Worker()
        pid = wk.call("os:getpid").value
        open({str(pidfile)!r}, "w").write(str(pid))
        wk.call("time:sleep", 1000)
    """)])
    try:
        worker = read_pid(pidfile, within=120)
        assert alive(worker)
        parent.send_signal(sig)
        parent.wait(30)
        assert wait_dead(worker), f"the worker outlived its parent's {sig.name}"
    finally:
        parent.kill()


def test_a_worker_runs_under_a_memory_limit(monkeypatch):
    limit = isolate.memory_limit()
    if limit is None:
        pytest.skip("no memory figure on this system")
    with Worker() as wk:
        r = wk.call("_hostile:allocate", 2 * limit, timeout=120)
        assert r.status == "error" and "MemoryError" in r.message, r
        assert wk.call("_hostile:allocate", 1 << 24, timeout=60).ok   # the same worker goes on


def test_the_memory_limit_leaves_torch_and_numpy_implementations_working():
    from convbench.cases import get_suite

    case = get_suite("edge", "conv2d")[0]
    for name in ("im2col", "torch_cpu"):
        with Worker(name, "conv2d") as wk:
            r = wk.call("convbench.verify.checks:run_check", case, "random", ["forward", "backward"], timeout=120)
        assert r.ok and all(x["status"] in ("passed", "unsupported") for x in r.value), (name, r)


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONVBENCH_WORKER_MEMORY", "2G")
    assert isolate.memory_limit() == 2 << 30
    monkeypatch.setenv("CONVBENCH_WORKER_MEMORY", "off")
    assert isolate.memory_limit() is None


def test_workers_side_by_side_share_the_memory_limit(monkeypatch):
    # each of two pool workers once got all the available memory: together they could take twice it
    monkeypatch.delenv("CONVBENCH_WORKER_MEMORY", raising=False)
    whole = isolate.memory_limit()
    if whole is None:
        pytest.skip("no memory figure on this system")
    with Worker(share=2) as wk:
        r = wk.call("convbench.measure.isolate:memory_limit", timeout=60)
    assert r.ok and 0.3 * whole < r.value < 0.6 * whole, (r, whole)
    monkeypatch.setenv("CONVBENCH_WORKER_SHARE", "4")
    assert isolate.memory_limit() < 0.3 * whole


def test_a_huge_exception_message_comes_back_cut_with_a_note():
    with Worker() as wk:
        r = wk.call("_hostile:raise_long", 5_000_000, timeout=60)
    assert r.status == "error" and len(r.message) < 10_000 and "more characters cut" in r.message


def test_a_case_larger_than_the_machine_is_skipped_with_that_reason_before_it_runs(capsys):
    from convbench.cli import main

    t0 = time.monotonic()
    assert main(["check", "--impl", "im2col", "--case", "n1000000c1000000h56w56o64k3"]) == 0
    out = capsys.readouterr().out
    assert "PiB" in out and "available" in out and "MemoryError" not in out
    assert time.monotonic() - t0 < 60


def test_the_memory_guard_uses_what_is_available(monkeypatch):
    from convbench.cases import parse_descriptor
    from convbench.measure import guard

    case = parse_descriptor("n1c3h8w8o4k3", "conv2d")
    need = guard.case_bytes(case)
    assert need == 4 * 2 * (3 * 64 + 4 * 27 + 4 + 4 * 36)   # inputs, output and their gradients
    monkeypatch.setenv("CONVBENCH_AVAILABLE_MEMORY", str(need))
    assert guard.too_big(case) is None
    monkeypatch.setenv("CONVBENCH_AVAILABLE_MEMORY", str(need - 1))
    assert "available" in guard.too_big(case)


@pytest.mark.parametrize("starts", ["fork_and_hang", "daemonize_and_hang"])
def test_what_the_implementation_started_dies_when_convbench_is_killed(tmp_path, starts):
    # SIGKILL of the command killed the worker at once (the kernel's parent-death signal), and the
    # watchdog thread that would have killed the group with it: a child, or a daemon in a session
    # of its own, ran on
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfds here: the watchdog alone, which dies with the worker")
    pidfile = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from convbench.measure.isolate import Worker
        Worker().call("_hostile:{starts}", {str(pidfile)!r}, timeout=1000)
    """)])
    try:
        started = read_pid(pidfile, within=120)
        assert alive(started)
        parent.kill()
        parent.wait(30)
        assert wait_dead(started), f"what {starts} started outlived convbench's SIGKILL"
    finally:
        parent.kill()


@pytest.mark.parametrize("fn,says", [("_hostile:raise_keyboard_interrupt", "KeyboardInterrupt raised inside the call"),
                                     ("sys:exit", "SystemExit(4) raised inside the call")])
def test_a_keyboard_interrupt_or_exit_raised_by_the_code_is_one_line_without_a_traceback(fn, says):
    with Worker() as wk:
        r = wk.call(fn, *([4] if fn == "sys:exit" else []), timeout=60)
        assert r.status == "error" and says in r.message and "Traceback" not in r.message, r
        assert wk.call("os:getpid", timeout=60).ok   # the worker goes on


def test_a_daemon_the_implementation_started_dies_with_a_timeout(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("subreapers are Linux's")
    pidfile = tmp_path / "pid"
    with Worker() as wk:
        r = wk.call("_hostile:daemonize_and_hang", str(pidfile), timeout=5)
    assert r.status == "timeout"
    assert wait_dead(read_pid(pidfile)), "a double-forked daemon in its own session outlived the timeout"

