"""The runner, isolation, bounds, report and conformance API, with fakes."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from convbench.cases import Case, conv, get_suite
from convbench.cases.catalogue.random_conv2d import random_conv2d_params
from convbench.measure.isolate import Worker, run_isolated
from convbench.registry import Implementation, ImplInfo, get_impl
from convbench.verify import check_impl, format_report, parametrize_with_checks, run_checks
from convbench.verify.shrink import shrink_case

SMALL = [conv("a", n=2, c=3, h=6, w=5, o=4, k=3, padding=1), conv("b", n=1, c=2, h=5, w=7, o=2, kh=2, kw=3, stride=2)]


class Fake(Implementation):
    """The reference in the input dtype, with a hook to break it."""

    def __init__(self, name="fake", break_fwd=None, **info):
        from convbench.ops import get_op

        self.op = get_op("conv2d")
        self.break_fwd = break_fwd
        self.info = ImplInfo(op="conv2d", name=name, spec=f"<object {name}>", **info)

    def forward(self, p, x, w, b):
        y = self.op.reference_forward(p, x, w, b).astype(x.dtype)
        return self.break_fwd(y) if self.break_fwd else y

    def backward(self, p, dy, x, w):
        return tuple(None if g is None else g.astype(x.dtype) for g in self.op.reference_backward(p, dy, x, w))


def _raise(y):
    raise RuntimeError("boom")


def test_correct_fake_passes_every_check():
    recs = run_checks([Fake()], SMALL)
    assert recs and all(r["status"] == "passed" for r in recs)


def test_exception_becomes_error_with_message():
    recs = run_checks([Fake(break_fwd=_raise)], SMALL[:1])
    errs = [r for r in recs if r["status"] == "error"]
    assert errs and all("RuntimeError: boom" in r["message"] for r in errs)
    assert all(r["direction"] == "forward" for r in errs)
    assert any(r["status"] == "passed" and r["direction"].startswith("grad") for r in recs)


def test_report_gives_one_entry_to_the_checks_a_case_failed_alike():
    recs = run_checks([Fake(break_fwd=_raise)], SMALL[:1], checks=["shape", "dtype", "random"])
    text = format_report(recs)
    assert text.count("RuntimeError: boom") == 1 and "checks=shape,dtype,random" in text
    assert "FAILED: 3 of" in text   # still counted per check
    # the same failure in another case is told once more only as a count and the case's id
    text = format_report(run_checks([Fake(break_fwd=_raise)], SMALL, checks=["shape", "dtype"]))
    assert text.count("RuntimeError: boom") == 1 and text.count("checks=shape,dtype") == 1
    assert "the same in 2 cases: a, b" in text
    # failures that differ stay apart
    text = format_report(run_checks([Fake(break_fwd=lambda y: y + 1)], SMALL, checks=["random"]))
    assert text.count("check=random") == 2 and "the same in" not in text


def test_error_inside_a_library_names_the_implementations_own_line_too():
    def pad_wrong(y):
        return np.pad(y, ((0, 0), (0, 0), (1, 2, 3), (0, 0)))   # an invalid pad width, raised in NumPy

    recs = run_checks([Fake(break_fwd=pad_wrong)], SMALL[:1], checks=["shape"])
    msg = recs[0]["message"]
    assert recs[0]["status"] == "error" and "numpy" in msg.split("(at ", 1)[1].split(",")[0]
    assert f", from {__file__}:" in msg
    # raised in the implementation's own code: its line only
    msg = run_checks([Fake(break_fwd=_raise)], SMALL[:1], checks=["shape"])[0]["message"]
    assert f"(at {__file__}:" in msg and ", from" not in msg


def test_unavailable_is_skipped_and_unsupported_is_not_failed():
    class Gone(Fake):
        def availability(self):
            return "no such device"

    recs = run_checks([Gone(name="gone")], SMALL)
    assert {r["status"] for r in recs} == {"skipped"} and recs[0]["message"] == "no such device"
    recs = run_checks([Fake(name="fwd_only", directions=frozenset({"forward"}), features=frozenset({"padding", "bias"}))], SMALL)
    un = [r for r in recs if r["status"] == "unsupported"]
    assert {r["direction"] for r in un} == {"backward", "forward"}  # case b needs stride and rectangular
    passed = [r for r in recs if r["status"] == "passed"]
    assert passed and {r["direction"] for r in passed} == {"forward"}  # case a's forward ran and passed
    assert not [r for r in recs if r["status"] in ("failed", "error")]


def test_nondeterministic_declared_is_not_held_to_bitwise_equality():
    noisy = Fake(name="noisy", deterministic=False, break_fwd=lambda y: y * np.float32(1 + np.random.rand() * 1e-7))
    recs = run_checks([noisy], SMALL[:1], checks=["deterministic", "random"])
    assert {r["status"] for r in recs if r["check"] == "deterministic"} == {"unsupported"}
    assert all(r["status"] == "passed" for r in recs if r["check"] == "random")


@pytest.mark.parametrize("check, bug", [
    ("nan", lambda y: np.nan_to_num(y)),
    ("dtype", lambda y: y.astype(np.float64)),
    ("shape", lambda y: y[..., :-1]),
    ("deterministic", lambda y: y + np.float32(np.random.rand() * 1e-6) * y),
    ("exact", lambda y: y + np.float32(1e-6) * y),
    ("layout", None),
])
def test_each_contract_check_fires_on_its_bug(check, bug):
    if check == "layout":
        class LayoutBug(Fake):
            def forward(self, p, x, w, b):
                y = super().forward(p, x, w, b)
                return y if x.flags.c_contiguous else y * 2  # BUG: reads strided input wrong
        impl = LayoutBug(name="layout_bug")
    else:
        impl = Fake(name=f"bug_{check}", break_fwd=bug)
    recs = run_checks([impl], SMALL[:1], checks=[check])
    assert any(r["status"] == "failed" and r["direction"] == "forward" for r in recs), recs


class _BackwardBug(Fake):
    """The reference backward, but gradient ``into`` computed from ``planted`` (``dy`` or ``x``)
    with its NaNs made zeros."""

    GRADS = ("grad_input", "grad_weight", "grad_bias")

    def __init__(self, name, planted, into):
        super().__init__(name=name)
        self.planted, self.into = planted, into

    def backward(self, p, dy, x, w):
        clean = super().backward(p, dy, x, w)
        args = {"dy": dy, "x": x}
        args[self.planted] = np.nan_to_num(args[self.planted])
        broken = super().backward(p, args["dy"], args["x"], w)
        return tuple(broken[i] if g == self.into else clean[i] for i, g in enumerate(self.GRADS))


@pytest.mark.parametrize("planted, into", [("dy", "grad_input"), ("dy", "grad_weight"), ("x", "grad_weight")])
def test_nan_check_fires_on_a_backward_that_loses_a_nan(planted, into):
    recs = run_checks([_BackwardBug("nan_lost", planted, into)], SMALL, checks=["nan"])
    bad = [r for r in recs if r["status"] == "failed"]
    assert {r["direction"] for r in bad} == {"backward"} and len(bad) == len(SMALL), recs
    for r in bad:   # named: the NaN that was lost, and the one gradient that lost it
        assert f"NaN at {planted}[" in r["message"] and f"did not reach {into}:" in r["message"]
        assert r["message"].count("did not reach") == 1


def test_nan_check_plants_each_input_in_its_own_call():
    # with one output channel every grad_weight element depends on dy's middle element as well as
    # on x's: planted in one call, dy's NaN would fill the elements where x's went missing
    case = conv("one_filter", n=1, c=2, h=5, w=5, o=1, k=3, padding=1)
    recs = run_checks([_BackwardBug("nan_lost", "x", "grad_weight")], [case], checks=["nan"])
    (bwd,) = [r for r in recs if r["direction"] == "backward"]
    assert bwd["status"] == "failed" and "NaN at x[0, 1, 2, 2] did not reach grad_weight: 9 of 9" in bwd["message"]


def test_nan_check_of_a_direction_does_not_depend_on_the_other_having_run():
    # the forward's NaN in x once stayed in the inputs the backward then got: a backward that
    # sanitises x failed only when the forward was checked first
    impl = _BackwardBug("nan_lost_x", "x", "grad_weight")
    from convbench.verify.checks import check_nan
    alone = check_nan(impl, SMALL[0], ["backward"])
    both = check_nan(impl, SMALL[0], ["forward", "backward"])
    assert [r["status"] for r in alone] == ["failed"] and [r["status"] for r in both] == ["passed", "failed"]
    assert alone[0]["message"] == both[1]["message"]
    assert check_nan(Fake(), SMALL[0], ["backward"])[0]["status"] == "passed"


def test_float16_accumulation_exceeds_the_bound_and_float32_does_not():
    im2col = get_impl("im2col")

    class Half(Fake):
        def forward(self, p, x, w, b):
            return im2col.forward(p, x.astype(np.float16), w.astype(np.float16), None if b is None else b.astype(np.float16)).astype(np.float32)

    cases = get_suite("edge")
    bad = run_checks([Half(name="half")], cases, checks=["random"])
    fwd = [r for r in bad if r["direction"] == "forward"]
    assert sum(r["status"] == "failed" for r in fwd) >= len(fwd) - 2  # 1x1 single-pixel cases may be exact
    good = run_checks([im2col, get_impl("stride_tricks"), get_impl("torch_cpu")], cases + get_suite("random"),
                      checks=["random"])
    assert max(r["err_ratio"] for r in good) < 0.5


def test_report_text():
    recs = run_checks([Fake(name="off", break_fwd=lambda y: y + 1)], SMALL[:1], checks=["random"])
    text = format_report(recs)
    assert "off" in text and "FAILED" in text and "first bad indices:\n    [0, 0, 0, 0]: expected" in text
    assert "repro:" in text and "bound" in text
    assert "OK" in format_report(run_checks([Fake()], SMALL[:1], checks=["shape"]))


def test_check_impl_by_name_and_by_descriptor():
    recs = check_impl("im2col", cases=["n2c3h7w7o4k3p1"], checks=["random"])
    assert recs and all(r["status"] == "passed" for r in recs)
    assert recs[0]["repro"] == "convbench check --op conv2d --impl im2col --case n2c3h7w7o4k3s1p1"


@parametrize_with_checks(["im2col", Fake(name="param_fake")], suite=SMALL[:1], checks=["random", "nan"])
def test_parametrize_with_checks(impl, check):
    check(impl)


def test_parametrize_check_raises_assertion_with_report():
    from convbench.verify.pytest import ConformanceCheck

    with pytest.raises(AssertionError, match="repro"):
        ConformanceCheck(SMALL[0], "random")(Fake(name="bad", break_fwd=lambda y: -y))


# --- isolation ------------------------------------------------------------------------------

def _sleep(s):
    time.sleep(s)
    return s


def test_worker_ok_error_timeout_crash_and_restart():
    with Worker() as wk:
        assert wk.call("os:getpid").ok
        pid = wk.call("os:getpid").value
        assert pid != os.getpid()
        r = wk.call("math:sqrt", -1.0)
        assert r.status == "error" and "ValueError" in r.message
        r = wk.call("time:sleep", 5, timeout=0.5)
        assert r.status == "timeout"
        r = wk.call("os:abort")
        assert r.status == "crashed" and "SIGABRT" in r.message
        r = wk.call("os:getpid")
        assert r.ok and r.value != pid and wk.starts == 3


def test_worker_loads_an_implementation_by_spec():
    with Worker("im2col", "conv2d") as wk:
        r = wk.call("convbench.verify.checks:run_check", SMALL[0], "random", ["forward"])
    assert r.ok and r.value[0]["status"] == "passed"


def test_run_isolated():
    assert run_isolated("math:hypot", 3.0, 4.0).value == 5.0
    assert run_isolated("os:_exit", 3).message.endswith("code 3")


# --- random suite and shrinking -------------------------------------------------------------

def test_random_suite_is_seeded_and_valid():
    a, b = get_suite("random"), get_suite("random")
    assert [c.descriptor for c in a] == [c.descriptor for c in b] and len(a) >= 30
    assert all("random" in c.tags for c in a)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6))
def test_no_false_alarm_on_hypothesis_cases(seed):
    import random

    p = random_conv2d_params(random.Random(seed))
    case = Case(id="h", params=p, dtype="float32")
    recs = run_checks([get_impl("im2col"), get_impl("stride_tricks")], [case], checks=["random", "exact", "nan"])
    assert all(r["status"] in ("passed", "unsupported") for r in recs), [r["message"] for r in recs if r["status"] != "passed"]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6))
def test_shrink_finds_a_smallest_failing_case(seed):
    import random

    p = random_conv2d_params(random.Random(seed))
    case = Case(id="h", params=p, tags=("random",))
    fails = lambda c: c.params.c >= 2 or c.params.stride[0] > 1  # noqa: E731
    if not fails(case):
        return
    small = shrink_case(case, fails)
    assert fails(small)
    q = small.params
    assert q.n == 1 and q.o == 1 and (q.c, q.stride[0]) in ((2, 1), (1, 2))
