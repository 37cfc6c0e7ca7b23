"""Layers whose constructor takes the weight arrays themselves, or the pool size one axis at a time,
as the "deep learning from scratch" books write them: ``Convolution(W, b, stride=1, pad=0)``,
``Pooling(pool_h, pool_w, stride=1, pad=0)`` (max pooling). The first two are correct; the two after
them make that style's classic mistakes (an output size that forgets the padding; a gradient
buffer made with ``np.zeros`` in float64), and must fail.
"""
import numpy as np


def _windows(xp, kh, kw, s, oh, ow):
    """(N, C, oh, ow, kh, kw) view of the windows of a padded input."""
    n, c = xp.shape[:2]
    sn, sc, sh, sw = xp.strides
    return np.lib.stride_tricks.as_strided(xp, (n, c, oh, ow, kh, kw), (sn, sc, sh * s, sw * s, sh, sw))


class Convolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad
        self.dW = self.db = None

    def forward(self, x):
        o, c, kh, kw = self.W.shape
        s, p = self.stride, self.pad
        n, _, h, w = x.shape
        oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        self.xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        self.x_shape = x.shape
        win = _windows(self.xp, kh, kw, s, oh, ow)
        return np.einsum("ncijuv,ocuv->noij", win, self.W) + self.b.reshape(1, -1, 1, 1)

    def backward(self, dout):
        o, c, kh, kw = self.W.shape
        s, p = self.stride, self.pad
        oh, ow = dout.shape[2:]
        win = _windows(self.xp, kh, kw, s, oh, ow)
        self.dW = np.einsum("ncijuv,noij->ocuv", win, dout)
        self.db = dout.sum(axis=(0, 2, 3))
        dxp = np.zeros_like(self.xp)
        for u in range(kh):
            for v in range(kw):
                dxp[:, :, u:u + s * oh:s, v:v + s * ow:s] += np.einsum("noij,oc->ncij", dout, self.W[:, :, u, v])
        h, w = self.x_shape[2:]
        return dxp[:, :, p:p + h, p:p + w]


class Pooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad

    def _out(self, h, w):
        p, s = self.pad, self.stride
        return (h + 2 * p - self.pool_h) // s + 1, (w + 2 * p - self.pool_w) // s + 1

    def forward(self, x):
        p = self.pad
        self.x = x
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
        oh, ow = self._out(*x.shape[2:])
        win = _windows(xp, self.pool_h, self.pool_w, self.stride, oh, ow)
        n, c = x.shape[:2]
        flat = win.reshape(n, c, oh, ow, -1)
        self.arg = flat.argmax(axis=-1)  # the first maximum gets the gradient
        return flat.max(axis=-1)

    def backward(self, dout):
        p, s = self.pad, self.stride
        n, c, h, w = self.x.shape
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=dout.dtype)
        oh, ow = dout.shape[2:]
        nn, cc, ii, jj = np.indices((n, c, oh, ow))
        rows = ii * s + self.arg // self.pool_w
        cols = jj * s + self.arg % self.pool_w
        np.add.at(dxp, (nn, cc, rows, cols), dout)
        return dxp[:, :, p:p + h, p:p + w]


class PoolingPadForgotten(Pooling):
    """The output size computed without the padding: (H - pool_h) // stride + 1."""

    def _out(self, h, w):
        s = self.stride
        return (h - self.pool_h) // s + 1, (w - self.pool_w) // s + 1


class PoolingFloat64Grad(Pooling):
    """The gradient buffer made with np.zeros(shape), float64 whatever the input."""

    def backward(self, dout):
        return super().backward(dout).astype(np.float64)
