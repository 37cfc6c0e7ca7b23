"""conv2d (and conv1d, as height 1) as a patch matrix and one GEMM: im2col forward, col2im backward."""
from __future__ import annotations

import numpy as np

from convbench.ops.conv1d import Conv1dParams
from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from impls._numpy import as_conv2d, crop, pad, padded_shape, tap

__all__ = ["Im2colConv2d", "Im2colConv1d", "im2col", "col2im", "patch_matrix_bytes"]


def patch_matrix_bytes(p: Conv2dParams, itemsize: int) -> int:
    """Bytes of the patch matrix forward builds: ``N*OH*OW*C*kh*kw*itemsize`` (the expected workspace)."""
    oh, ow = p.out_hw
    return p.n * oh * ow * p.c * p.kh * p.kw * itemsize


def im2col(p: Conv2dParams, x: np.ndarray) -> np.ndarray:
    """The patch matrix of ``x``, shape ``(N, groups, C/g*kh*kw, OH*OW)``, copied tap by tap."""
    xp = pad(p, x)
    oh, ow = p.out_hw
    g, cg = p.groups, p.c // p.groups
    cols = np.empty((p.n, g, cg, p.kh, p.kw, oh, ow), dtype=x.dtype)
    xg = xp.reshape(p.n, g, cg, *xp.shape[2:])
    # one strided copy per kernel tap: kh*kw large copies, instead of N*OH*OW small ones
    for u in range(p.kh):
        for v in range(p.kw):
            rows, cs = tap(p, u, v)
            cols[:, :, :, u, v] = xg[:, :, :, rows, cs]
    return cols.reshape(p.n, g, cg * p.kh * p.kw, oh * ow)


def col2im(p: Conv2dParams, cols: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`im2col`: patch-matrix gradients summed back onto the input, shape (N, C, H, W)."""
    oh, ow = p.out_hw
    g, cg = p.groups, p.c // p.groups
    c7 = cols.reshape(p.n, g, cg, p.kh, p.kw, oh, ow)
    dxp = np.zeros(padded_shape(p), dtype=cols.dtype)
    dxg = dxp.reshape(p.n, g, cg, *dxp.shape[2:])
    # overlapping windows must accumulate; a += per tap on a strided slice never aliases within
    # one tap, and is far faster than np.add.at
    for u in range(p.kh):
        for v in range(p.kw):
            rows, cs = tap(p, u, v)
            dxg[:, :, :, rows, cs] += c7[:, :, :, u, v]
    return np.ascontiguousarray(crop(p, dxp))


@register(op="conv2d", name="im2col", backend="numpy", device="cpu",
          description="patch matrix (im2col copy) + one batched GEMM per sample; col2im backward")
class Im2colConv2d(Implementation):
    """Patch matrix plus GEMM, the classic lowering of convolution to matrix multiplication.

    Forward copies every receptive field into a patch matrix (``N*OH*OW`` rows of
    ``C/g*kh*kw`` values per group, the workspace of :func:`patch_matrix_bytes`), then multiplies
    by the weight matrix. The patch matrix is stored per sample and transposed,
    ``(N, groups, C/g*kh*kw, OH*OW)``, so that ``W_g @ cols[n, g]`` lands directly in NCHW order:
    one ``np.matmul`` over the (N, groups) stack, no output transpose.

    Backward: ``dW_g = sum_n dy[n, g] @ cols[n, g]^T``, ``dcols = W_g^T @ dy[n, g]``, then col2im
    adds each patch gradient back where it came from. Everything is computed in the input dtype.
    """

    def workspace_bytes(self, p: Conv2dParams, dtype: str, direction: str) -> int:
        """Expected extra memory: the patch matrix (backward also builds its gradient, as large)."""
        one = patch_matrix_bytes(p, np.dtype(dtype).itemsize)
        return one if direction == "forward" else 2 * one

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        oh, ow = p.out_hw
        g, og = p.groups, p.o // p.groups
        cols = im2col(p, x)
        wm = w.reshape(g, og, -1)
        y = np.matmul(wm, cols)  # (N, g, og, OH*OW)
        y = y.reshape(p.n, p.o, oh, ow)
        if b is not None:
            y += b[None, :, None, None]
        return y

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        oh, ow = p.out_hw
        g, og = p.groups, p.o // p.groups
        cols = im2col(p, x)
        dym = dy.reshape(p.n, g, og, oh * ow)
        wm = w.reshape(g, og, -1)
        if p.n == 1:
            dw = np.matmul(dym[0], cols[0].transpose(0, 2, 1))
        else:
            # per-sample products summed over the batch: the stack stays in the GEMM's native
            # layout; folding N into the contraction would need a transposed copy of cols
            dw = np.matmul(dym, cols.transpose(0, 1, 3, 2)).sum(axis=0)
        dcols = np.matmul(wm.transpose(0, 2, 1), dym)  # (N, g, C/g*kh*kw, OH*OW)
        dx = col2im(p, dcols)
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return dx, dw.reshape(w.shape), db


@register(op="conv1d", name="im2col", backend="numpy", device="cpu",
          description="conv2d's im2col on a height-1 view: patch matrix + one batched GEMM; col2im backward")
class Im2colConv1d(Implementation):
    """conv1d as conv2d of height 1, through :class:`Im2colConv2d` (patch matrix ``N*OL*C*k``)."""

    _conv2d = Im2colConv2d()

    def workspace_bytes(self, p: Conv1dParams, dtype: str, direction: str) -> int:
        return self._conv2d.workspace_bytes(as_conv2d(p), dtype, direction)

    def forward(self, p: Conv1dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return self._conv2d.forward(as_conv2d(p), x[:, :, None, :], w[:, :, None, :], b)[:, :, 0, :]

    def backward(self, p: Conv1dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dx, dw, db = self._conv2d.backward(as_conv2d(p), dy[:, :, None, :], x[:, :, None, :], w[:, :, None, :])
        return np.ascontiguousarray(dx[:, :, 0, :]), np.ascontiguousarray(dw[:, :, 0, :]), db
