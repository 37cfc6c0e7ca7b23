"""conv2d validation, shapes, FLOPs and the reference: the engine's contract for every implementation."""
from __future__ import annotations

import numpy as np
import pytest

import convbench
from convbench import ParamError
from convbench.ops import get_op
from convbench.ops.conv2d import Conv2dParams

OP = get_op("conv2d")


def arrays(n=1, c=3, h=8, w=8, o=4, kh=3, kw=3, groups=1, dtype=np.float32, bias=True):
    x = np.ones((n, c, h, w), dtype)
    wt = np.ones((o, c // groups, kh, kw), dtype)
    b = np.ones(o, dtype) if bias else None
    return x, wt, b


# (description, call kwargs or array overrides, expected exception, fragments the message must hold)
INVALID = [
    ("kernel larger than padded input", dict(arrays=dict(h=4, w=4, kh=7, kw=3), padding=1), ParamError,
     ["kernel height", "7", "6 = 4+2"]),
    ("dilated kernel larger than input", dict(arrays=dict(h=5, w=5), dilation=3), ParamError,
     ["kernel height with dilation", "7 = 3*(3-1)+1", "5 = 5+0"]),
    ("negative padding", dict(padding=-1), ParamError, ["padding", "-1"]),
    ("negative padding pair", dict(padding=(1, -2)), ParamError, ["padding", "(1, -2)"]),
    ("zero stride", dict(stride=0), ParamError, ["stride", "0"]),
    ("negative stride", dict(stride=(1, -1)), ParamError, ["stride", "(1, -1)"]),
    ("zero dilation", dict(dilation=0), ParamError, ["dilation", "0"]),
    ("groups not dividing in_channels", dict(arrays=dict(c=3, o=4, groups=1), groups=2), ParamError,
     ["groups", "2"]),
    ("groups not dividing out_channels", dict(arrays=dict(c=4, o=3, groups=2), groups=2), ParamError,
     ["groups=2", "out_channels=3"]),
    ("channels mismatch", dict(w_shape=(4, 2, 3, 3)), ParamError, ["C=3", "in_channels/groups=2"]),
    ("bias of wrong length", dict(b_shape=(5,)), ParamError, ["b", "(4,)", "(5,)"]),
    ("x not 4-d (nor one sample, 3-d)", dict(x_shape=(8, 8)), ParamError, ["x", "4-dimensional", "(8, 8)"]),
    ("w not 4-d", dict(w_shape=(4, 3, 3)), ParamError, ["w", "4-dimensional", "(4, 3, 3)"]),
    ("same with stride 2", dict(padding="same", stride=2), ParamError, ["'same'", "stride", "(2, 2)"]),
    ("unknown padding string", dict(padding="full"), ParamError, ["padding", "'full'"]),
    ("integer dtype", dict(dtype=np.int32), TypeError, ["x", "int32"]),
    ("float16 dtype", dict(dtype=np.float16), TypeError, ["x", "float16"]),
    ("mixed dtypes", dict(w_dtype=np.float64), TypeError, ["w", "float64", "float32"]),
    ("zero groups", dict(groups=0), ParamError, ["groups", "0"]),
    ("stride not an int", dict(stride=1.5), ParamError, ["stride", "1.5"]),
]


def build(spec):
    spec = dict(spec)
    x, w, b = arrays(**spec.pop("arrays", {}), dtype=spec.pop("dtype", np.float32))
    if "x_shape" in spec:
        x = np.ones(spec.pop("x_shape"), x.dtype)
    if "w_shape" in spec:
        w = np.ones(spec.pop("w_shape"), w.dtype)
    if "b_shape" in spec:
        b = np.ones(spec.pop("b_shape"), b.dtype)
    if "w_dtype" in spec:
        w = w.astype(spec.pop("w_dtype"))
    return x, w, b, spec


@pytest.mark.parametrize("desc,spec,exc,fragments", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_argument_named_with_its_value(desc, spec, exc, fragments):
    x, w, b, kw = build(spec)
    with pytest.raises(exc) as info:
        convbench.conv2d(x, w, b, **kw)
    for frag in fragments:
        assert frag in str(info.value), f"{frag!r} not in {str(info.value)!r}"


def test_param_error_is_a_value_error():
    assert issubclass(ParamError, ValueError)


@pytest.mark.parametrize("desc,spec,exc,fragments", INVALID, ids=[i[0] for i in INVALID])
def test_same_error_whichever_implementation(desc, spec, exc, fragments):
    """Validation runs once in the engine, before any implementation: all give the same message."""
    x, w, b, kw = build(spec)
    messages = set()
    for name in ["reference"] + [i.name for i in convbench.implementations("conv2d")]:
        with pytest.raises(exc) as info:
            convbench.conv2d(x, w, b, impl=name, **kw)
        messages.add((type(info.value), str(info.value)))
    assert len(messages) == 1, messages


def test_invalid_call_never_reaches_an_implementation():
    calls = []

    def spy(x, w, b=None, stride=1, padding=0):
        calls.append(1)
        return np.zeros((1, 4, 6, 6), x.dtype)

    x, w, b = arrays()
    with pytest.raises(ParamError):
        convbench.conv2d(x, w, b, stride=0, impl=spy)
    assert calls == []


def test_backward_validates_dy():
    x, w, b = arrays()
    dy = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(ParamError, match=r"dy must have the output's shape \(1, 4, 6, 6\), got \(1, 4, 5, 5\)"):
        convbench.conv2d_backward(dy, x, w)
    with pytest.raises(TypeError, match="dy must have the dtype of x"):
        convbench.conv2d_backward(np.ones((1, 4, 6, 6)), x, w)


@pytest.mark.parametrize("kw,expected", [
    (dict(h=7, w=7, kh=3, kw=3), (5, 5)),
    (dict(h=8, w=8, kh=3, kw=3, stride=2), (3, 3)),          # (8-3)//2+1, remainder dropped
    (dict(h=8, w=9, kh=3, kw=3, padding=1, stride=(2, 3)), (4, 3)),
    (dict(h=9, w=9, kh=3, kw=3, dilation=2), (5, 5)),
    (dict(h=6, w=7, kh=4, kw=2, padding="same"), (6, 7)),
    (dict(h=6, w=7, kh=4, kw=2, padding="valid"), (3, 6)),
    (dict(h=5, w=6, kh=3, kw=3, padding=(2, 0)), (7, 4)),
    (dict(h=224, w=224, kh=7, kw=7, stride=2, padding=3), (112, 112)),
])
def test_output_shape(kw, expected):
    p = Conv2dParams(n=1, c=2, o=2, **kw)
    assert p.out_hw == expected


def test_same_padding_is_asymmetric_for_even_kernels_like_torch():
    torch = pytest.importorskip("torch")
    p = Conv2dParams(n=1, c=1, h=6, w=7, o=1, kh=4, kw=2, padding="same", dilation=(1, 3))
    assert p.pads == (1, 2, 1, 2)
    x, w = OP.make_inputs(p, "float64")["x"], OP.make_inputs(p, "float64")["w"]
    ours = OP.reference_forward(p, x, w, None)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same", dilation=(1, 3)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_flops_follow_the_design_formula():
    p = Conv2dParams(n=2, c=6, h=10, w=10, o=4, kh=3, kw=3, groups=2, padding=1)
    conv = 2 * 2 * 4 * 3 * 3 * 3 * 10 * 10
    assert p.flops("forward") == conv + 2 * 4 * 10 * 10
    assert p.flops("grad_input") == p.flops("grad_weight") == conv
    assert p.flops("grad_bias") == 2 * 4 * 10 * 10
    assert p.flops("backward") == 2 * conv + 2 * 4 * 10 * 10
    nb = Conv2dParams(n=2, c=6, h=10, w=10, o=4, kh=3, kw=3, groups=2, padding=1, bias=False)
    assert nb.flops("forward") == conv and nb.flops("backward") == 2 * conv
    with pytest.raises(ParamError, match="direction"):
        p.flops("sideways")


def test_bytes_min_counts_each_array_once():
    p = Conv2dParams(n=1, c=2, h=4, w=4, o=3, kh=3, kw=3, padding=1)
    x, w, b, y = 32, 54, 3, 48
    assert p.bytes_min("forward", 4) == 4 * (x + w + b + y)
    assert p.bytes_min("backward", 8) == 8 * (y + x + w + x + w + b)


def test_descriptor_round_trips():
    from convbench.cases import parse_descriptor

    p = Conv2dParams(n=2, c=6, h=7, w=10, o=6, kh=3, kw=2, stride=(2, 1), padding=(1, 0), dilation=(2, 1),
                     groups=3, bias=False)
    assert parse_descriptor(p.descriptor).params == p


def test_exact_fill_keeps_every_sum_exact():
    p = Conv2dParams(n=4, c=64, h=16, w=16, o=8, kh=3, kw=3, padding=1)
    m = OP.exact_magnitude(p, "float32")
    longest = max(p.accumulation_length(d) for d in ("forward", "grad_input", "grad_weight", "grad_bias"))
    assert 1 <= m and longest * m * m < 2**24
    a = OP.make_inputs(p, "float32", fill="exact")
    assert np.abs(a["x"]).max() <= m and np.all(a["x"] == np.round(a["x"]))


def test_reference_matches_a_literal_loop():
    """The oracle against the definition written as six nested loops (one small case)."""
    p = Conv2dParams(n=2, c=4, h=5, w=6, o=4, kh=2, kw=3, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    a = OP.make_inputs(p, "float64", seed=3)
    x, w, b = a["x"], a["w"], a["b"]
    pt, _, pl, _ = p.pads
    oh, ow = p.out_hw
    y = np.zeros((2, 4, oh, ow))
    for n in range(2):
        for o in range(4):
            g = o // 2
            for i in range(oh):
                for j in range(ow):
                    s = b[o]
                    for c in range(2):
                        for u in range(2):
                            for v in range(3):
                                r, q = i * 2 + u - pt, j + v * 2 - pl
                                if 0 <= r < 5 and 0 <= q < 6:
                                    s += x[n, g * 2 + c, r, q] * w[o, c, u, v]
                    y[n, o, i, j] = s
    np.testing.assert_allclose(OP.reference_forward(p, x, w, b), y, rtol=1e-13, atol=1e-13)
