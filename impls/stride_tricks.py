"""conv2d on sliding-window views: no patch copy of our own, the windows are strides over the input."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convbench.ops.conv2d import Conv2dParams
from convbench.registry import Implementation, register
from impls._numpy import crop, pad, padded_shape

__all__ = ["StrideTricksConv2d", "windows"]


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
