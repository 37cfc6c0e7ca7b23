"""The oracle checked three ways: against torch float64, against plain loops, and by the adjoint identities."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convbench.cases import get_suite
from convbench.ops import get_op

OP = get_op("conv2d")
CASES = get_suite("edge") + get_suite("random")[:15]


def _inputs(p, seed=0):
    return OP.make_inputs(p, "float64", seed=seed)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reference_matches_torch_float64(case):
    p, a = case.params, _inputs(case.params)
    pt, pb, pl, pr = p.pads
    xt = torch.tensor(a["x"], requires_grad=True)
    wt = torch.tensor(a["w"], requires_grad=True)
    bt = torch.tensor(a["b"], requires_grad=True) if p.bias else None
    y = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=p.stride, dilation=p.dilation, groups=p.groups)
    y.backward(torch.tensor(a["dy"]))
    np.testing.assert_allclose(OP.reference_forward(p, a["x"], a["w"], a.get("b")), y.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx, dw, db = OP.reference_backward(p, a["dy"], a["x"], a["w"])
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if p.bias:
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def _loops(p, x, w, b):
    (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
    pt, _, pl, _ = p.pads
    cg, og = p.c // p.groups, p.o // p.groups
    y = np.zeros((p.n, p.o, oh, ow))
    for n in range(p.n):
        for o in range(p.o):
            for i in range(oh):
                for j in range(ow):
                    acc = b[o] if b is not None else 0.0
                    for c in range(cg):
                        for u in range(p.kh):
                            for v in range(p.kw):
                                r, s = i * sh - pt + u * dh, j * sw - pl + v * dw
                                if 0 <= r < p.h and 0 <= s < p.w:
                                    acc += x[n, (o // og) * cg + c, r, s] * w[o, c, u, v]
                    y[n, o, i, j] = acc
    return y


@pytest.mark.parametrize("case", CASES[:24], ids=lambda c: c.id)
def test_reference_matches_plain_loops(case):
    p, a = case.params, _inputs(case.params, seed=1)
    np.testing.assert_allclose(OP.reference_forward(p, a["x"], a["w"], a.get("b")), _loops(p, a["x"], a["w"], a.get("b")),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_adjoint_identities(case):
    """<conv(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_weight(x, dy)> (bias-free part)."""
    p, a = case.params, _inputs(case.params, seed=2)
    y = OP.reference_forward(p, a["x"], a["w"], None)
    dx, dw, db = OP.reference_backward(p, a["dy"], a["x"], a["w"])
    lhs = float(np.vdot(y, a["dy"]))
    scale = float(np.vdot(np.abs(y), np.abs(a["dy"]))) + 1.0
    assert abs(lhs - float(np.vdot(a["x"], dx))) <= 1e-12 * scale
    assert abs(lhs - float(np.vdot(a["w"], dw))) <= 1e-12 * scale
    if p.bias:
        np.testing.assert_allclose(db, a["dy"].sum(axis=(0, 2, 3)), rtol=1e-12)
