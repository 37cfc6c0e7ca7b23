"""conv1d: parameters, validation, descriptors and the float64 reference against torch."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench import ParamError
from convbench.cases import get_suite, parse_descriptor, suite_names
from convbench.ops import get_op
from convbench.ops.conv1d import Conv1dParams

OP = get_op("conv1d")


def _torch(p: Conv1dParams, x, w, b, dy):
    """Forward and (dx, dw, db) from F.conv1d (its own padding modes) and autograd, in float64."""
    xt, wt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w))
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if b is not None else None
    y = F.conv1d(xt, wt, bt, stride=p.stride, padding=p.padding, dilation=p.dilation, groups=p.groups)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy())


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("fill", ["random", "exact"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in get_suite("edge", "conv1d")])
def test_reference_matches_torch(case, fill):
    p = case.params
    a = OP.make_inputs(p, "float64", fill=fill, seed=5)
    y = OP.reference_forward(p, a["x"], a["w"], a.get("b"))
    grads = OP.reference_backward(p, a["dy"], a["x"], a["w"])
    want = _torch(p, a["x"], a["w"], a.get("b"), a["dy"])
    assert y.shape == p.shapes()["y"]
    for name, got, ref in zip(("forward", *OP.grads), (y, *grads), want):
        if ref is None:
            assert got is None, name
            continue
        assert got.shape == ref.shape, name
        if fill == "exact":  # small integers: every sum is exact, so any order gives the same bits
            np.testing.assert_array_equal(got, ref, err_msg=name)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=name)


def test_accepts_exactly_what_torch_accepts():
    checked = 0
    for length, k, s, pad, d in itertools.product(range(1, 7), range(1, 5), range(1, 3),
                                                  (0, 1, 3, "same", "valid"), (1, 2)):
        kw = dict(stride=s, padding=pad, dilation=d)
        try:
            want = tuple(F.conv1d(torch.zeros(1, 2, length), torch.zeros(3, 2, k), **kw).shape)
        except RuntimeError:
            want = None
        try:
            got = Conv1dParams(n=1, c=2, l=length, o=3, k=k, **kw).shapes()["y"]
        except ParamError:
            got = None
        assert got == want, (length, k, kw)
        checked += 1
    assert checked == 480


W = np.zeros((4, 3, 3), np.float32)
X = np.zeros((2, 3, 10), np.float32)


@pytest.mark.parametrize("args, kwargs, error, pattern", [
    ((X, W), dict(stride=0), ParamError, r"stride must be positive \(>= 1\), got 0"),
    ((X, W), dict(stride=(1, 2)), ParamError, r"stride must be an int, got \(1, 2\)"),
    ((X, W), dict(dilation=0), ParamError, r"dilation must be positive \(>= 1\), got 0"),
    ((X, W), dict(padding=-1), ParamError, r"padding must be non-negative, got -1"),
    ((X, W), dict(padding="full"), ParamError, r"padding must be an int, 'same' or 'valid', got 'full'"),
    ((X, W), dict(padding="same", stride=2), ParamError, r"padding='same' needs stride 1, got stride=2"),
    ((X, W), dict(dilation=5), ParamError,
     r"kernel length with dilation \(11 = 5\*\(3-1\)\+1\) is larger than the padded input length \(10 = 10\+0\)"),
    ((X, np.zeros((4, 1, 3), np.float32)), dict(groups=3), ParamError, r"groups=3 must divide out_channels=4"),
    ((X, np.zeros((4, 2, 3), np.float32)), dict(), ParamError,
     r"input channels do not match the weight: x has C=3, w has in_channels/groups=2 with groups=1"),
    ((X, W), dict(groups=0), ParamError, r"groups must be a positive int, got 0"),
    ((X, W, np.zeros(3, np.float32)), dict(), ParamError, r"b must have shape \(out_channels,\) = \(4,\), got \(3,\)"),
    ((X, W, np.zeros(4)), dict(), TypeError, r"b must have the dtype of x \(float32\), got float64"),
    ((X, W.astype(np.float64)), dict(), TypeError, r"w must have the dtype of x \(float32\), got float64"),
    ((X.astype(np.int32), W), dict(), TypeError, r"x must have a floating dtype \(float32 or float64\), got int32"),
    ((X[0, 0], W), dict(), ParamError, r"x must be 3-dimensional \(N, C, L\), got 1 dimensions with shape \(10,\)"),
    ((X, W[0]), dict(), ParamError, r"w must be 3-dimensional"),
])
def test_argument_errors(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        convbench.conv1d(*args, **kwargs)


def test_groups_must_divide_in_channels():
    with pytest.raises(ParamError, match=r"groups=2 must divide in_channels=3"):
        Conv1dParams(n=1, c=3, l=10, o=4, k=3, groups=2)


def test_backward_dy_errors():
    with pytest.raises(ParamError, match=r"dy must have the output's shape \(2, 4, 8\), got \(2, 4, 10\)"):
        convbench.conv1d_backward(np.zeros((2, 4, 10), np.float32), X, W)


@pytest.mark.parametrize("text, pattern", [
    ("n1c2o3k3", r"conv1d descriptor needs key 'l'"),
    ("c2l9o3k3h4", r"key\(s\) h do not apply to conv1d"),
    ("c2l9o3k3psames2", r"padding='same' needs stride 1"),
    ("c2l9o3", r"conv1d descriptor needs key 'k'"),
])
def test_descriptor_errors(text, pattern):
    with pytest.raises(ParamError, match=pattern):
        parse_descriptor(text, "conv1d")


def test_descriptors():
    p = parse_descriptor("n4c8l100o16k5", "conv1d").params
    assert p == Conv1dParams(n=4, c=8, l=100, o=16, k=5)
    assert p.descriptor == "n4c8l100o16k5s1p0"
    q = parse_descriptor("n2c6l20o6k3psamed2g3nbdt64", "conv1d")
    assert q.dtype == "float64" and q.params.padding == "same" and not q.params.bias
    assert q.params.pads == (2, 2) and q.params.shapes()["y"] == (2, 6, 20)
    assert {"edge", "quick", "models", "scaling"} <= set(suite_names("conv1d"))
    for name in suite_names("conv1d"):
        for case in get_suite(name, "conv1d"):
            assert parse_descriptor(case.descriptor, "conv1d").params == case.params, case.id


def test_counts_features_and_pads():
    p = Conv1dParams(n=2, c=4, l=10, o=6, k=3, stride=2, padding=1, groups=2)  # out length 5
    assert p.out_l == 5
    assert p.flops("forward") == 2 * 2 * 6 * 2 * 3 * 5 + 2 * 6 * 5
    assert p.flops("backward") == 2 * (2 * 2 * 6 * 2 * 3 * 5) + 2 * 6 * 5
    assert p.bytes_min("forward", 4) == 4 * (2 * 4 * 10 + 6 * 2 * 3 + 6 + 2 * 6 * 5)
    assert p.accumulation_length("forward") == 2 * 3 + 1
    assert p.accumulation_length("grad_weight") == 2 * 5
    assert p.features() == {"stride", "padding", "groups", "bias"}
    assert Conv1dParams(n=1, c=1, l=8, o=1, k=4, padding="same", bias=False).pads == (1, 2)
    assert Conv1dParams(n=1, c=1, l=8, o=1, k=4, padding="same").features() >= {"asymmetric_padding", "padding_same"}
    with pytest.raises(ParamError, match=r"direction must be one of forward, backward, grad_input, grad_weight, grad_bias; got 'x'"):
        p.flops("x")


def test_public_api_round_trip():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 12)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y = convbench.conv1d(x, w, b, padding="same", dilation=2, groups=2)
    assert y.dtype == np.float32 and y.shape == (2, 6, 12)
    np.testing.assert_allclose(y, F.conv1d(*map(torch.from_numpy, (x, w, b)), padding="same", dilation=2,
                                           groups=2).numpy(), rtol=1e-5, atol=1e-5)
    dx, dw, db = convbench.conv1d_backward(np.ones_like(y), x, w, padding="same", dilation=2, groups=2)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (6,)
    assert convbench.conv1d_backward(np.ones_like(y), x, w, bias=False, padding="same", dilation=2, groups=2)[2] is None
