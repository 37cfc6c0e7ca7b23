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
