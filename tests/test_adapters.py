"""The adapters: plain functions, seed-style layers, TinyTorch-style layers, torch modules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from convbench.adapt import LayerImpl, TorchModuleImpl, adapt
from convbench.cases import conv, get_suite
from convbench.registry import load_impl
from convbench.verify import run_checks

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "planted"))
from _base import conv_backward, conv_forward, pair  # noqa: E402

EDGE = get_suite("edge")


def _statuses(impl, cases=EDGE, checks=None):
    recs = run_checks([impl], cases, checks=checks)
    return recs, {r["status"] for r in recs}


class SeedConv:
    """The seeds' layer: ints only, W/b arrays, dW/db."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.stride, self.padding = stride, padding
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size)
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        return conv_forward(x, self.W, self.b, self.stride, self.padding)

    def backward(self, dout):
        dx, self.dW, self.db = conv_backward(dout, self.x, self.W, self.stride, self.padding)
        return dx


def test_seed_layer_ints_only_passes_and_nonsquare_is_unsupported():
    impl = load_impl(SeedConv, op="conv2d")
    assert isinstance(impl, LayerImpl) and impl.info.directions == frozenset({"forward", "backward"})
    recs, st = _statuses(impl)
    assert st == {"passed", "unsupported"}
    un = {r["case"] for r in recs if r["status"] == "unsupported"}
    assert {"nonsquare.kernel", "groups2", "dilation2", "pad.same.even"} <= un
    assert "basic.3x3" not in un and "nobias" not in un


class NoStride:
    def __init__(self, c_in, c_out, k):
        self.weight = np.zeros((c_out, c_in, k, k))
        self.bias = np.zeros(c_out)

    def forward(self, x):
        return conv_forward(x, self.weight, self.bias)


def test_fewer_constructor_parameters_fewer_features():
    impl, info = adapt(NoStride)
    assert "stride" not in info["features"] and "padding" not in info["features"]
    assert info["directions"] == {"forward"}
    recs, st = _statuses(load_impl(NoStride, op="conv2d"))
    assert "failed" not in st and "error" not in st
    assert any(r["case"] == "stride.remainder" and r["status"] == "unsupported" for r in recs)


class Tensor:
    def __init__(self, data):
        self.data = np.asarray(data)


class TinyConv:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        self.stride, self.padding = stride, padding
        self.weight = Tensor(np.zeros((out_channels, in_channels, *ks)))
        self.bias = Tensor(np.zeros(out_channels))

    def forward(self, x):
        return Tensor(conv_forward(x.data, self.weight.data, self.bias.data, self.stride, self.padding))


def test_tinytorch_layer_gets_data_holders_and_pairs_when_it_takes_them():
    impl = load_impl(TinyConv, op="conv2d")
    assert impl.wrap_in and impl.pairs and impl.info.directions == frozenset({"forward"})
    recs, st = _statuses(impl)
    assert st == {"passed", "unsupported"}
    assert any(r["case"] == "nonsquare.stride" and r["status"] == "passed" for r in recs)


class WrongLayout(SeedConv):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self.W = np.zeros((kernel_size, kernel_size, in_channels, out_channels))


def test_a_weight_in_the_wrong_layout_is_an_error_naming_the_shapes():
    recs = run_checks([load_impl(WrongLayout, op="conv2d")], [conv("c", n=1, c=2, h=5, w=5, o=3, k=3)], checks=["random"])
    assert {r["status"] for r in recs} == {"error"}
    assert "WrongLayout.W has shape (3, 3, 2, 3), but the case needs (3, 2, 3, 3)" in recs[0]["message"]


def test_plain_function_signature_decides_support():
    def f(x, w, b=None, stride=1):
        return conv_forward(x, w, b, stride, 0)

    recs, st = _statuses(load_impl(f, op="conv2d"))
    assert st == {"passed", "unsupported"}
    assert any(r["case"] == "batch1.pad1" and r["status"] == "unsupported" for r in recs)


def test_a_function_that_raises_is_told_with_the_arguments_it_was_given():
    def pairs_badly(x, w, b=None, stride=1, padding=0):
        ph = padding[0] if isinstance(padding, tuple) else padding   # reads pairs...
        return conv_forward(x, w, b, stride, padding + 0 * ph)   # ...BUG: but adds to the pair: TypeError

    recs = run_checks([load_impl(pairs_badly, op="conv2d")], [conv("pad.pair", n=1, c=2, h=5, w=6, o=2, k=3, padding=(2, 0))],
                      checks=["shape"])
    fwd = [r for r in recs if r["direction"] == "forward"]
    assert fwd and fwd[0]["status"] == "error" and "TypeError" in fwd[0]["message"]
    assert fwd[0]["message"].endswith("; called as pairs_badly(x, w, b, padding=(2, 0))")


def _ints_only(x, w, b=None, stride=1, pad=0):
    return conv_forward(x, w, b, stride + 0, pad + 0)   # + 0: a pair would raise TypeError


