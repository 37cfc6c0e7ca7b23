"""Hardening: messages that say what is wrong, in the user's terms. Each test is a probe that
misbehaved once."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

import convbench
from convbench.verify import run_checks

CONV = textwrap.dedent('''
    import numpy as np

    def _conv(x, w, b=None):
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        y = np.zeros((n, o, h - kh + 1, wd - kw + 1), x.dtype)
        for i in range(kh):
            for j in range(kw):
                y += np.einsum("nchw,oc->nohw", x[:, :, i:i + y.shape[2], j:j + y.shape[3]], w[:, :, i, j])
        if b is not None:
            y += b[None, :, None, None]
        return y

    def as_list(x, w, b=None):
        return _conv(x, w, b).tolist()

    def as_tensor(x, w, b=None):
        import torch
        return torch.from_numpy(_conv(x, w, b))

    def doubles_x_first(x, w, b=None):
        x *= 2
        return _conv(x, w, b)
''')


@pytest.fixture()
def odd(tmp_path):
    f = tmp_path / "odd.py"
    f.write_text(CONV)
    return f


def _failed(recs, check):
    return [r for r in recs if r["check"] == check and r["status"] == "failed"]


@pytest.mark.parametrize("fn,says", [("as_list", "forward: returned a list, not an ndarray"),
                                     ("as_tensor", "forward: returned a torch.Tensor, not an ndarray")])
def test_a_numpy_implementation_returning_something_else_fails_the_type_check(odd, fn, says):
    if fn == "as_tensor":
        pytest.importorskip("torch")
    recs = convbench.check_impl(f"{odd}:{fn}", cases=["n1c2h5w5o2k3"], isolate=False)
    (bad,) = _failed(recs, "dtype")
    assert says in bad["message"]


def test_expected_values_come_from_the_inputs_as_they_were_before_the_call(odd):
    recs = convbench.check_impl(f"{odd}:doubles_x_first", cases=["n1c2h5w5o2k3nb"], isolate=False)
    assert _failed(recs, "inputs_unmodified")
    (rnd,) = _failed(recs, "random")
    exp, got = map(float, re.search(r"expected (\S+), got ([^,;\s]+)", rnd["message"]).groups())
    assert got == pytest.approx(2 * exp, rel=1e-5)   # the reference of the untouched x, not of 2x


def test_check_impl_takes_one_descriptor_as_a_string():
    recs = convbench.check_impl("im2col", cases="n1c3h6w6o2k3", checks=["shape"])
    assert recs and all(r["case"].startswith("n1c3h6w6o2k3") or "n1c3h6w6o2k3" in r["repro"] for r in recs)
    assert all(r["status"] == "passed" for r in recs)


def test_an_impossible_padding_is_a_param_error_naming_it():
    x = np.ones((1, 1, 4, 4), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(convbench.ParamError, match="padding=1000000000"):
        convbench.conv2d(x, w, padding=10**9)
    with pytest.raises(convbench.ParamError, match="padding=1000000000"):
        convbench.conv2d_backward(np.ones((1, 1, 2, 2), np.float32), x, w, padding=10**9)
    assert convbench.conv2d(x, w, padding=1).shape == (1, 1, 4, 4)


def test_a_long_error_message_is_cut_with_a_note(tmp_path):
    f = tmp_path / "loud.py"
    f.write_text("def conv(x, w, b=None):\n    raise ValueError('y' * 5_000_000)\n")
    for isolate in (False, True):
        recs = run_checks([convbench.load_impl(f"{f}:conv")], convbench.cases.cases_from(
            "conv2d", None, ["n1c2h5w5o2k3"]), isolate=isolate, checks=["random"], shrink=False)
        assert recs and all(len(r["message"]) < 5000 and "more characters cut" in r["message"]
                            for r in recs if r["status"] == "error"), isolate


@pytest.mark.parametrize("text,says", [
    ("n-1c3h8w8o4k3", "key 'n' (position 0) needs a whole number >= 0, got '-1'"),
    ("n1c3h8w8o4k3s-2", "key 's' (position 12) needs a whole number >= 0, got '-2'"),
    ("n1c3h8w8o4k1.5", "numbers are whole, got '1.5'"),
    ("n1c3h8w8o4k", "key 'k' (position 10) needs a whole number >= 0, got nothing"),
])
def test_a_bad_descriptor_value_is_named_on_one_line(text, says):
    from convbench.cases import parse_descriptor

    with pytest.raises(convbench.ParamError) as ei:
        parse_descriptor(text)
    assert says in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("spec,says", [("os:nosuch", "'os' has no 'nosuch'; it has "),
                                       ("os:getpidd", "did you mean 'getpid'")])
def test_a_missing_object_is_said_in_a_short_line(spec, says, capsys):
    from convbench.cli import main

    assert main(["check", "--impl", spec, "--case", "n1c2h5w5o2k3"]) == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert says in line and len(line) < 300 and "ParamError" not in line


def test_an_implementation_that_clips_its_input_in_place_fails_its_values_too():
    from pathlib import Path

    spec = str(Path(__file__).parent / "planted" / "clip_inplace.py") + ":conv2d"
    recs = convbench.check_impl(spec, suite="edge", isolate=False,
                                checks=["random", "inputs_unmodified"], shrink=False)
    failed = {(r["case"], r["check"]) for r in recs if r["status"] == "failed"}
    assert ("basic.3x3", "inputs_unmodified") in failed and ("basic.3x3", "random") in failed
