"""The shipped conv1d, max_pool2d and avg_pool2d families against PyTorch float64 autograd, on every
edge case, with random and exact (for max_pool2d tie-heavy) inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convbench.cases import get_suite
from convbench.ops import get_op
from convbench.registry import availability, registered

OPS = ("conv1d", "max_pool2d", "avg_pool2d")
FAMILIES = {"conv1d": {"naive", "im2col", "stride_tricks", "torch_cpu", "torch_cuda"},
            "max_pool2d": {"naive", "stride_tricks", "torch_cpu", "torch_cuda"},
            "avg_pool2d": {"naive", "stride_tricks", "torch_cpu", "torch_cuda"}}


def _torch(op: str, p, a: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    """[forward, *grads] from torch.nn.functional and autograd, float64."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k != "dy") for k, v in a.items()}
    if op == "conv1d":
        y = F.conv1d(t["x"], t["w"], t.get("b"), stride=p.stride, padding=p.padding, dilation=p.dilation,
                     groups=p.groups)
    elif op == "max_pool2d":
        y = F.max_pool2d(t["x"], (p.kh, p.kw), p.stride, p.padding, p.dilation, p.ceil_mode)
    else:
        y = F.avg_pool2d(t["x"], (p.kh, p.kw), p.stride, p.padding, p.ceil_mode, p.count_include_pad,
                         p.divisor_override)
    y.backward(t["dy"])
    names = {"grad_input": "x", "grad_weight": "w", "grad_bias": "b"}
    return [y.detach().numpy()] + [t[names[g]].grad.numpy() if names[g] in t else None
                                   for g in get_op(op).grads]


def _run(impl, op: str, p, a: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    spec = get_op(op)
    y = impl.forward(p, *impl.prepare(*[a.get(k) for k in spec.forward_inputs]))
    impl.sync()
    grads = impl.backward(p, *impl.prepare(*[a.get(k) for k in spec.backward_inputs]))
    impl.sync()
    return [impl.to_numpy(y)] + [None if g is None else impl.to_numpy(g) for g in grads]


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    both_nan = np.isnan(got) & np.isnan(want)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN in different places"
    same_inf = np.isinf(want) & (got == want)
    diff = np.abs(np.where(both_nan | same_inf, 0.0, got.astype(np.float64) - want))
    scale = float(np.max(np.abs(np.where(np.isfinite(want), want, 0.0)), initial=0.0)) or 1.0
    return float(np.max(diff, initial=0.0)) / scale


def _params():
    for op in OPS:
        for impl in registered(op):
            why = availability(impl)
            for case in get_suite("edge", op):
                for fill in ("random", "exact"):
                    if fill == "exact" and get_op(op).exact_magnitude(case.params, "float64") == 0:
                        continue
                    yield pytest.param(op, impl, case, fill, id=f"{op}-{impl.info.name}-{case.id}-{fill}",
                                       marks=[pytest.mark.skip(reason=why)] if why else [])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("op, impl, case, fill", list(_params()))
def test_matches_torch_float64(op, impl, case, fill):
    p = case.params
    why = impl.unsupported(p, "float64", "backward")
    if why:
        pytest.skip(why)
    a = get_op(op).make_inputs(p, "float64", fill=fill, seed=11)
    got, want = _run(impl, op, p, a), _torch(op, p, a)
    for name, g, w in zip(("forward", *get_op(op).grads), got, want):
        if w is None:
            assert g is None, f"{name} must be None without bias"
            continue
        assert g.shape == w.shape and g.dtype == np.float64, name
        assert _rel_err(g, w) < 1e-10, name


@pytest.mark.parametrize("op", OPS)
def test_every_family_is_registered(op):
    assert {i.info.name for i in registered(op)} >= FAMILIES[op]


@pytest.mark.parametrize("op", OPS)
def test_float32_in_float32_out(op):
    case = get_suite("edge", op)[-1]
    a = get_op(op).make_inputs(case.params, "float32", seed=2)
    for impl in registered(op):
        if availability(impl) or impl.info.name not in FAMILIES[op]:
            continue
        for out in _run(impl, op, case.params, a):
            assert out is None or out.dtype == np.float32, impl.info.name


@pytest.mark.parametrize("name", ["naive", "stride_tricks", "torch_cpu"])
def test_max_pool_nan_and_ties_like_torch(name):
    from convbench.ops.max_pool2d import MaxPool2dParams

    impl = next(i for i in registered("max_pool2d") if i.info.name == name)
    p = MaxPool2dParams(n=1, c=2, h=5, w=6, kh=3, kw=2, stride=(1, 2), padding=(1, 1), ceil_mode=True)
    x = np.ones(p.shapes()["x"])
    x[0, 0, 2, 3] = x[0, 0, 3, 2] = np.nan
    x[0, 1] = -np.inf  # every window of channel 1 all -inf: the first input element takes the gradient
    a = {"x": x, "dy": np.random.default_rng(0).standard_normal(p.shapes()["dy"])}
    got, want = _run(impl, "max_pool2d", p, a), _torch("max_pool2d", p, a)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_torch_max_pool_refuses_backward_of_windows_missing_the_input():
    from convbench.ops.max_pool2d import MaxPool2dParams

    impl = next(i for i in registered("max_pool2d") if i.info.name == "torch_cpu")
    p = MaxPool2dParams(n=1, c=1, h=2, w=2, kh=2, kw=2, stride=1, padding=1, dilation=3)
    assert "out-of-range index" in impl.unsupported(p, "float64", "backward")
    assert impl.unsupported(p, "float64", "forward") is None
