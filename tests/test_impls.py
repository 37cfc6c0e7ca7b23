"""The shipped conv2d families against PyTorch float64 autograd, on every edge case."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench.cases import get_suite
from convbench.ops.conv2d import Conv2dParams
from convbench.ops import get_op
from convbench.registry import Implementation, availability, registered

IMPLS = registered("conv2d")
EDGE = get_suite("edge")


def _impl_params():
    return [pytest.param(i, id=i.info.name,
                         marks=[pytest.mark.skip(reason=availability(i))] if availability(i) else [])
            for i in IMPLS]


def _inputs(p: Conv2dParams, dtype: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    s = p.shapes()
    x, w, dy = (rng.standard_normal(s[k]).astype(dtype) for k in ("x", "w", "dy"))
    b = rng.standard_normal(s["b"]).astype(dtype) if p.bias else None
    return x, w, b, dy


def _torch_reference(p: Conv2dParams, x, w, b, dy):
    """Forward and (dx, dw, db) from F.conv2d and autograd, in float64."""
    xt, wt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w))
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if b is not None else None
    pt, pb, pl, pr = p.pads
    y = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=p.stride, dilation=p.dilation, groups=p.groups)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(),
            bt.grad.numpy() if bt is not None else None)


def _run(impl, p, x, w, b, dy):
    y = impl.to_numpy(impl.forward(p, *impl.prepare(x, w, b)))
    impl.sync()
    grads = impl.backward(p, *impl.prepare(dy, x, w))
    impl.sync()
    return (y, *(None if g is None else impl.to_numpy(g) for g in grads))


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def _assert_close(p, got, want, tol):
    for name, g, r in zip(("forward", "grad_input", "grad_weight", "grad_bias"), got, want):
        if r is None:
            assert g is None, f"{name} must be None without bias"
            continue
        assert g.shape == r.shape, f"{name} shape {g.shape}, expected {r.shape}"
        err = _rel_err(g, r)
        assert err < tol, f"{name}: relative error {err:.3g} >= {tol} on {p.descriptor}"


def _skip_unsupported(impl, p, dtype):
    why = impl.unsupported(p, dtype, "forward") or impl.unsupported(p, dtype, "backward")
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
@pytest.mark.parametrize("impl", _impl_params())
def test_float64_matches_torch_autograd(impl, case):
    p = case.params
    _skip_unsupported(impl, p, "float64")
    x, w, b, dy = _inputs(p, "float64")
    before = [a.copy() for a in (x, w, dy)]
    got = _run(impl, p, x, w, b, dy)
    _assert_close(p, got, _torch_reference(p, x, w, b, dy), 1e-10)
    assert all(g is None or g.dtype == np.float64 for g in got)
    for a, a0 in zip((x, w, dy), before):
        np.testing.assert_array_equal(a, a0, err_msg="an input was modified")


@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
@pytest.mark.parametrize("impl", _impl_params())
def test_float32_stays_float32(impl, case):
    p = case.params
    _skip_unsupported(impl, p, "float32")
    x, w, b, dy = _inputs(p, "float32")
    got = _run(impl, p, x, w, b, dy)
    for g in got:
        assert g is None or g.dtype == np.float32
    want = _torch_reference(p, *(None if a is None else a.astype(np.float64) for a in (x, w, b, dy)))
    _assert_close(p, got, want, 1e-5)


def test_torch_cuda_unavailable_names_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    info = {i.name: i for i in convbench.implementations("conv2d")}["torch_cuda"]
    assert not info.available
    assert "CUDA" in info.reason


@pytest.mark.parametrize("case", [c for c in EDGE if c.id in ("pad.same.even", "all.at.once", "depthwise.mult2.s2")],
                         ids=lambda c: c.id)
def test_shared_torch_code_on_cpu(case):
    """torch_cuda is TorchConv2d on 'cuda' and nothing else: the same code, run here on the CPU."""
    from impls._torch import TorchConv2d

    cuda = convbench.registry.get_impl("torch_cuda")
    assert type(cuda).__bases__ == (TorchConv2d,) and cuda.device == "cuda"
    impl = TorchConv2d(device="cpu")
    assert impl.availability() is None
    p = case.params
    x, w, b, dy = _inputs(p, "float64", seed=1)
    _assert_close(p, _run(impl, p, x, w, b, dy), _torch_reference(p, x, w, b, dy), 1e-10)


def test_torch_availability_reasons(monkeypatch):
    from impls._torch import torch_availability

    monkeypatch.setattr(torch.version, "cuda", None)
    assert torch_availability("cuda") == f"CUDA not available (torch {torch.__version__}, built without CUDA)"
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_availability("cuda") == f"CUDA not available (torch {torch.__version__}, no CUDA device visible)"
    assert torch_availability("cpu") is None
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert torch_availability("cpu") == "torch is not installed"


@pytest.mark.parametrize("impl", _impl_params())
def test_public_api_matches_reference(impl):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    if impl.info.features is not None or type(impl).unsupported is not Implementation.unsupported:
        # an implementation with limits (winograd: 3x3 stride 1 only) gets a call it takes
        x, w, kw = x[:, :, :, :], rng.standard_normal((6, 2, 3, 3)), dict(padding=1, groups=2)
    _skip_unsupported(impl, get_op("conv2d").params_from_arrays(x, w, b, **kw), "float64")
    want = convbench.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(convbench.conv2d(x, w, b, impl=impl.info.name, **kw), want, rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(want.shape)
    for got, ref in zip(convbench.conv2d_backward(dy, x, w, impl=impl.info.name, **kw),
                        convbench.conv2d_backward(dy, x, w, **kw)):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    y32 = convbench.conv2d(x.astype(np.float32), w.astype(np.float32), impl=impl.info.name, padding=1, groups=2)
    assert y32.dtype == np.float32


def test_patch_matrix_bytes():
    from impls.im2col import im2col, patch_matrix_bytes

    p = Conv2dParams(n=2, c=6, h=7, w=10, o=6, kh=3, kw=2, stride=(2, 1), padding=(1, 0), groups=3)
    cols = im2col(p, np.zeros((2, 6, 7, 10), np.float32))
    assert patch_matrix_bytes(p, 4) == cols.nbytes == 2 * 4 * 9 * 6 * 3 * 2 * 4
