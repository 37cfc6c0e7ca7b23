"""The verdict for people: value failures apart from contract failures, a line saying the values
were right when only the contract failed, and a warning when fewer than half of the cases ran."""
from __future__ import annotations

import numpy as np

from convbench.cases import conv, get_suite
from convbench.ops import get_op
from convbench.registry import Implementation, ImplInfo
from convbench.verify import format_report, run_checks
from convbench.verify.report import verdict_lines

CASES = [conv("a", n=2, c=3, h=6, w=5, o=4, k=3, padding=1), conv("b", n=1, c=2, h=5, w=7, o=2, k=3, stride=2),
         conv("c", n=1, c=2, h=5, w=5, o=2, k=3, bias=False)]


class Planted(Implementation):
    """The reference, returned as ``cast`` (float64 whatever it is given), shifted by ``shift`` or
    refusing what ``supports`` does not allow."""

    def __init__(self, name, cast=None, shift=0.0, supports=None):
        self.spec, self.cast, self.shift, self.supports = get_op("conv2d"), cast, shift, supports
        self.info = ImplInfo(op="conv2d", name=name, spec=f"<object {name}>")

    def unsupported(self, p, dtype, direction):
        if self.supports is not None and not self.supports(p):
            return "no padding parameter"
        return super().unsupported(p, dtype, direction)

    def forward(self, p, x, w, b):
        y = self.spec.reference_forward(p, x, w, b) + self.shift
        return y.astype(self.cast or x.dtype)

    def backward(self, p, dy, x, w):
        return tuple(None if g is None else g.astype(self.cast or x.dtype)
                     for g in self.spec.reference_backward(p, dy, x, w))


def test_values_right_and_only_the_dtype_wrong_is_said_so():
    recs = run_checks([Planted("f64", cast=np.float64)], CASES, checks=["shape", "dtype", "exact", "random"])
    text = format_report(recs)
    values = sum(r["status"] == "passed" and r["check"] in ("shape", "exact", "random") for r in recs)
    assert (f"f64: FAILED 6 contract checks; values right in all {values} checks; returns float64 for float32 "
            "inputs: check it at its precision with --dtype float64, or keep the input's dtype") in text
    assert "FAILED: 6 of" in text
    # the dtype failure of every case told once, with the count and the cases
    assert text.count("forward has dtype float64 for float32 inputs") == 1 and "the same in 3 cases: a, b, c" in text


def test_value_failures_are_told_apart_from_contract_failures():
    recs = run_checks([Planted("both", cast=np.float64, shift=1.0)], CASES, checks=["dtype", "random"])
    (line,) = verdict_lines(recs)
    assert line.startswith("both: FAILED 3 value checks (3 random) and 6 contract checks (returns float64 for")
    assert "values right" not in line


def test_fewer_than_half_of_the_cases_run_is_a_warning_with_the_reasons():
    edge = get_suite("edge")
    recs = run_checks([Planted("unpadded", supports=lambda p: p.pads == (0, 0, 0, 0) and p.stride == (1, 1)
                               and p.c <= 2)], edge, checks=["shape"])
    ran = len({r["case"] for r in recs if r["status"] == "passed"})
    assert 0 < 2 * ran < len(edge)
    text = format_report(recs)
    assert f"unpadded: only {ran} of {len(edge)} cases ran" in text and "x no padding parameter" in text
    assert text.rstrip().endswith("skipped or unsupported)")  # still OK: nothing failed
    # half or more ran: no warning
    recs = run_checks([Planted("all")], CASES, checks=["shape"])
    assert "cases ran" not in format_report(recs)


def test_nothing_checked_is_not_called_ok():
    # every case skipped (here: too big for the machine) once ended "OK: 0 checks passed"
    recs = run_checks([Planted("big")], [conv("huge", n=10**9, c=64, h=64, w=64, o=64, k=3)], checks=["shape"],
                      progress=False)
    text = format_report(recs)
    assert "OK" not in text.splitlines()[-1] and "NOTHING CHECKED" in text.splitlines()[-1], text
    assert "big: not checked: " in text, text