def _ints_cs231n(x, w, b=None, stride=1, pad=0):
    hh, ww = w.shape[2:]
    ho, wo = 1 + (x.shape[2] + 2 * pad - hh) // stride, 1 + (x.shape[3] + 2 * pad - ww) // stride
    y = conv_forward(x, w, b, stride + 0, pad + 0)
    assert y.shape[2:] == (ho, wo)
    return y


def _ints_duplicated(x, w, b=None, stride=1, pad=0):
    sh, sw = stride, stride  # one int for both axes
    ph, pw = pad, pad
    return conv_forward(x, w, b, (sh + 0, sw + 0), (ph + 0, pw + 0))


def _unpacks(x, w, b=None, stride=1, pad=0):
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    ph, pw = pad if type(pad) is tuple else (pad, pad)
    return conv_forward(x, w, b, (sh, sw), (ph, pw))


def _unpacks_short_names(x, w, b=None, s=1, p=0):
    s, p = np.broadcast_to(s, 2), np.broadcast_to(p, 2)
    sh, sw = s
    ph, pw = p
    return conv_forward(x, w, b, (int(sh), int(sw)), (int(ph), int(pw)))


def _helper(x, w, b=None, stride=1, padding=0):
    return conv_forward(x, w, b, pair(stride), pair(padding))


def _indexes(x, w, b=None, s=1, p=0):
    if type(s) is int:
        s = (s, s)
    if type(p) is int:
        p = (p, p)
    return conv_forward(x, w, b, (s[0], s[1]), (p[0], p[1]))


def _tests(x, w, b=None, s=1, p=0):
    s = s if isinstance(s, tuple) else (s, s)
    p = p if isinstance(p, tuple) else (p, p)
    return conv_forward(x, w, b, s, p)


PER_AXIS = [conv("nonsquare.stride", n=2, c=2, h=9, w=8, o=2, k=3, stride=(2, 1), padding=1),
            conv("pad.pair", n=1, c=2, h=5, w=6, o=2, k=3, padding=(2, 0)),
            conv("square", n=1, c=2, h=6, w=6, o=2, kh=3, kw=1, stride=2, padding=1)]


@pytest.mark.parametrize("fn", [_ints_only, _ints_cs231n, _ints_duplicated])
def test_a_function_that_takes_ints_only_is_unsupported_on_per_axis_cases(fn):
    # as layer classes are: an int-only function is not failed for a pair it was never written for
    recs = run_checks([load_impl(fn, op="conv2d")], PER_AXIS, checks=["shape", "random"])
    by = {(r["case"], r["status"]) for r in recs if r["direction"] == "forward"}
    assert by == {("nonsquare.stride", "unsupported"), ("pad.pair", "unsupported"), ("square", "passed")}
    why = {r["case"]: r["message"] for r in recs if r["direction"] == "forward" and r["status"] == "unsupported"}
    assert why["nonsquare.stride"] == (f"{fn.__name__} takes stride as an int (its source never indexes stride[0] "
                                       "or the like), the case needs stride=(2, 1)")
    assert why["pad.pair"].endswith("the case needs pad=(2, 0)")


@pytest.mark.parametrize("fn", [_unpacks, _unpacks_short_names, _helper, _indexes, _tests])
def test_a_function_that_reads_pairs_gets_them(fn):
    recs = run_checks([load_impl(fn, op="conv2d")], PER_AXIS, checks=["shape", "random"])
    assert {r["status"] for r in recs if r["direction"] == "forward"} == {"passed"}, recs


