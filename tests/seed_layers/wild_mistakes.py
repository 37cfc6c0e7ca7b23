"""Mistakes found in code from the wild, each in the form it was found in. Every one must fail,
and the verdict must say why (or, for ``Conv2DFloat64``, that only the dtype is wrong).
"""
import numpy as np

from wild_functions import _conv


class AvgPool2dDefaultStride:
    """The stride defaults to ``kernel_size[0]``: right for square windows only."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.stride = (stride, stride) if isinstance(stride, int) else stride
        if self.stride is None:
            self.stride = (self.kernel_size[0], self.kernel_size[0])
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)

    def forward(self, x):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        N, C, H, W = xp.shape
        oh, ow = (H - kh) // sh + 1, (W - kw) // sw + 1
        out = np.empty((N, C, oh, ow), dtype=x.dtype)
        for i in range(oh):
            for j in range(ow):
                out[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
        return out


class Conv2DFloat64:
    """Every value right, computed in float64 whatever it is given (``np.zeros(shape)`` without dtype)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.stride, self.padding = stride, padding
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        F, _, k, _ = self.W.shape
        s, p = self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oh, ow = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        out = np.zeros((N, F, oh, ow))
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, :, i * s:i * s + k, j * s:j * s + k]
                out[:, :, i, j] = np.tensordot(patch, self.W, axes=([1, 2, 3], [1, 2, 3])) + self.b
        return out

    def backward(self, dout):
        x = self.x
        N, C, H, W = x.shape
        F, _, k, _ = self.W.shape
        s, p = self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        dxp = np.zeros(xp.shape)
        self.dW = np.zeros(self.W.shape)
        self.db = dout.sum(axis=(0, 2, 3))
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                patch = xp[:, :, i * s:i * s + k, j * s:j * s + k]
                self.dW += np.tensordot(dout[:, :, i, j], patch, axes=([0], [0]))
                dxp[:, :, i * s:i * s + k, j * s:j * s + k] += np.tensordot(dout[:, :, i, j], self.W, axes=([1], [0]))
        return dxp[:, :, p:p + H, p:p + W]


def conv2d_two_halves(x, w, b, stride=1, padding=0):
    """The batch split in two halves (one per worker), the second starting one sample late: wrong
    only from a batch of 3 up."""
    N = x.shape[0]
    mid = N // 2 + 1
    first = _conv(x[:mid], w, stride, padding)
    out = np.zeros((N, *first.shape[1:]), dtype=x.dtype)
    out[:mid] = first
    if mid + 1 < N:
        out[mid + 1:] = _conv(x[mid + 1:], w, stride, padding)
    return out + b.reshape(1, -1, 1, 1)


def conv2d_bias_per_product(x, w, b, stride=1, padding=0):
    """``np.sum(window * w[f] + b[f])``: the bias added once per product, C*kh*kw times."""
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.zeros((N, F, oh, ow), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(oh):
                for j in range(ow):
                    window = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(window * w[f] + b[f])
    return out


def max_pool_forward_nostride(x, pool_param):
    """A right forward; its backward (below) forgets the stride."""
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for h in range(Ho):
        for w in range(Wo):
            out[:, :, h, w] = x[:, :, h * s:h * s + ph, w * s:w * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_nostride(dout, cache):
    x, pool_param = cache
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    N, C, _, _ = x.shape
    _, _, Ho, Wo = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for h in range(Ho):
                for w in range(Wo):
                    vert_start = h  # should be h * stride
                    horiz_start = w
                    window = x[n, c, vert_start:vert_start + ph, horiz_start:horiz_start + pw]
                    a, k = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, vert_start + a, horiz_start + k] += dout[n, c, h, w]
    return dx


def conv_forward_crop(x, w, b, conv_param):
    """A right forward; its backward (below) crops the padding with ``[pad:-pad]``."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    out = _conv(x, w, stride, pad) + b.reshape(1, -1, 1, 1)
    return out, (x, w, b, conv_param)


def conv_backward_crop(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dxp[:, :, pad:-pad, pad:-pad]  # empty where pad is 0
    return dx, dw, dout.sum(axis=(0, 2, 3))
