"""max_pool2d and avg_pool2d: parameters, validation, descriptors and the float64 references against torch."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench import ParamError
from convbench.cases import get_suite, parse_descriptor
from convbench.ops import get_op
from convbench.ops.avg_pool2d import AvgPool2dParams
from convbench.ops.max_pool2d import MaxPool2dParams

MAX, AVG = get_op("max_pool2d"), get_op("avg_pool2d")


def _torch_kwargs(p) -> dict:
    kw = dict(kernel_size=(p.kh, p.kw), stride=p.stride, padding=p.padding, ceil_mode=p.ceil_mode)
    if isinstance(p, MaxPool2dParams):
        kw["dilation"] = p.dilation
    else:
        kw.update(count_include_pad=p.count_include_pad, divisor_override=p.divisor_override)
    return kw


def _torch(p, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward and grad_input from torch float64 autograd."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    fn = F.max_pool2d if isinstance(p, MaxPool2dParams) else F.avg_pool2d
    y = fn(xt, **_torch_kwargs(p))
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy()


def _ours(spec, p, x, dy):
    return spec.reference_forward(p, x), spec.reference_backward(p, dy, x)[0]


def _edge(op: str):
    return [pytest.param(c, id=c.id) for c in get_suite("edge", op)]


# --- the references against torch ------------------------------------------------------------

@pytest.mark.parametrize("fill", ["random", "exact"])
@pytest.mark.parametrize("case", _edge("max_pool2d"))
def test_max_reference_matches_torch(case, fill):
    p = case.params
    inp = MAX.make_inputs(p, "float64", fill=fill, seed=3)
    y, dx = _ours(MAX, p, inp["x"], inp["dy"])
    ty, tdx = _torch(p, inp["x"], inp["dy"])
    assert y.shape == ty.shape == p.shapes()["y"]
    # a maximum selects one element, so the values and routed gradients are exactly torch's
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


@pytest.mark.parametrize("fill", ["random", "exact"])
@pytest.mark.parametrize("case", _edge("avg_pool2d"))
def test_avg_reference_matches_torch(case, fill):
    p = case.params
    if fill == "exact" and AVG.exact_magnitude(p, "float64") == 0:
        with pytest.raises(ParamError, match=r"no exact fill exists"):
            AVG.make_inputs(p, "float64", fill=fill)
        fill = "random"
    inp = AVG.make_inputs(p, "float64", fill=fill, seed=3)
    y, dx = _ours(AVG, p, inp["x"], inp["dy"])
    ty, tdx = _torch(p, inp["x"], inp["dy"])
    assert y.shape == ty.shape == p.shapes()["y"]
    np.testing.assert_allclose(y, ty, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dx, tdx, rtol=1e-13, atol=1e-13)


def test_edge_suites_cover_what_the_issue_lists():
    mx = [c.params for c in get_suite("edge", "max_pool2d")]
    av = [c.params for c in get_suite("edge", "avg_pool2d")]

    def past_edge(p):  # a ceil_mode window reaching past the padded input
        (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dil
        oh, ow = p.out_hw
        return ((oh - 1) * sh + dh * (p.kh - 1) + 1 > p.h + 2 * ph
                or (ow - 1) * sw + dw * (p.kw - 1) + 1 > p.w + 2 * pw)

    for ps in (mx, av):
        assert any(p.ceil_mode and past_edge(p) for p in ps)
        assert any(p.stride[0] < p.kh for p in ps)  # overlapping windows
        assert any(p.padding[0] == p.kh // 2 > 0 for p in ps)  # padding at its maximum
        assert any(p.ceil_mode and p.out_hw[0] < -(-(p.h + 2 * p.padding[0] - p.kh) // p.stride[0]) + 1
                   for p in ps)  # PyTorch's last-window rule dropped a window
    assert any(p.dilation != (1, 1) for p in mx)
    assert {p.count_include_pad for p in av if any(p.padding)} == {True, False}
    assert any(p.divisor_override is not None for p in av)
    assert any(p.ceil_mode and past_edge(p) and any(p.padding) and not p.count_include_pad for p in av)


def test_exact_fill_puts_ties_in_max_pool_windows():
    case = next(c for c in get_suite("edge", "max_pool2d") if "ties" in c.tags)
    p = case.params
    x = MAX.make_inputs(p, "float64", fill="exact")["x"]
    win = x[:, :, :p.kh * (p.h // p.kh), :p.kw * (p.w // p.kw)].reshape(p.n, p.c, p.h // p.kh, p.kh, p.w // p.kw, p.kw)
    win = win.transpose(0, 1, 2, 4, 3, 5).reshape(-1, p.kh * p.kw)
    tied = (win == win.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert tied.mean() > 0.2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_fill_has_no_ties_in_any_plane(dtype):
    p = MaxPool2dParams(n=2, c=8, h=300, w=200, kh=3, kw=3, stride=(1, 1))
    x = MAX.make_inputs(p, dtype, fill="random", seed=1)["x"]
    assert x.dtype == dtype
    for plane in x.reshape(16, -1):
        assert np.unique(plane).size == plane.size
    assert 1.0 < np.abs(x).max() <= 2.0 and abs(float(x.mean())) < 1e-12
    assert not np.array_equal(x[0, 0], x[0, 1])


def test_max_gradient_goes_to_first_maximum():
    p = MaxPool2dParams(n=1, c=1, h=4, w=4, kh=2, kw=2)
    x = np.ones((1, 1, 4, 4))
    dx = MAX.reference_backward(p, np.ones((1, 1, 2, 2)), x)[0]
    want = np.zeros((4, 4))
    want[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], want)
    np.testing.assert_array_equal(dx, _torch(p, x, np.ones((1, 1, 2, 2)))[1])


@pytest.mark.parametrize("pattern", [[[1.0, np.nan], [np.nan, 2.0]], [[np.nan, 5.0], [7.0, 1.0]],
                                     [[3.0, 3.0], [np.inf, np.nan]]])
def test_max_nan_propagates_as_torch(pattern):
    x = np.array(pattern, np.float64).reshape(1, 1, 2, 2)
    x = np.tile(x, (1, 1, 2, 3))  # several windows, overlapping ones too
    p = MaxPool2dParams(n=1, c=1, h=4, w=6, kh=2, kw=2, stride=(1, 1))
    dy = np.arange(1.0, 1.0 + np.prod(p.shapes()["dy"])).reshape(p.shapes()["dy"])
    y, dx = _ours(MAX, p, x, dy)
    ty, tdx = _torch(p, x, dy)
    assert np.isnan(y).any()
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


def test_max_window_missing_the_input_is_minus_inf_without_gradient():
    # dilation 3 with padding 1 on a 2x2 input: window taps at -1 and 2 both miss it. torch's forward
    # agrees; its backward scatters through an out-of-range index (it corrupts memory), so it is not
    # compared here.
    p = MaxPool2dParams(n=1, c=1, h=2, w=2, kh=2, kw=2, stride=(1, 1), padding=(1, 1), dilation=(3, 3))
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y, dx = _ours(MAX, p, x, np.ones(p.shapes()["dy"]))
    with torch.no_grad():
        ty = F.max_pool2d(torch.from_numpy(x), **_torch_kwargs(p)).numpy()
    np.testing.assert_array_equal(y, ty)
    assert np.isneginf(y).all()
    assert not dx.any()


def test_all_minus_inf_window_routes_gradient_like_torch():
    p = MaxPool2dParams(n=1, c=1, h=2, w=2, kh=2, kw=2, padding=(1, 1))
    x = np.full((1, 1, 2, 2), -np.inf)
    dy = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    y, dx = _ours(MAX, p, x, dy)
    ty, tdx = _torch(p, x, dy)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


def test_avg_divisor_follows_torch_formula():
    # 8 wide, k3 s2 p1, ceil: the last window [7, 10) hangs past the padded edge 9
    p = AvgPool2dParams(n=1, c=1, h=1, w=8, kh=1, kw=3, stride=(1, 2), padding=(0, 1), ceil_mode=True)
    assert p.out_hw == (1, 5)
    assert [p.divisor(0, j) for j in range(5)] == [3, 3, 3, 3, 2]
    q = AvgPool2dParams(**{**p.asdict(), "count_include_pad": False})
    assert [q.divisor(0, j) for j in range(5)] == [2, 3, 3, 3, 1]
    r = AvgPool2dParams(**{**p.asdict(), "divisor_override": 5})
    assert {r.divisor(0, j) for j in range(5)} == {5}


# --- PyTorch's acceptance rule and output sizes, everywhere on a grid --------------------------

def _grid():
    for h, k, s, pad, d, ceil in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(3), (1, 2),
                                                   (False, True)):
        yield h, k, s, pad, d, ceil


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_accepts_exactly_what_torch_accepts(op):
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    checked = 0
    for h, k, s, pad, d, ceil in _grid():
        if op == "avg_pool2d" and d != 1:
            continue
        kw = dict(kernel_size=k, stride=s, padding=pad, ceil_mode=ceil)
        if op == "max_pool2d":
            kw["dilation"] = d
        try:
            want = tuple((F.max_pool2d if op == "max_pool2d" else F.avg_pool2d)(x[:, :, :h, :h], **kw).shape)
        except RuntimeError:
            want = None
        try:
            cls = MaxPool2dParams if op == "max_pool2d" else AvgPool2dParams
            p = cls(n=1, c=1, h=h, w=h, kh=k, kw=k, stride=s, padding=pad, ceil_mode=ceil,
                    **({"dilation": d} if op == "max_pool2d" else {}))
            got = p.shapes()["y"]
        except ParamError:
            got = None
        assert got == want, (op, kw, h)
        checked += 1
    assert checked > 400


# --- validation: every error names the argument and its value ---------------------------------

X = np.zeros((2, 3, 8, 8), np.float32)


@pytest.mark.parametrize("fn", [convbench.max_pool2d, convbench.avg_pool2d])
@pytest.mark.parametrize("kwargs, pattern", [
    (dict(kernel_size=0), r"kernel_size must be positive \(>= 1\), got 0"),
    (dict(kernel_size=(3, -1)), r"kernel_size must be positive \(>= 1\), got \(3, -1\)"),
    (dict(kernel_size="3"), r"kernel_size must be an int or a pair of ints, got '3'"),
    (dict(kernel_size=3, stride=0), r"stride must be positive \(>= 1\), got 0"),
    (dict(kernel_size=3, stride=(1, 2, 3)), r"stride must be an int or a pair of ints, got \(1, 2, 3\)"),
    (dict(kernel_size=3, padding=-1), r"padding must be non-negative, got -1"),
    (dict(kernel_size=3, padding=3),
     r"padding=3 must be at most half the kernel size in height \(kernel_size 3 -> at most 1\)"),
    (dict(kernel_size=(5, 2), padding=(2, 2)),
     r"padding=2 must be at most half the kernel size in width \(kernel_size 2 -> at most 1\)"),
    (dict(kernel_size=(9, 3)),
     r"output height would be 0: floor\(\(height 8 \+ 2\*padding 0 - dilation 1\*\(kernel_size 9-1\) - 1\) "
     r"/ stride 9\) \+ 1 = 0"),
    (dict(kernel_size=3, ceil_mode=2), r"ceil_mode must be True or False, got 2"),
])
def test_pool_argument_errors(fn, kwargs, pattern):
    with pytest.raises(ParamError, match=pattern):
        fn(X, **kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(kernel_size=3, dilation=0), r"dilation must be positive \(>= 1\), got 0"),
    (dict(kernel_size=3, dilation=4),
     r"output height would be 0: floor\(\(height 8 \+ 2\*padding 0 - dilation 4\*\(kernel_size 3-1\) - 1\) "
     r"/ stride 3\) \+ 1 = 0"),
    (dict(kernel_size=3, dilation=2, padding=2),
     r"padding=2 must be at most half the kernel size in height \(kernel_size 3 -> at most 1\)"),
])
def test_max_pool_argument_errors(kwargs, pattern):
    with pytest.raises(ParamError, match=pattern):
        convbench.max_pool2d(X, **kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(count_include_pad="no"), r"count_include_pad must be True or False, got 'no'"),
    (dict(divisor_override=0), r"divisor_override must be a non-zero int \(or None\), got 0"),
    (dict(divisor_override=2.5), r"divisor_override must be an int, got 2.5"),
])
def test_avg_pool_argument_errors(kwargs, pattern):
    with pytest.raises(ParamError, match=pattern):
        convbench.avg_pool2d(X, kernel_size=2, **kwargs)


@pytest.mark.parametrize("fn", [convbench.max_pool2d, convbench.avg_pool2d])
def test_pool_array_errors(fn):
    with pytest.raises(TypeError, match=r"x must have a floating dtype \(float32 or float64\), got int64"):
        fn(np.zeros((1, 1, 4, 4), np.int64), kernel_size=2)
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray, got list"):
        fn([[1.0]], kernel_size=2)
    with pytest.raises(ParamError, match=r"x must be 4-dimensional \(N, C, H, W\), got 2 dimensions with shape \(4, 4\)"):
        fn(np.zeros((4, 4)), kernel_size=2)


@pytest.mark.parametrize("fn", [convbench.max_pool2d_backward, convbench.avg_pool2d_backward])
def test_pool_backward_dy_errors(fn):
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ParamError, match=r"dy must have the output's shape \(1, 2, 2, 2\), got \(1, 2, 4, 4\)"):
        fn(x, x, kernel_size=2)
    with pytest.raises(TypeError, match=r"dy must have the dtype of x \(float32\), got float64"):
        fn(np.zeros((1, 2, 2, 2)), x, kernel_size=2)


@pytest.mark.parametrize("op, text, pattern", [
    ("max_pool2d", "n1h4w4k2", r"max_pool2d descriptor needs key 'c'"),
    ("avg_pool2d", "c1h4w4", r"avg_pool2d descriptor needs a kernel size: 'k' or both 'kh' and 'kw'"),
    ("avg_pool2d", "c1h4w4k2d2", r"key\(s\) d do not apply to avg_pool2d"),
    ("max_pool2d", "c1h4w4k2cip0", r"key\(s\) cip do not apply to max_pool2d"),
    ("avg_pool2d", "c1h4w4k2do0", r"divisor_override must be a non-zero int \(or None\), got 0"),
    ("avg_pool2d", "c1h4w4k2cip3", r"count_include_pad must be True or False, got 3"),
    ("max_pool2d", "c1h4w4k3p2", r"padding=2 must be at most half the kernel size"),
])
def test_descriptor_errors(op, text, pattern):
    with pytest.raises(ParamError, match=pattern):
        parse_descriptor(text, op)


def test_params_errors():
    with pytest.raises(ParamError, match=r"n must be a positive int, got 0"):
        MaxPool2dParams(n=0, c=1, h=4, w=4, kh=2, kw=2)
    with pytest.raises(ParamError, match=r"output width would be 0: ceil\(\(width 2 \+ 2\*padding 0 - dilation 1"
                                         r"\*\(kernel_size 3-1\) - 1\) / stride 1\) \+ 1 = 0"):
        AvgPool2dParams(n=1, c=1, h=4, w=2, kh=3, kw=3, stride=1, ceil_mode=True)
    with pytest.raises(ParamError, match=r"fill must be 'random' or 'exact', got 'ones'"):
        MAX.make_inputs(MaxPool2dParams(n=1, c=1, h=4, w=4, kh=2, kw=2), "float32", fill="ones")


def test_bad_direction_is_named():
    p = MaxPool2dParams(n=1, c=1, h=4, w=4, kh=2, kw=2)
    with pytest.raises(ParamError, match=r"direction must be one of forward, backward, grad_input; got 'grad_weight'"):
        p.flops("grad_weight")


# --- descriptors, sizes, counts ----------------------------------------------------------------

@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_every_catalogued_case_round_trips_its_descriptor(op):
    from convbench.cases import suite_names

    names = suite_names(op)
    assert {"edge", "quick", "models", "scaling"} <= set(names)
    for name in names:
        for case in get_suite(name, op):
            assert parse_descriptor(case.descriptor, op).params == case.params, case.id
            assert parse_descriptor(case.with_dtype("float64").descriptor, op).dtype == "float64"


def test_descriptors_read_as_documented():
    p = parse_descriptor("n8c64h112w112k3s2p1", "max_pool2d").params
    assert p == MaxPool2dParams(n=8, c=64, h=112, w=112, kh=3, kw=3, stride=2, padding=1)
    assert p.shapes()["y"] == (8, 64, 56, 56)
    assert parse_descriptor("c3h8w8k2", "avg_pool2d").params.stride == (2, 2)  # stride defaults to kernel
    q = parse_descriptor("n2c3h9w8kh3kw2sh2sw1ph1pw0ceilcip0do5", "avg_pool2d").params
    assert (q.kh, q.kw, q.stride, q.padding, q.ceil_mode, q.count_include_pad, q.divisor_override) == \
        (3, 2, (2, 1), (1, 0), True, False, 5)
    assert q.descriptor == "n2c3h9w8kh3kw2sh2sw1ph1pw0ceilcip0do5"
    assert parse_descriptor("c1h9w9k3d2ceil", "max_pool2d").params.descriptor == "n1c1h9w9k3s3p0d2ceil"


def test_counts_and_bytes():
    p = MaxPool2dParams(n=2, c=3, h=8, w=8, kh=3, kw=3, stride=2, padding=1)  # 4x4 out
    assert p.flops("forward") == 2 * 3 * 16 * 8
    assert p.flops("backward") == p.flops("grad_input") == 2 * 3 * 16 * 9
    assert p.bytes_min("forward", 4) == 4 * (2 * 3 * 64 + 2 * 3 * 16)
    assert p.bytes_min("backward", 8) == 8 * (2 * 3 * 16 + 2 * 3 * 64 + 2 * 3 * 64)
    assert p.accumulation_length("forward") == 1
    assert p.accumulation_length("grad_input") == 4  # each input is in at most 2x2 windows
    a = AvgPool2dParams(n=2, c=3, h=8, w=8, kh=3, kw=3, stride=2, padding=1)
    assert a.flops("forward") == 2 * 3 * 16 * 9
    assert a.flops("backward") == 2 * 3 * 16 * 10
    assert a.accumulation_length("forward") == 9
    assert AVG.exact_magnitude(a, "float32") == 0  # divisors 9, 6 and 4: dividing rounds
    assert AVG.exact_magnitude(AvgPool2dParams(n=1, c=1, h=8, w=8, kh=2, kw=2), "float32") == 8
    assert AVG.exact_magnitude(AvgPool2dParams(n=1, c=1, h=8, w=8, kh=3, kw=3, divisor_override=8), "float32") == 8
    ceil = AvgPool2dParams(n=1, c=1, h=5, w=5, kh=2, kw=2, ceil_mode=True)  # last window holds 1 element
    assert ceil.axis_divisors(0) == [2, 2, 1] and AVG.exact_magnitude(ceil, "float32") == 8
    padded = AvgPool2dParams(n=1, c=1, h=5, w=5, kh=2, kw=2, padding=1, ceil_mode=True)
    assert padded.axis_divisors(0) == [2, 2, 2]
    assert AvgPool2dParams(**{**padded.asdict(), "count_include_pad": False}).axis_divisors(1) == [1, 2, 2]


def test_features():
    assert MaxPool2dParams(n=1, c=1, h=8, w=8, kh=2, kw=2).features() == frozenset()
    f = MaxPool2dParams(n=1, c=1, h=9, w=9, kh=3, kw=3, stride=2, padding=1, dilation=(2, 1),
                        ceil_mode=True).features()
    assert f == {"stride", "overlapping", "padding", "ceil_mode", "dilation", "rectangular"}
    g = AvgPool2dParams(n=1, c=1, h=9, w=9, kh=3, kw=3, padding=1, count_include_pad=False,
                        divisor_override=3).features()
    assert g == {"padding", "exclude_pad", "divisor_override"}


def test_public_api_returns_input_dtype_and_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    y = convbench.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    assert y.dtype == np.float32 and y.shape == (2, 3, 5, 5)
    (dx,) = convbench.max_pool2d_backward(np.ones_like(y), x, 3, stride=2, padding=1, ceil_mode=True)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    t = F.max_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True).numpy()
    np.testing.assert_array_equal(y, t)
    z = convbench.avg_pool2d(x, (3, 2), stride=(2, 1), padding=(1, 0), count_include_pad=False)
    np.testing.assert_allclose(z, F.avg_pool2d(torch.from_numpy(x), (3, 2), (2, 1), (1, 0),
                                               count_include_pad=False).numpy(), rtol=1e-6, atol=1e-6)
    (dz,) = convbench.avg_pool2d_backward(np.ones_like(z), x, (3, 2), stride=(2, 1), padding=(1, 0),
                                          count_include_pad=False)
    assert dz.dtype == np.float32 and dz.shape == x.shape
