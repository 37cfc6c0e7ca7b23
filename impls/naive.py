"""Every operator as its definition reads: one Python loop per index, every product written out."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convbench.ops.avg_pool2d import AvgPool2dParams
from convbench.ops.conv1d import Conv1dParams
from convbench.ops.conv2d import Conv2dParams
from convbench.ops.max_pool2d import MaxPool2dParams
from convbench.protocol import Implementation, register

__all__ = ["NaiveConv2d", "NaiveConv1d", "NaiveMaxPool2d", "NaiveAvgPool2d"]


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


# --- the other operators, the same way ---------------------------------------------------------

@register(op="conv1d", name="naive", backend="numpy", device="cpu",
          description="pure Python loops over every output element and kernel tap (the course baseline)")
class NaiveConv1d(Implementation):
    """Direct 1-D convolution in plain Python loops; sums in Python floats (doubles).

    ``y[n, o, i] = b[o] + sum_{c, u} x[n, g*C/g + c, i*s - left + u*d] * w[o, c, u]`` over taps
    landing inside the input. Backward walks the same index space once.
    """

    def forward(self, p: Conv1dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        xl, wl = x.tolist(), w.tolist()
        left, ol = p.pads[0], p.out_l
        cg, og = p.c // p.groups, p.o // p.groups
        y = [[[0.0] * ol for _ in range(p.o)] for _ in range(p.n)]
        for n in range(p.n):
            for o in range(p.o):
                c0 = (o // og) * cg
                for i in range(ol):
                    acc = float(b[o]) if b is not None else 0.0
                    for c in range(cg):
                        xc, wc = xl[n][c0 + c], wl[o][c]
                        for u in range(p.k):
                            r = i * p.stride - left + u * p.dilation
                            if 0 <= r < p.l:
                                acc += xc[r] * wc[u]
                    y[n][o][i] = acc
        return np.array(y, dtype=x.dtype)

    def backward(self, p: Conv1dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dyl, xl, wl = dy.tolist(), x.tolist(), w.tolist()
        left, ol = p.pads[0], p.out_l
        cg, og = p.c // p.groups, p.o // p.groups
        dx = [[[0.0] * p.l for _ in range(p.c)] for _ in range(p.n)]
        dwl = [[[0.0] * p.k for _ in range(cg)] for _ in range(p.o)]
        db = [0.0] * p.o
        for n in range(p.n):
            for o in range(p.o):
                c0 = (o // og) * cg
                for i in range(ol):
                    g = dyl[n][o][i]
                    db[o] += g
                    for c in range(cg):
                        for u in range(p.k):
                            r = i * p.stride - left + u * p.dilation
                            if 0 <= r < p.l:
                                dx[n][c0 + c][r] += g * wl[o][c][u]
                                dwl[o][c][u] += g * xl[n][c0 + c][r]
        dt = x.dtype
        return np.array(dx, dtype=dt), np.array(dwl, dtype=dt), (np.array(db, dtype=dt) if p.bias else None)


def _max_window(plane: list[list[float]], p: MaxPool2dParams, i: int, j: int) -> tuple[float, int, int]:
    """(value, row, column) of window (i, j)'s maximum as PyTorch picks it: the first strictly
    greatest, or a NaN; (-inf, -1, -1) when the window holds no input element."""
    (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
    best, br, bc = -math.inf, -1, -1
    for u in range(p.kh):
        r = i * sh - ph + u * dh
        if r < 0 or r >= p.h:
            continue
        for v in range(p.kw):
            c = j * sw - pw + v * dw
            if 0 <= c < p.w:
                val = plane[r][c]
                if br < 0 or val > best or val != val:  # val != val: NaN, which always takes over
                    best, br, bc = val, r, c
    return best, br, bc


@register(op="max_pool2d", name="naive", backend="numpy", device="cpu",
          description="pure Python loops over every window and tap (the course baseline)")
class NaiveMaxPool2d(Implementation):
    """Max pooling in plain Python loops; backward finds each window's maximum again and adds the
    window's gradient there (the first maximum in row-major window order, or the NaN)."""

    def forward(self, p: MaxPool2dParams, x: np.ndarray) -> np.ndarray:
        xl = x.tolist()
        oh, ow = p.out_hw
        y = [[[[_max_window(xl[n][c], p, i, j)[0] for j in range(ow)] for i in range(oh)]
              for c in range(p.c)] for n in range(p.n)]
        return np.array(y, dtype=x.dtype)

    def backward(self, p: MaxPool2dParams, dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        xl, dyl = x.tolist(), dy.tolist()
        oh, ow = p.out_hw
        dx = [[[[0.0] * p.w for _ in range(p.h)] for _ in range(p.c)] for _ in range(p.n)]
        for n in range(p.n):
            for c in range(p.c):
                for i in range(oh):
                    for j in range(ow):
                        _, r, s = _max_window(xl[n][c], p, i, j)
                        if r >= 0:
                            dx[n][c][r][s] += dyl[n][c][i][j]
        return (np.array(dx, dtype=x.dtype),)


def _avg_extent(i: int, s: int, pad: int, k: int, size: int, include_pad: bool) -> tuple[int, int, int]:
    """(first, last + 1, divisor factor) of window i along one axis, PyTorch's formula."""
    a = i * s - pad
    b = min(a + k, size + pad)  # a ceil_mode window counts padding only up to the padded edge
    lo, hi = max(a, 0), min(b, size)
    return lo, hi, (b - a) if include_pad else (hi - lo)


@register(op="avg_pool2d", name="naive", backend="numpy", device="cpu",
          description="pure Python loops over every window and tap (the course baseline)")
class NaiveAvgPool2d(Implementation):
    """Average pooling in plain Python loops: each window's sum over its input elements, divided
    by PyTorch's divisor; backward spreads ``dy / divisor`` over the same elements."""

    def _windows(self, p: AvgPool2dParams):
        oh, ow = p.out_hw
        for i in range(oh):
            r0, r1, fh = _avg_extent(i, p.stride[0], p.padding[0], p.kh, p.h, p.count_include_pad)
            for j in range(ow):
                c0, c1, fw = _avg_extent(j, p.stride[1], p.padding[1], p.kw, p.w, p.count_include_pad)
                div = p.divisor_override if p.divisor_override is not None else fh * fw
                yield i, j, r0, r1, c0, c1, div

    def forward(self, p: AvgPool2dParams, x: np.ndarray) -> np.ndarray:
        xl = x.tolist()
        oh, ow = p.out_hw
        y = [[[[0.0] * ow for _ in range(oh)] for _ in range(p.c)] for _ in range(p.n)]
        for i, j, r0, r1, c0, c1, div in self._windows(p):
            for n in range(p.n):
                for c in range(p.c):
                    plane, acc = xl[n][c], 0.0
                    for r in range(r0, r1):
                        for s in range(c0, c1):
                            acc += plane[r][s]
                    y[n][c][i][j] = acc / div
        return np.array(y, dtype=x.dtype)

    def backward(self, p: AvgPool2dParams, dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        dyl = dy.tolist()
        dx = [[[[0.0] * p.w for _ in range(p.h)] for _ in range(p.c)] for _ in range(p.n)]
        for i, j, r0, r1, c0, c1, div in self._windows(p):
            for n in range(p.n):
                for c in range(p.c):
                    g, plane = dyl[n][c][i][j] / div, dx[n][c]
                    for r in range(r0, r1):
                        for s in range(c0, c1):
                            plane[r][s] += g
        return (np.array(dx, dtype=x.dtype),)
