"""Sliding-window views: no patch copy of our own, the windows are strides over the input.

conv2d (and conv1d as conv2d of height 1), max_pool2d and avg_pool2d.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convbench.ops._pool import PoolParams
from convbench.ops.avg_pool2d import AvgPool2dParams
from convbench.ops.conv1d import Conv1dParams
from convbench.ops.conv2d import Conv2dParams
from convbench.ops.max_pool2d import MaxPool2dParams
from convbench.protocol import Implementation, register
from impls._numpy import as_conv2d, crop, pad, padded_shape

__all__ = ["StrideTricksConv2d", "StrideTricksConv1d", "StrideTricksMaxPool2d", "StrideTricksAvgPool2d", "windows"]


def windows(a: np.ndarray, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int],
            out_hw: tuple[int, int]) -> np.ndarray:
    """Read-only view of ``a`` (N, C, H, W) as windows, shape (N, C, OH, OW, kh, kw).

    ``view[n, c, i, j, u, v] = a[n, c, i*sh + u*dh, j*sw + v*dw]``: stride and dilation are
    just the strides of the view, nothing is copied.
    """
    sn, sc, sy, sx = a.strides
    (sh, sw), (dh, dw) = stride, dilation
    return as_strided(a, shape=(a.shape[0], a.shape[1], *out_hw, kh, kw),
                      strides=(sn, sc, sy * sh, sx * sw, sy * dh, sx * dw), writeable=False)


@register(op="conv2d", name="stride_tricks", backend="numpy", device="cpu",
          description="as_strided window views of the padded input + einsum; dx as a convolution of the dilated dy")
class StrideTricksConv2d(Implementation):
    """Sliding-window views plus ``np.einsum(..., optimize=True)``.

    The padded input is viewed as (N, C, OH, OW, kh, kw) windows with ``as_strided``; stride and
    dilation are strides of the view. Forward contracts the windows with the weight over
    (C/g, kh, kw), one einsum per group. ``optimize=True`` matters: plain einsum walks the strided
    view in its own unblocked loop, about 50x slower; optimised, it hands the contraction to BLAS
    through ``tensordot``, which makes a contiguous copy of the view first, so the patch matrix
    is still built, by NumPy rather than by this code. It measured 1.2-3.5x faster than calling
    ``np.tensordot`` on the same view ourselves (it picks the axis order whose copy and GEMM run
    best) and needs no transpose of the output.

    Backward: ``dw`` contracts the same windows with ``dy``; ``dx`` is the transposed
    convolution, computed as a stride-1 convolution of ``dy`` dilated by the stride (zeros
    between its elements) and padded by ``dilation*(k-1)``, with the kernel flipped and its
    in/out channels swapped, again on a window view. Everything is computed in the input dtype.
    """

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        oh, ow = p.out_hw
        g, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        xp = np.ascontiguousarray(pad(p, x))
        win = windows(xp, p.kh, p.kw, p.stride, p.dilation, (oh, ow))
        if g == 1:
            # einsum hands back a transposed view of its GEMM's output: copy to a true NCHW array,
            # as every other family returns
            y = np.ascontiguousarray(np.einsum("nchwuv,ocuv->nohw", win, w, optimize=True))
        else:
            # a batch index shared by both operands (g) keeps einsum off BLAS: loop over groups
            y = np.empty((p.n, p.o, oh, ow), dtype=x.dtype)
            for gi in range(g):
                y[:, gi * og:(gi + 1) * og] = np.einsum(
                    "nchwuv,ocuv->nohw", win[:, gi * cg:(gi + 1) * cg], w[gi * og:(gi + 1) * og], optimize=True)
        if b is not None:
            y += b[None, :, None, None]
        return y

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        oh, ow = p.out_hw
        (sh, sw), (dh, dw_) = p.stride, p.dilation
        g, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        xp = np.ascontiguousarray(pad(p, x))
        win = windows(xp, p.kh, p.kw, p.stride, p.dilation, (oh, ow))
        dw = np.empty(w.shape, dtype=x.dtype)
        for gi in range(g):
            dw[gi * og:(gi + 1) * og] = np.einsum(
                "nohw,nchwuv->ocuv", dy[:, gi * og:(gi + 1) * og], win[:, gi * cg:(gi + 1) * cg], optimize=True)

        # dx_pad[r] = sum_u dy_dilated[r - u*dh] w[u]: a full correlation with the flipped kernel.
        # Rows of the padded input past the last window (stride remainder) get no gradient. With
        # stride s it multiplies s*s zeros too, yet measured on par with a per-tap scatter loop for
        # dense layers and 5x faster for depthwise ones (one einsum per group, not kh*kw).
        eh, ew = (p.kh - 1) * dh, (p.kw - 1) * dw_
        hcov, wcov = (oh - 1) * sh + 1 + eh, (ow - 1) * sw + 1 + ew
        dyd = np.zeros((p.n, p.o, hcov + eh, wcov + ew), dtype=dy.dtype)
        dyd[:, :, eh:eh + (oh - 1) * sh + 1:sh, ew:ew + (ow - 1) * sw + 1:sw] = dy
        dwin = windows(dyd, p.kh, p.kw, (1, 1), p.dilation, (hcov, wcov))
        wf = w[:, :, ::-1, ::-1]
        dxp = np.zeros(padded_shape(p), dtype=x.dtype)
        for gi in range(g):
            dxp[:, gi * cg:(gi + 1) * cg, :hcov, :wcov] = np.einsum(
                "nohwuv,ocuv->nchw", dwin[:, gi * og:(gi + 1) * og], wf[gi * og:(gi + 1) * og], optimize=True)
        dx = np.ascontiguousarray(crop(p, dxp))
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return dx, dw, db


# --- the other operators ---------------------------------------------------------------------

@register(op="conv1d", name="stride_tricks", backend="numpy", device="cpu",
          description="conv2d's stride_tricks on a height-1 view (as PyTorch runs conv1d)")
class StrideTricksConv1d(Implementation):
    """conv1d as conv2d of height 1, through :class:`StrideTricksConv2d`; the views are free."""

    _conv2d = StrideTricksConv2d()

    def forward(self, p: Conv1dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return self._conv2d.forward(as_conv2d(p), x[:, :, None, :], w[:, :, None, :], b)[:, :, 0, :]

    def backward(self, p: Conv1dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dx, dw, db = self._conv2d.backward(as_conv2d(p), dy[:, :, None, :], x[:, :, None, :], w[:, :, None, :])
        return np.ascontiguousarray(dx[:, :, 0, :]), np.ascontiguousarray(dw[:, :, 0, :]), db


def _pool_windows(p: PoolParams, x: np.ndarray, fill: float) -> np.ndarray:
    """Window view (N, C, OH, OW, kh, kw) of ``x`` padded with ``fill``, the padding extended on the
    far side to cover ceil_mode windows that hang past it."""
    oh, ow = p.out_hw
    (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dil
    hp = max(p.h + 2 * ph, (oh - 1) * sh + dh * (p.kh - 1) + 1)
    wp = max(p.w + 2 * pw, (ow - 1) * sw + dw * (p.kw - 1) + 1)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, hp - p.h - ph), (pw, wp - p.w - pw)), constant_values=fill)
    return windows(xp, p.kh, p.kw, p.stride, p.dil, (oh, ow))


@register(op="max_pool2d", name="stride_tricks", backend="numpy", device="cpu",
          description="as_strided window views of the -inf-padded input + vectorised first-max; bincount backward")
class StrideTricksMaxPool2d(Implementation):
    """Window views plus whole-array reductions; no Python loop over windows.

    The input padded with -inf is viewed as (N, C, OH, OW, kh*kw) windows (one copy, to flatten the
    taps). A second view of a padded mask tells input elements from padding, so the pick among
    equal maxima is PyTorch's: the first *input* element equal to the maximum, or the last NaN.
    Backward turns the picked taps into flat input indices and sums ``dy`` into them with one
    ``np.bincount``, which adds repeated indices (overlapping windows) correctly.
    """

    @staticmethod
    def _pick(p: MaxPool2dParams, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(maxima, picked tap, window-has-input) per window."""
        oh, ow = p.out_hw
        k = p.kh * p.kw
        vals = _pool_windows(p, x, -np.inf).reshape(p.n, p.c, oh, ow, k)
        valid = _pool_windows(p, np.ones((1, 1, p.h, p.w), bool), False).reshape(oh, ow, k)
        nan = np.isnan(vals)
        has_nan = nan.any(axis=-1)
        m = np.where(nan, -np.inf, vals).max(axis=-1)
        first = np.argmax((vals == m[..., None]) & valid, axis=-1)
        last_nan = k - 1 - np.argmax(nan[..., ::-1], axis=-1)
        return np.where(has_nan, np.nan, m).astype(x.dtype), np.where(has_nan, last_nan, first), valid.any(axis=-1)

    def forward(self, p: MaxPool2dParams, x: np.ndarray) -> np.ndarray:
        return self._pick(p, x)[0]

    def backward(self, p: MaxPool2dParams, dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        oh, ow = p.out_hw
        (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
        _, tap, has_input = self._pick(p, x)
        rows = np.arange(oh)[:, None] * sh - ph + (tap // p.kw) * dh
        cols = np.arange(ow)[None, :] * sw - pw + (tap % p.kw) * dw
        plane = np.arange(p.n * p.c).reshape(p.n, p.c, 1, 1) * (p.h * p.w)
        keep = np.broadcast_to(has_input, tap.shape)  # windows missing the input pass nothing back
        flat = (plane + rows * p.w + cols)[keep]
        dx = np.bincount(flat, weights=dy[keep].astype(np.float64), minlength=p.n * p.c * p.h * p.w)
        return (dx.astype(x.dtype).reshape(p.n, p.c, p.h, p.w),)


@register(op="avg_pool2d", name="stride_tricks", backend="numpy", device="cpu",
          description="as_strided window views of the zero-padded input, summed; per-tap strided scatter backward")
class StrideTricksAvgPool2d(Implementation):
    """Window views of the zero-padded input summed over the taps, divided by a (OH, OW) grid of
    PyTorch's divisors (an outer product of per-axis factors, or the override). Backward adds
    ``dy / divisor`` into one strided slice of the padded gradient per tap, then crops it."""

    @staticmethod
    def _divisors(p: AvgPool2dParams, dtype: np.dtype) -> np.ndarray:
        if p.divisor_override is not None:
            return np.asarray(p.divisor_override, dtype)
        return np.outer(p.axis_divisors(0), p.axis_divisors(1)).astype(dtype)

    def forward(self, p: AvgPool2dParams, x: np.ndarray) -> np.ndarray:
        return _pool_windows(p, x, 0.0).sum(axis=(-2, -1)) / self._divisors(p, x.dtype)

    def backward(self, p: AvgPool2dParams, dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        oh, ow = p.out_hw
        (sh, sw), (ph, pw) = p.stride, p.padding
        g = dy / self._divisors(p, dy.dtype)
        hp = max(p.h + 2 * ph, (oh - 1) * sh + p.kh)
        wp = max(p.w + 2 * pw, (ow - 1) * sw + p.kw)
        dxp = np.zeros((p.n, p.c, hp, wp), dtype=x.dtype)
        for u in range(p.kh):
            for v in range(p.kw):
                dxp[:, :, u:u + (oh - 1) * sh + 1:sh, v:v + (ow - 1) * sw + 1:sw] += g
        return (np.ascontiguousarray(dxp[:, :, ph:ph + p.h, pw:pw + p.w]),)
