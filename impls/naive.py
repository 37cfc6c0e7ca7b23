"""conv2d as the definition reads: one Python loop per index, every product written out."""
from __future__ import annotations

from typing import Any

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.registry import Implementation, register

__all__ = ["NaiveConv2d"]


@register(op="conv2d", name="naive", backend="numpy", device="cpu",
          description="pure Python loops over every output element and kernel tap (the course baseline)")
class NaiveConv2d(Implementation):
    """Direct convolution in plain Python loops: the honest slow baseline.

    Arrays only hold the data: they are turned into nested lists and every multiply-add is an
    explicit Python statement, so the timing is that of the interpreter, not of a library. Python
    floats are doubles, so sums are formed in float64 and the result is cast to the input dtype.

    Notes
    -----
    Forward: ``y[n, o, i, j] = b[o] + sum_{c, u, v} x[n, g*C/g + c, i*sh - pt + u*dh, j*sw - pl + v*dw] * w[o, c, u, v]``
    over taps landing inside the input (padding contributes zeros, so those taps are skipped).
    Backward walks the same index space once, scattering ``dy * w`` into ``dx`` and gathering
    ``dy * x`` into ``dw``.
    """

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        xl, wl = x.tolist(), w.tolist()
        bl = b.tolist() if b is not None else None
        (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
        pt, _, pl, _ = p.pads
        cg, og = p.c // p.groups, p.o // p.groups
        y = [[[[0.0] * ow for _ in range(oh)] for _ in range(p.o)] for _ in range(p.n)]
        for n in range(p.n):
            for o in range(p.o):
                c0 = (o // og) * cg
                wo = wl[o]
                for i in range(oh):
                    for j in range(ow):
                        acc = bl[o] if bl is not None else 0.0
                        for c in range(cg):
                            xc, wc = xl[n][c0 + c], wo[c]
                            for u in range(p.kh):
                                r = i * sh - pt + u * dh
                                if r < 0 or r >= p.h:
                                    continue
                                for v in range(p.kw):
                                    s = j * sw - pl + v * dw
                                    if 0 <= s < p.w:
                                        acc += xc[r][s] * wc[u][v]
                        y[n][o][i][j] = acc
        return np.array(y, dtype=x.dtype)

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dyl, xl, wl = dy.tolist(), x.tolist(), w.tolist()
        (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
        pt, _, pl, _ = p.pads
        cg, og = p.c // p.groups, p.o // p.groups
        dx: list[Any] = [[[[0.0] * p.w for _ in range(p.h)] for _ in range(p.c)] for _ in range(p.n)]
        dwl: list[Any] = [[[[0.0] * p.kw for _ in range(p.kh)] for _ in range(cg)] for _ in range(p.o)]
        db = [0.0] * p.o
        for n in range(p.n):
            for o in range(p.o):
                c0 = (o // og) * cg
                for i in range(oh):
                    for j in range(ow):
                        g = dyl[n][o][i][j]
                        db[o] += g
                        for c in range(cg):
                            xc, dxc, wc, dwc = xl[n][c0 + c], dx[n][c0 + c], wl[o][c], dwl[o][c]
                            for u in range(p.kh):
                                r = i * sh - pt + u * dh
                                if r < 0 or r >= p.h:
                                    continue
                                for v in range(p.kw):
                                    s = j * sw - pl + v * dw
                                    if 0 <= s < p.w:
                                        dxc[r][s] += g * wc[u][v]
                                        dwc[u][v] += g * xc[r][s]
        dt = x.dtype
        return (np.array(dx, dtype=dt), np.array(dwl, dtype=dt),
                np.array(db, dtype=dt) if p.bias else None)