def _pairs_by_default(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    return conv_forward(x, w, b, (stride[0] + 0, stride[1] + 0), (padding[0] + 0, padding[1] + 0))


def _pairs_unpacked(x, w, b=None, stride=1, padding=0):
    sh, sw = stride  # an int would raise TypeError: the default is never used
    ph, pw = padding
    return conv_forward(x, w, b, (sh, sw), (ph, pw))


class _PairConv:
    """A layer that takes pairs only: tuple defaults, unpacked in the constructor and in forward."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=(1, 1), padding=(0, 0)):
        self.kh, self.kw = kernel_size
        self.stride, self.padding = stride, padding
        self.W = np.zeros((out_channels, in_channels, self.kh, self.kw))
        self.b = np.zeros(out_channels)

    def forward(self, x):
        sh, sw = self.stride
        ph, pw = self.padding
        return conv_forward(x, self.W, self.b, (sh, sw), (ph, pw))


class _PairConvUnpacksAttribute:
    """Int defaults: only the unpacking (of the argument, of the attribute it is kept in) says pairs."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.kh, self.kw = kernel_size
        self.stride = stride
        self.pad = padding
        self.W = np.zeros((out_channels, in_channels, self.kh, self.kw))
        self.b = np.zeros(out_channels)

    def forward(self, x):
        sh, sw = self.stride
        return conv_forward(x, self.W, self.b, (sh, sw), (self.pad[0], self.pad[1]))


class _ConvNoBias:
    """A conv without bias, as ResNet's are (batch norm follows): no bias attribute at all."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.stride, self.padding = stride, padding
        self.weight = np.zeros((out_channels, in_channels, kernel_size, kernel_size))

    def forward(self, x):
        self.x = x
        return conv_forward(x, self.weight, None, self.stride, self.padding)

    def backward(self, dout):
        dx, self.dW, _ = conv_backward(dout, self.x, self.weight, self.stride, self.padding)
        return dx


def test_a_layer_without_bias_takes_the_cases_without_bias():
    impl = load_impl(_ConvNoBias, op="conv2d")
    recs, st = _statuses(impl, [c for c in EDGE if c.id in ("basic.3x3", "nobias", "batch1.pad1")],
                         checks=["shape", "exact"])
    assert st == {"passed", "unsupported"}
    got = {(r["case"], r["status"]) for r in recs if r["direction"] == "forward"}
    assert got == {("basic.3x3", "unsupported"), ("batch1.pad1", "unsupported"), ("nobias", "passed")}
    assert "does not support bias" in next(r["message"] for r in recs if r["case"] == "basic.3x3")
    # one that sets a bias somewhere keeps the cases with bias: in a base class, by setattr, as a class
    # attribute, or where a source cannot be read
    for cls in (_NoBiasOnSeed, _BiasBySetattr, _BiasClassAttribute, _BiasAmongTargets, SeedConv,
                type("Made", (_ConvNoBias,), {})):
        assert "bias" in load_impl(cls, op="conv2d").info.features, cls


class _NoBiasOnSeed(_ConvNoBias, SeedConv):
    pass


class _BiasBySetattr(_ConvNoBias):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        setattr(self, "bias", np.zeros(out_channels))


class _BiasClassAttribute(_ConvNoBias):
    bias = None


class _BiasAmongTargets(_ConvNoBias):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self.b, self.weight = np.zeros(out_channels), self.weight


@pytest.mark.parametrize("obj", [_pairs_by_default, _pairs_unpacked, _PairConv, _PairConvUnpacksAttribute])
def test_what_takes_pairs_only_is_given_pairs_even_where_the_axes_agree(obj):
    impl = load_impl(obj, op="conv2d")
    assert impl.pair_only >= {"stride", "padding"}
    recs = run_checks([impl], PER_AXIS + [c for c in EDGE if c.id in ("basic.3x3", "batch1.pad1", "nonsquare.kernel")],
                      checks=["shape", "random"])
    st = {(r["case"], r["status"]) for r in recs if r["direction"] == "forward"}
    assert {s for _, s in st} == {"passed"}, [r["message"] for r in recs if r["status"] != "passed"][:2]


def test_pair_only_is_read_from_the_source_and_held_back_by_any_int_handling():
    from convbench.adapt.source import pair_only

    names = {"stride": "stride", "padding": "padding"}
    assert pair_only(_pairs_unpacked, names) == {"stride", "padding"}
    assert pair_only(_unpacks, {"stride": "stride", "padding": "pad"}) == set()  # isinstance / type tests
    assert pair_only(_helper, names) == set()  # handed to pair()
    assert pair_only(_ints_cs231n, {"stride": "stride", "padding": "pad"}) == set()  # arithmetic

    def normalises(x, w, b=None, stride=1, padding=0):
        stride = (stride, stride) if np.ndim(stride) == 0 else stride
        sh, sw = stride
        return sh, sw, padding[0]

    def catches(x, w, b=None, stride=1, padding=0):
        try:
            sh, sw = stride
        except TypeError:
            sh = sw = stride
        return sh, sw

    def tests(x, w, b=None, stride=1, padding=0):
        if isinstance(stride, int):
            return stride, stride
        sh, sw = stride
        return sh, sw, padding[1]

    def reassigns(x, w, b=None, stride=1, padding=0):
        stride = (stride, stride) if stride in (1, 2, 3) else stride
        sh, sw = stride
        return sh, sw, padding[1]

    assert pair_only(normalises, names) == {"padding"}
    assert pair_only(tests, names) == {"padding"}
    assert pair_only(reassigns, names) == {"padding"}

    def pair_default(x, w, b=None, stride=(1, 1), padding=0):
        return pair(stride), pair(padding)

    assert pair_only(pair_default, names) == {"stride"}  # a tuple default: pairs are what it expects
    assert pair_only(catches, names) == set()
    from convbench.adapt.source import source as _source

    ctor = {"kernel_size": "kernel_size", "stride": "stride", "padding": "padding"}
    assert pair_only(_PairConvUnpacksAttribute.__init__, ctor, _source(_PairConvUnpacksAttribute)) == {
        "kernel_size", "stride", "padding"}
    assert pair_only(_PairConv.__init__, ctor, _source(_PairConv)) == {"kernel_size", "stride", "padding"}
    assert pair_only(SeedConv.__init__, ctor, _source(SeedConv)) == set()


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths:UserWarning")
def test_torch_module_class_and_instance():
    impl = load_impl(torch.nn.Conv2d, op="conv2d")
    assert isinstance(impl, TorchModuleImpl)
    recs, st = _statuses(impl, checks=["shape", "dtype", "random", "exact"])
    assert st == {"passed"}, [r["message"] for r in recs if r["status"] != "passed"][:3]
    impl2, info = adapt(torch.nn.Conv2d(3, 4, 3))
    assert isinstance(impl2, TorchModuleImpl) and info["backend"] == "torch"


def test_not_adaptable_says_what_it_expected():
    with pytest.raises(TypeError, match="layer class"):
        adapt(42)


# --- conv1d and pooling layers ---------------------------------------------------------------------

import subprocess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "tests" / "seed_layers" / "course_layers.py"
sys.path.insert(0, str(LAYERS.parent))
import course_layers as course  # noqa: E402

from convbench.adapt import infer_op  # noqa: E402


@pytest.mark.parametrize(("name", "op"), [
    ("MaxPool2D", "max_pool2d"), ("MaxPooling2D", "max_pool2d"), ("AveragePool2D", "avg_pool2d"),
    ("AvgPool2d", "avg_pool2d"), ("Conv1D", "conv1d"), ("conv1d", "conv1d"), ("Conv2D", "conv2d"),
    ("GlobalPool", "conv2d"), ("MyLayer", "conv2d")])
def test_infer_op_from_the_name(name, op):
    assert infer_op(type(name, (), {})) == op


@pytest.mark.parametrize(("cls", "op", "unsupported"), [
    (course.MaxPool2D, "max_pool2d", {"pad.max.k3p1.s2", "ceil.past.edge", "dilation2", "rectangular"}),
    (course.AveragePool2D, "avg_pool2d", {"pad1.cip0", "ceil.past.edge", "divisor_override", "rectangular.cip0"}),
    (course.Conv1D, "conv1d", {"dilation2", "groups2", "pad.same.even"}),
])
def test_seed_style_layers_of_each_op_pass_and_lack_what_their_constructor_lacks(cls, op, unsupported):
    impl = load_impl(cls)  # the op from the class name
    assert isinstance(impl, LayerImpl) and impl.info.op == op
    assert impl.info.directions == frozenset({"forward", "backward"})
    recs, st = _statuses(impl, get_suite("edge", op), checks=["shape", "dtype", "exact", "random"])
    assert st == {"passed", "unsupported"}, [r["message"] for r in recs if r["status"] not in st - {"failed", "error"}][:3]
    un = {r["case"] for r in recs if r["status"] == "unsupported"}
    assert unsupported <= un
    assert {"k2s2", "basic.k3"} & {r["case"] for r in recs if r["status"] == "passed"}


@pytest.mark.parametrize(("cls", "op", "needle"), [
    (course.MaxPool2DTiesAll, "max_pool2d", "grad_input"),
    (course.AveragePool2DPadUncounted, "avg_pool2d", "forward"),
    (course.Conv1DNoBiasGrad, "conv1d", "grad_bias"),
])
def test_seed_style_layers_with_the_classic_mistakes_fail(cls, op, needle):
    recs, st = _statuses(load_impl(cls, op=op), get_suite("edge", op), checks=["exact", "random"])
    failed = [r for r in recs if r["status"] == "failed"]
    assert failed and "error" not in st
    assert any(needle in r["message"] for r in failed), failed[0]["message"]


@pytest.mark.parametrize(("module", "op"), [(torch.nn.MaxPool2d, "max_pool2d"), (torch.nn.AvgPool2d, "avg_pool2d"),
                                            (torch.nn.Conv1d, "conv1d")])
def test_torch_modules_of_each_op_take_every_case(module, op):
    impl = load_impl(module)
    assert isinstance(impl, TorchModuleImpl) and impl.info.op == op
    cases = get_suite("edge", op)[::3]
    recs, st = _statuses(impl, cases, checks=["shape", "dtype", "random"])
    assert st == {"passed"}, [r["message"] for r in recs if r["status"] != "passed"][:3]


def test_a_pooling_layer_checked_as_conv2d_says_which_op_to_name():
    with pytest.raises(TypeError, match=r"no in_channels; its name says max_pool2d: pass op='max_pool2d' "
                                        r"\(command line: --op max_pool2d\)"):
        adapt(course.MaxPool2D, op="conv2d")


def test_functions_of_an_unknown_operator_are_refused():
    with pytest.raises(TypeError, match="functions are adapted for conv2d, conv1d, max_pool2d, avg_pool2d; got "
                                        "op='conv3d'"):
        adapt(lambda x, k: x, op="conv3d")


# --- CS231n-style forward/backward functions with a cache -----------------------------------------

CS231N = ROOT / "tests" / "seed_layers" / "cs231n_layers.py"
import cs231n_layers as cs  # noqa: E402

from convbench.adapt import CacheImpl  # noqa: E402


@pytest.mark.parametrize(("obj", "op"), [(cs.conv_forward_naive, "conv2d"), (cs.Conv, "conv2d"),
                                         (cs.max_pool_forward_naive, "max_pool2d"), (cs.MaxPool, "max_pool2d")])
def test_cs231n_pairs_are_checked_forward_and_backward(obj, op):
    impl = load_impl(obj)  # the op from the name
    assert isinstance(impl, CacheImpl) and impl.info.op == op
    assert impl.info.directions == frozenset({"forward", "backward"})
    recs, st = _statuses(impl, get_suite("edge", op), checks=["shape", "dtype", "exact", "random"])
    ok = {"passed", "unsupported"}
    assert st == ok, [r["message"] for r in recs if r["status"] not in ok][:3]
    passed = {(r["case"], r["direction"]) for r in recs if r["status"] == "passed"}
    directions = {"forward", "grad_input"} | ({"grad_weight", "grad_bias"} if op == "conv2d" else set())
    assert directions <= {d for _, d in passed}
    strided = {"stride.remainder", "overlap.k3s2"} & {c for c, _ in passed}
    assert strided, "a strided case must be among the passed"
    un = {r["case"]: r["message"] for r in recs if r["status"] == "unsupported"}
    name = getattr(obj, "forward", obj).__qualname__  # Conv.forward, conv_forward_naive
    if op == "conv2d":
        assert {"dilation2", "groups2", "pad.same.even"} <= set(un)
        assert un["nonsquare.stride"] == (f"{name} takes stride as one int, conv_param['stride']; "
                                          "the case needs stride=(2, 1)")
        assert "padding=(2, 0)" in un["pad.pair"]
        assert "nonsquare.kernel" not in un  # the kernel's shape comes with w
    else:
        assert {"pad.max.k3p1.s2", "ceil.past.edge", "dilation2"} <= set(un)
        assert un["kernel.eq.input"] == (f"{name} takes stride as one int, pool_param['stride']; "
                                         "the case needs stride=(4, 5)")


def test_cs231n_pair_is_given_a_fresh_dict_of_what_its_source_reads():
    impl = load_impl(cs.conv_forward_naive)
    p = conv("c", n=1, c=2, h=7, w=7, o=3, k=3, stride=2, padding=1).params
    assert impl._param(p) == {"stride": 2, "pad": 1} and impl._param(p) is not impl._param(p)
    pool = load_impl(cs.max_pool_forward_naive)
    q = next(c.params for c in get_suite("edge", "max_pool2d") if c.id == "kernel.eq.input")  # kh4 kw5 s(4, 5)
    assert pool._param(q) == {"pool_height": 4, "pool_width": 5, "stride": 4}


def test_cs231n_pair_takes_what_its_keys_and_arguments_allow():
    # reads 'dilation' too: dilated cases are taken (forward only: no backward beside it)
    impl = load_impl(cs.conv_forward_dilated)
    assert impl.info.directions == frozenset({"forward"}) and "dilation" in impl.info.features
    recs, st = _statuses(impl, [c for c in EDGE if c.id in ("dilation2", "dilation.pair", "groups2")],
                         checks=["exact"])
    got = {r["case"]: r["status"] for r in recs}
    assert got["dilation2"] == "passed" and got["groups2"] == "unsupported"
    assert got["dilation.pair"] == "unsupported"  # (2, 1): one int cannot say it
    # no bias argument: the bias cases are not its to take; a backward of (dx, dw)
    impl = load_impl(cs.conv_forward_nobias)
    recs, st = _statuses(impl, [c for c in EDGE if c.id in ("basic.3x3", "nobias")], checks=["exact"])
    got = {(r["case"], r["direction"]): r["status"] for r in recs}
    assert got[("nobias", "grad_weight")] == "passed" and got[("basic.3x3", "forward")] == "unsupported"
    # a square pool under one key: a rectangular window is unsupported, with the key named
    impl = load_impl(cs.max_pool_forward_square)
    rect = next(c.params for c in get_suite("edge", "max_pool2d") if c.id == "kernel.eq.input")
    assert impl.unsupported(rect, "float64", "forward") == (
        "max_pool_forward_square takes kernel_size as one int, pool_param['pool_size']; "
        "the case needs kernel_size=(4, 5)")
    recs, st = _statuses(impl, get_suite("edge", "max_pool2d"), checks=["exact"])
    assert st == {"passed", "unsupported"} and "k2s2" in {r["case"] for r in recs if r["status"] == "passed"}


@pytest.mark.parametrize(("obj", "direction", "needle"), [
    (cs.conv_forward_dwlast, "grad_weight", "grad_weight"),
    (cs.conv_forward_padded_dx, "grad_input", "grad_input has shape"),
    (cs.max_pool_forward_overwrite, "grad_input", "grad_input"),
])
def test_cs231n_pairs_with_the_classic_mistakes_fail_where_the_mistake_is(obj, direction, needle):
    impl = load_impl(obj)
    op = impl.info.op
    recs, st = _statuses(impl, get_suite("edge", op), checks=["shape", "exact", "random"])
    bad = [r for r in recs if r["status"] not in ("passed", "unsupported")]
    assert bad and {r["status"] for r in bad} == {"failed"}
    assert {r["direction"] for r in bad} - {"backward"} <= {direction}  # "backward": the shape check
    assert any(needle in r["message"] for r in bad), bad[0]["message"]


def test_cs231n_forward_without_a_cache_fails_its_backward_with_the_reason():
    impl = load_impl(cs.conv_forward_nocache)
    recs, _ = _statuses(impl, [c for c in EDGE if c.id == "basic.3x3"], checks=["exact"])
    got = {r["direction"]: r for r in recs}
    assert got["forward"]["status"] == "passed"
    assert got["grad_input"]["status"] == "error"
    assert "conv_forward_nocache returned no cache for conv_backward_nocache" in got["grad_input"]["message"]


def test_cs231n_pair_errors_name_what_was_expected():
    with pytest.raises(TypeError, match=r"adapted for conv2d, max_pool2d and avg_pool2d; got op='conv1d'"):
        adapt(cs.conv_forward_naive, op="conv1d")
    with pytest.raises(TypeError, match=r"does not look like a max_pool2d forward: expected \(x, pool_param\)"):
        adapt(cs.conv_forward_naive, op="max_pool2d")

    def pool_forward_nosize(x, pool_param):
        return x[:, :, ::pool_param["stride"]], None

    with pytest.raises(TypeError, match="reads no pool size from pool_param"):
        adapt(pool_forward_nosize, op="max_pool2d")

    def conv_forward_raises(x, w, b, conv_param):
        raise ValueError(f"boom at stride {conv_param['stride']}, padding {conv_param['pad']}")

    impl = load_impl(conv_forward_raises)
    recs, _ = _statuses(impl, [c for c in EDGE if c.id == "stride3.remainder"], checks=["exact"])
    fwd = next(r for r in recs if r["direction"] == "forward")
    assert fwd["status"] == "error" and "boom at stride 3, padding 1" in fwd["message"]
    assert "called as test_cs231n_pair_errors_name_what_was_expected.<locals>.conv_forward_raises(x, w, b, " \
           "conv_param={'stride': 3, 'pad': 1})" in fwd["message"]


# --- functions written against torch tensors -------------------------------------------------------

TORCH_CONVS = ROOT / "tests" / "seed_layers" / "torch_convs.py"
import torch_convs as tc  # noqa: E402

from convbench.adapt import FunctionImpl, TorchCacheImpl, TorchFunctionImpl  # noqa: E402
from convbench.adapt.source import uses_torch  # noqa: E402


@pytest.mark.parametrize(("obj", "op"), [(tc.conv2d_unfold, "conv2d"), (tc.conv2d_imported, "conv2d"),
                                         (tc.conv1d_unfold, "conv1d"), (tc.Conv, "conv2d")])
def test_torch_functions_are_given_tensors_and_checked_backward_through_autograd(obj, op):
    impl = load_impl(obj, op=op)
    assert isinstance(impl, (TorchFunctionImpl, TorchCacheImpl)) and impl.info.backend == "torch"
    assert impl.info.directions == frozenset({"forward", "backward"})
    recs, st = _statuses(impl, get_suite("edge", op))
    ok = {"passed", "unsupported"}
    assert st == ok, [r["message"] for r in recs if r["status"] not in ok][:3]
    assert {"forward", "grad_input", "grad_weight", "grad_bias"} <= {r["direction"] for r in recs
                                                                     if r["status"] == "passed"}


@pytest.mark.parametrize(("fn", "direction", "status", "needle", "where"), [
    (tc.conv2d_loses_grad_weight, "grad_weight", "failed", "grad_weight", {"grad_weight", "backward"}),
    (tc.conv2d_detached, "grad_input", "error", "output carries no autograd graph",
     {"grad_input", "grad_weight", "grad_bias", "backward"}),
    # only where x is not contiguous: the layout check, of either direction
    (tc.conv2d_views, "forward", "error", "view size is not compatible", {"forward", "backward"}),
])
def test_torch_functions_with_mistakes_fail_where_the_mistake_is(fn, direction, status, needle, where):
    recs, _ = _statuses(load_impl(fn, op="conv2d"), [c for c in EDGE if c.id in ("basic.3x3", "stride.remainder")])
    bad = [r for r in recs if r["status"] not in ("passed", "unsupported")]
    assert bad and any(r["direction"] == direction and r["status"] == status and needle in r["message"]
                       for r in bad), [(r["direction"], r["status"], r["message"][:150]) for r in bad][:4]
    assert {r["direction"] for r in bad} <= where
    if fn is tc.conv2d_views:
        assert {r["check"] for r in bad} == {"layout"}


def test_uses_torch_reads_the_globals_the_source_calls():
    assert uses_torch(tc.conv2d_unfold) and uses_torch(tc.conv2d_imported) and uses_torch(tc.Conv.forward)
    assert not uses_torch(_ints_only) and not uses_torch(cs.conv_forward_naive)

    def converts(x, w, b=None, stride=1, padding=0):  # takes arrays, converts them itself
        return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()

    def both(x, w, b=None, stride=1, padding=0):  # NumPy too: arrays, as before
        return np.asarray(torch.nn.functional.conv2d(torch.as_tensor(x), torch.as_tensor(w)))

    assert not uses_torch(converts) and not uses_torch(both)
    impl = load_impl(converts, op="conv2d")
    assert type(impl) is FunctionImpl and impl.info.directions == frozenset({"forward"})


def test_reading_a_source_never_trips_on_odd_globals(tmp_path):
    f = tmp_path / "odd.py"
    f.write_text("import torch\n\n\nclass _Proxy:\n"
                 "    def __getattribute__(self, k):\n        raise RuntimeError('lazy')\n\n"
                 "    def __call__(self):\n        pass\n\n\nlazy = _Proxy()\n\n\n"
                 "def conv2d(x, w, b=None, stride=1, padding=0):\n    lazy()\n"
                 "    return torch.nn.functional.conv2d(x, w, b, stride, padding)\n")
    impl = load_impl(f"{f}:conv2d", op="conv2d")
    assert isinstance(impl, TorchFunctionImpl)


# --- constructors that take the arrays, or the pool size per axis ---------------------------------

ARRAY_CTOR = ROOT / "tests" / "seed_layers" / "array_ctor_layers.py"
import array_ctor_layers as ac  # noqa: E402


@pytest.mark.parametrize(("cls", "op", "unsupported"), [
    (ac.Convolution, "conv2d", {"nonsquare.stride", "pad.pair", "dilation2", "groups2"}),
    (ac.Pooling, "max_pool2d", {"ceil.past.edge", "dilation2", "rectangular"}),
])
def test_a_constructor_that_takes_the_arrays_or_one_size_per_axis(cls, op, unsupported):
    impl = load_impl(cls, op=op)
    assert isinstance(impl, LayerImpl) and impl.info.directions == frozenset({"forward", "backward"})
    recs, st = _statuses(impl, get_suite("edge", op))
    ok = {"passed", "unsupported"}
    assert st == ok, [r["message"] for r in recs if r["status"] not in ok][:3]
    assert unsupported <= {r["case"] for r in recs if r["status"] == "unsupported"}
    passed = {r["case"] for r in recs if r["status"] == "passed"}
    assert ({"stride.remainder", "batch1.pad1"} if op == "conv2d" else {"pad.max.k3p1.s2", "overlap.k3s2"}) <= passed


def test_the_array_constructor_style_mistakes_fail():
    suite = get_suite("edge", "max_pool2d")
    recs, _ = _statuses(load_impl(ac.PoolingPadForgotten, op="max_pool2d"), suite)
    bad = [r for r in recs if r["status"] not in ("passed", "unsupported")]
    padded = {c.id for c in suite if any(c.params.padding)}
    taken = {r["case"] for r in recs if r["status"] != "unsupported"}
    assert bad and {r["case"] for r in bad} == padded & taken  # every padded case it takes, and nothing else
    assert any(r["direction"] == "forward" and "forward has shape" in r["message"] for r in bad)
    recs, _ = _statuses(load_impl(ac.PoolingFloat64Grad, op="max_pool2d"), suite)
    bad = [r for r in recs if r["status"] not in ("passed", "unsupported")]
    assert bad and {(r["status"], r["check"], r["message"]) for r in bad} == {
        ("failed", "dtype", "grad_input has dtype float64 for float32 inputs")}


def test_a_pooling_class_without_max_or_avg_in_its_name_is_told_to_name_its_operator():
    with pytest.raises(TypeError, match=r"its name says pooling: pass op='max_pool2d' or op='avg_pool2d'"):
        adapt(ac.Pooling)


# --- the deeplearning.ai assignments' API: channels last, hparameters ------------------------------

DLAI = ROOT / "tests" / "seed_layers" / "dlai_layers.py"
import dlai_layers as dl  # noqa: E402


@pytest.mark.parametrize(("obj", "op", "mode"), [(dl.conv_forward, "conv2d", None),
                                                 (dl.pool_forward, "max_pool2d", "max"),
                                                 (dl.pool_forward, "avg_pool2d", "average")])
def test_channels_last_layers_are_checked_both_ways(obj, op, mode):
    impl = load_impl(obj, op=op)
    assert isinstance(impl, CacheImpl) and impl.channels_last and impl.mode == mode
    assert impl.info.directions == frozenset({"forward", "backward"})
    recs, st = _statuses(impl, get_suite("edge", op))
    ok = {"passed", "unsupported"}
    assert st == ok, [r["message"] for r in recs if r["status"] not in ok][:3]
    directions = {"forward", "grad_input"} | ({"grad_weight", "grad_bias"} if op == "conv2d" else set())
    assert directions <= {r["direction"] for r in recs if r["status"] == "passed"}


def test_channels_last_max_pool_with_the_gradient_to_every_tied_maximum_fails_where_maxima_tie():
    suite = get_suite("edge", "max_pool2d")
    recs, _ = _statuses(load_impl(dl.pool_forward_tiesall, op="max_pool2d"), suite)
    bad = [r for r in recs if r["status"] not in ("passed", "unsupported")]
    assert bad and {(r["status"], r["direction"]) for r in bad} == {("failed", "grad_input")}
    assert "ties.constant.blocks" in {r["case"] for r in bad}
    # elsewhere only the exact tier's small integers tie; random values never do
    assert {r["check"] for r in bad if r["case"] != "ties.constant.blocks"} == {"exact"}


class _Extension:
    def conv(self, x, w, b, conv_param):
        return conv_forward(x, w, b, conv_param["stride"], conv_param["pad"]), None


_ext = _Extension()


def _conv_forward_through_an_object(x, w, b, conv_param):
    return _ext.conv(x, w, b, conv_param)


def test_a_dict_handed_on_is_read_where_it_is_used():
    assert load_impl(dl.pool_forward_tiesall, op="max_pool2d").keys == {"kernel_size": "f", "stride": "stride"}
    assert load_impl(cs.Conv).keys == {"stride": "stride", "padding": "pad"}
    assert load_impl(cs.conv_forward_dilated).keys == {"stride": "stride", "padding": "pad", "dilation": "dilation"}
    # handed to what cannot be followed (here a bound method): read as CS231n reads it
    assert load_impl(_conv_forward_through_an_object, op="conv2d").keys == {"stride": "stride", "padding": "pad"}


def test_a_pooling_function_checked_as_conv2d_is_told_to_name_its_operator():
    with pytest.raises(TypeError, match=r"its name says pooling: pass op='max_pool2d' or op='avg_pool2d'"):
        adapt(dl.pool_forward)


# --- one file of each style through the command line ----------------------------------------------

@pytest.mark.parametrize(("path", "obj", "op", "rc"), [
    (LAYERS, "MaxPool2D", "max_pool2d", 0), (LAYERS, "AveragePool2D", "avg_pool2d", 0), (LAYERS, "Conv1D", "conv1d", 0),
    (LAYERS, "MaxPool2DTiesAll", "max_pool2d", 1),
    (CS231N, "conv_forward_naive", None, 0), (CS231N, "max_pool_forward_naive", None, 0),
    (CS231N, "conv_forward_dwlast", None, 1),
    (DLAI, "conv_forward", None, 0), (DLAI, "pool_forward", "avg_pool2d", 0),
    (TORCH_CONVS, "conv2d_unfold", None, 0),
    (ARRAY_CTOR, "Convolution", None, 0), (ARRAY_CTOR, "PoolingPadForgotten", "max_pool2d", 1),
])
def test_convbench_check_on_a_file_of_each_style(path, obj, op, rc):
    r = subprocess.run([sys.executable, "-m", "convbench.cli", "check", "--suite", "edge", "--impl", f"{path}:{obj}",
                        *(["--op", op] if op else [])], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == rc, r.stdout[-2000:] + r.stderr[-2000:]
    assert ("OK:" if rc == 0 else "FAILED:") in r.stdout


class _KernelShapeIndexed:
    """Pairs read under its own names only: ``kernel_shape[0]``, ``to_tuple(stride)``."""

    def __init__(self, in_channels, out_channels, kernel_shape, stride=1, padding=0):
        if type(kernel_shape) is int:
            self.kh = self.kw = kernel_shape
        else:
            self.kh, self.kw = kernel_shape[0], kernel_shape[1]
        self.stride = to_tuple(stride)
        self.padding = padding
        self.W = np.zeros((out_channels, in_channels, self.kh, self.kw))
        self.b = np.zeros(out_channels)

    def forward(self, x):
        return conv_forward(x, self.W, self.b, self.stride, self.padding)


def to_tuple(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def test_a_layer_reading_pairs_under_its_own_argument_names_gets_its_rectangular_cases():
    impl = load_impl(_KernelShapeIndexed, op="conv2d")
    assert impl.pairs and "rectangular" in impl.info.features
    recs, st = _statuses(impl, [c for c in EDGE if c.id in ("nonsquare.kernel", "nonsquare.stride")], checks=["exact"])
    assert {(r["case"], r["status"]) for r in recs if r["direction"] == "forward"} == {
        ("nonsquare.kernel", "passed"), ("nonsquare.stride", "passed")}
