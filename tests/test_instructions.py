"""Instruction counts under valgrind: repeatable to 0.5 %, and a clear message where valgrind is missing."""
from __future__ import annotations

import shutil

import pytest

from convbench.cases import parse_descriptor
from convbench.cli import main
from convbench.measure.instructions import VALGRIND_HINT, count_instructions, read_total


def test_read_total_takes_callgrinds_totals_line():
    assert read_total("events: Ir\nfn=foo\n1 5\nsummary: 1234\ntotals: 1234\n") == 1234
    with pytest.raises(ValueError, match="no totals"):
        read_total("events: Ir\n")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_two_counts_of_one_call_agree_within_half_a_percent_and_see_more_work():
    small, larger = parse_descriptor("n1c2h6w6o2k3"), parse_descriptor("n2c8h16w16o8k3")
    a, b = count_instructions("im2col", small, "forward"), count_instructions("im2col", small, "forward")
    assert a > 1000 and abs(a - b) / a < 0.005
    assert count_instructions("im2col", larger, "forward") > a * 2  # 64x the arithmetic: the count sees the work


def test_without_valgrind_the_metric_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["bench", "--impl", "im2col", "--case", "n1c2h6w6o2k3", "--metric", "instructions"]) == 2
    assert VALGRIND_HINT.split(":")[0] in capsys.readouterr().err
