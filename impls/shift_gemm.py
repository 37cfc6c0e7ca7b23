"""conv2d as implicit GEMM: channels-last data, one GEMM per kernel tap over a shifted view."""
from __future__ import annotations

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.registry import Implementation, register
from impls._fast_common import from_phases, gemm, geometry, single_thread_blas, to_phases

__all__ = ["ShiftGemmConv2d", "grad_weight"]


def grad_weight(p: Conv2dParams, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad_weight`` alone, one GEMM per tap (used by winograd's backward)."""
    return _backward(p, dy, x, None)[1]


def _backward(p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
              w: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(grad_input or None when ``w`` is None, grad_weight, grad_bias)."""
    g = geometry(p)
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    if cg == 1 and G > 1:
        ph = to_phases(p, g, x, 1)[:, 0]
        dys = np.zeros((g.rows, G, og), dy.dtype)
        dys.reshape(p.n, g.hq, g.wq, G, og)[:, :oh, :ow] = dy.reshape(p.n, G, og, oh, ow).transpose(0, 3, 4, 1, 2)
        dwt = np.empty((p.kh, p.kw, G, og), dy.dtype)
        wt = None if w is None else w.reshape(G, og, p.kh, p.kw).transpose(2, 3, 0, 1)
        dph = None if w is None else np.zeros_like(ph)
        d = dys[:g.m]
        for u, v, k, off in g.taps:
            dwt[u, v] = np.einsum("rg,rgo->go", ph[k, off:off + g.m], d)
            if dph is not None:
                dph[k, off:off + g.m] += np.einsum("rgo,go->rg", d, wt[u, v])
        dx = None if dph is None else from_phases(p, g, dph[:, None], 1)
        dw = np.ascontiguousarray(dwt.transpose(2, 3, 0, 1)).reshape(p.o, 1, p.kh, p.kw)
        db = dys.sum(axis=0).reshape(p.o) if p.bias else None
        return dx, dw, db
    ph = to_phases(p, g, x, G)
    dys = np.zeros((G, g.rows, og), dy.dtype)
    dys.reshape(G, p.n, g.hq, g.wq, og)[:, :, :oh, :ow] = dy.reshape(p.n, G, og, oh, ow).transpose(1, 0, 3, 4, 2)
    dwt = np.empty((G, p.kh, p.kw, cg, og), dy.dtype)
    wtt = None if w is None else np.ascontiguousarray(w.reshape(G, og, cg, p.kh, p.kw).transpose(0, 3, 4, 1, 2))
    dph = None if w is None else np.zeros_like(ph)
    with single_thread_blas():
        for gi in range(G):
            for u, v, k, off in g.taps:
                np.dot(ph[k, gi, off:off + g.m].T, dys[gi, :g.m], out=dwt[gi, u, v])
    for gi in range(G):
        for u, v, k, off in g.taps:
            if dph is not None:
                gemm(dys[gi, :g.m], wtt[gi, u, v], dph[k, gi, off:off + g.m], accumulate=True)
    dx = None if dph is None else from_phases(p, g, dph, G)
    dw = np.ascontiguousarray(dwt.transpose(0, 4, 3, 1, 2)).reshape(p.o, cg, p.kh, p.kw)
    db = dys.sum(axis=1).reshape(p.o) if p.bias else None
    return dx, dw, db


@register(op="conv2d", name="shift_gemm", backend="numpy", device="cpu", exact=True, algorithm="direct",
          description="implicit GEMM: NHWC stride phases, one BLAS GEMM per kernel tap on a shifted "
                      "contiguous view, accumulated in place (beta=1); no patch matrix")
class ShiftGemmConv2d(Implementation):
    """Implicit GEMM: no patch matrix, ``kh*kw`` GEMMs over shifted views of one NHWC copy.

    The padded input is copied once to channels-last and split into ``sh*sw`` stride phases (one
    phase for stride 1), each flattened to ``(rows, C)``. For kernel tap ``(u, v)`` the rows every
    output needs are one contiguous slice of one phase, at a fixed row offset, so the tap is one
    GEMM ``(rows, C/g) @ (C/g, O/g)`` on a *view*, accumulated into the output by BLAS itself
    (``beta=1``, no temporary). Outputs are computed over the full phase width and the columns past
    ``OW`` cropped: a few percent more flops (``(Wp)/OW``) buys operands that need no copy.

    Backward reuses the layout: ``grad_weight[u, v] = view^T @ dY`` (one GEMM per tap), and
    ``grad_input`` scatters ``dY @ W[u, v]^T`` into the same shifted view of a zero phase buffer
    (one accumulating GEMM per tap), then folds the phases back to NCHW. ``dY`` is laid out
    with zeros at the thrown-away positions, so they contribute nothing.

    Depthwise layers (one input channel per group) use broadcast multiply-adds on the same views,
    since a GEMM with inner dimension 1 is all overhead. Every output is a plain sum of products,
    so small-integer inputs give bit-exact results.
    """

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        g = geometry(p)
        G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        oh, ow = p.out_hw
        if cg == 1 and G > 1:
            ph = to_phases(p, g, x, 1)[:, 0]                                     # (phases, R, C)
            wt = w.reshape(G, og, p.kh, p.kw).transpose(2, 3, 0, 1)              # (kh, kw, G, og)
            ys = np.empty((g.rows, G, og), x.dtype)
            tmp = np.empty((g.m, G, og), x.dtype)
            for t, (u, v, k, off) in enumerate(g.taps):
                np.multiply(ph[k, off:off + g.m, :, None], wt[u, v], out=tmp if t else ys[:g.m])
                if t:
                    ys[:g.m] += tmp
            src = ys.reshape(p.n, g.hq, g.wq, G, og)[:, :oh, :ow].transpose(0, 3, 4, 1, 2)
        else:
            ph = to_phases(p, g, x, G)                                           # (phases, G, R, cg)
            wt = np.ascontiguousarray(w.reshape(G, og, cg, p.kh, p.kw).transpose(0, 3, 4, 2, 1))
            ys = np.empty((G, g.rows, og), x.dtype)
            for gi in range(G):
                for t, (u, v, k, off) in enumerate(g.taps):
                    gemm(ph[k, gi, off:off + g.m], wt[gi, u, v], ys[gi, :g.m], accumulate=t > 0)
            src = ys.reshape(G, p.n, g.hq, g.wq, og)[:, :, :oh, :ow].transpose(1, 0, 4, 2, 3)
        y = np.empty((p.n, G, og, oh, ow), x.dtype)
        if b is not None:
            np.add(src, b.reshape(G, og, 1, 1), out=y)
        else:
            np.copyto(y, src)
        return y.reshape(p.n, p.o, oh, ow)

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dx, dw, db = _backward(p, dy, x, w)
        assert dx is not None
        return dx, dw, db
