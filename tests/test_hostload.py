"""Hypervisor steal from /proc/stat."""
from __future__ import annotations

from convbench.measure.hostload import cpu_times, steal_pct


def test_steal_is_the_share_of_cpu_time_stolen(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n")
    before = cpu_times(stat)
    assert before == (35, 1000)
    stat.write_text("cpu  150 0 60 900 10 0 5 75 0 0\n")
    assert steal_pct(before, cpu_times(stat)) == 20.0  # 40 of 200 jiffies
    assert steal_pct(before, before) is None  # no time passed
    assert steal_pct(None, before) is None


def test_no_steal_field_or_no_file_reads_as_unknown(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4\n")
    assert cpu_times(stat) is None
    assert cpu_times(tmp_path / "missing") is None


def test_others_share_is_the_busy_time_this_process_did_not_use(tmp_path, monkeypatch):
    from convbench.measure import hostload

    monkeypatch.setattr(hostload.os, "sysconf", lambda name: 100)
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\n")
    before = hostload.busy_times(stat)
    assert before == (1.9, 10.0)                      # 190 of 1000 jiffies neither idle nor I/O wait
    stat.write_text("cpu  250 0 60 830 10 0 5 45 0 0\n")   # 200 jiffies: 170 busy (10 of them stolen)
    after = hostload.busy_times(stat)
    assert hostload.others_pct(before, after, own_s=0.7) == 50.0   # 1.7 s busy, 0.7 s ours
    assert hostload.others_pct(before, after, own_s=1.7) == 0.0
    assert hostload.others_pct(before, after, own_s=5.0) == 0.0    # clamped: our threads' time rounds up
    assert hostload.others_pct(before, before, own_s=0.0) is None
    assert hostload.others_pct(None, after, own_s=0.0) is None


def test_a_busy_neighbour_shows_in_the_load_since_a_mark():
    """Found on a fresh VM: torch_cpu timed beside the test suite ran 5-40x slower (its OpenMP
    threads waiting on each other), and nothing in the record said the machine was busy."""
    import subprocess
    import sys
    import time

    from convbench.measure import hostload

    if hostload.busy_times() is None:
        import pytest
        pytest.skip("no /proc/stat here")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)   # the neighbour up and running
        mark = hostload.load_mark()
        time.sleep(0.6)   # this process idle, the neighbour spinning
        seen = hostload.load_since(mark)
    finally:
        busy.kill()
        busy.wait()
    assert seen["others_pct"] > hostload.OTHERS_HEAVY_PCT
    assert set(seen) == {"steal_pct", "others_pct"}
