"""A correct, simple im2col conv2d in NumPy, written the way a course writes it: the planted bugs derive from it.

Everything is in the input dtype; stride, padding and kernel are (h, w) pairs.
"""
from __future__ import annotations

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_hw(h, w, k, s, p):
    return (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1


def pad_input(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))


def prologue(x, w, stride, padding):
    """What every loop of a function-style conv starts with: the stride pair, the output size and
    the padded input."""
    s, p = pair(stride), pair(padding)
    oh, ow = out_hw(x.shape[2], x.shape[3], w.shape[2:], s, p)
    return s, oh, ow, pad_input(x, p)


def im2col(x, k, s, p):
    """(N*OH*OW, C*kh*kw) patch matrix."""
    n, c, h, w = x.shape
    oh, ow = out_hw(h, w, k, s, p)
    xp = pad_input(x, p)
    cols = np.empty((n, c, k[0], k[1], oh, ow), x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            cols[:, :, i, j] = xp[:, :, i:i + s[0] * oh:s[0], j:j + s[1] * ow:s[1]]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def col2im(cols, x_shape, k, s, p, accumulate=True):
    n, c, h, w = x_shape
    oh, ow = out_hw(h, w, k, s, p)
    c6 = cols.reshape(n, oh, ow, c, k[0], k[1]).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), cols.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            if accumulate:
                dxp[:, :, i:i + s[0] * oh:s[0], j:j + s[1] * ow:s[1]] += c6[:, :, i, j]
            else:
                dxp[:, :, i:i + s[0] * oh:s[0], j:j + s[1] * ow:s[1]] = c6[:, :, i, j]
    return dxp[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


def conv_forward(x, w, b, stride=1, padding=0):
    o, c, kh, kw = w.shape
    s, p = pair(stride), pair(padding)
    n, _, h, wd = x.shape
    oh, ow = out_hw(h, wd, (kh, kw), s, p)
    cols = im2col(x, (kh, kw), s, p)
    y = cols @ w.reshape(o, -1).T
    if b is not None:
        y = y + b
    return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2).astype(x.dtype, copy=False)


def conv_backward(dout, x, w, stride=1, padding=0):
    o, c, kh, kw = w.shape
    s, p = pair(stride), pair(padding)
    cols = im2col(x, (kh, kw), s, p)
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d2.T @ cols).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    dx = col2im(d2 @ w.reshape(o, -1), x.shape, (kh, kw), s, p)
    return dx, dw, db


class Conv2D:
    """Seed-style layer: W, b, forward(x), backward(dout) -> dx, leaving dW and db."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.k, self.stride, self.padding = pair(kernel_size), pair(stride), pair(padding)
        scale = np.sqrt(2.0 / (in_channels * self.k[0] * self.k[1]))
        self.W = np.random.randn(out_channels, in_channels, *self.k) * scale
        self.b = np.zeros(out_channels)
        self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return conv_forward(x, self.W, self.b, self.stride, self.padding)

    def backward(self, dout):
        dx, self.dW, self.db = conv_backward(dout, self.x, self.W, self.stride, self.padding)
        return dx
