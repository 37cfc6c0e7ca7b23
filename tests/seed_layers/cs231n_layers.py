"""Layers written the CS231n way: ``*_forward(..., param) -> (out, cache)``, ``*_backward(dout, cache)``.

The correct ones are written as the assignment's naive versions are; below them, the classic
mistakes, each a forward/backward pair of its own name.
"""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, Ho, Wo = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    rows, cols = slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW)
                    dw[f] += xp[n, :, rows, cols] * dout[n, f, i, j]
                    dxp[n, :, rows, cols] += w[f] * dout[n, f, i, j]
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, _, _ = x.shape
    _, _, Ho, Wo = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    a, k = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * s + a, j * s + k] += dout[n, c, i, j]
    return dx


class Conv:
    """The same layer as a class of static methods (the EECS 498 way)."""

    @staticmethod
    def forward(x, w, b, conv_param):
        return conv_forward_naive(x, w, b, conv_param)

    @staticmethod
    def backward(dout, cache):
        return conv_backward_naive(dout, cache)


class MaxPool:
    @staticmethod
    def forward(x, pool_param):
        return max_pool_forward_naive(x, pool_param)

    @staticmethod
    def backward(dout, cache):
        return max_pool_backward_naive(dout, cache)


def conv_forward_nobias(x, w, conv_param):
    """No bias at all: the cases with a bias are not its to take."""
    return conv_forward_naive(x, w, np.zeros(w.shape[0], x.dtype), conv_param)


def conv_backward_nobias(dout, cache):
    dx, dw, _ = conv_backward_naive(dout, cache)
    return dx, dw


def conv_forward_dilated(x, w, b, conv_param):
    """Reads a dilation as well (with a default): the dilated cases are its to take."""
    d = conv_param.get("dilation", 1)
    F, C, HH, WW = w.shape
    wd = np.zeros((F, C, d * (HH - 1) + 1, d * (WW - 1) + 1), w.dtype)
    wd[:, :, ::d, ::d] = w
    return conv_forward_naive(x, wd, b, conv_param)


def max_pool_forward_square(x, pool_param):
    """One key for a square pool."""
    k = pool_param["pool_size"]
    return max_pool_forward_naive(x, {"pool_height": k, "pool_width": k, "stride": pool_param["stride"]})


def conv_forward_nocache(x, w, b, conv_param):
    """Returns the output alone: its backward has no cache to read."""
    return conv_forward_naive(x, w, b, conv_param)[0]


def conv_backward_nocache(dout, cache):
    return conv_backward_naive(dout, cache)


# --- the classic mistakes ---------------------------------------------------------------------------

def conv_forward_dwlast(x, w, b, conv_param):
    return conv_forward_naive(x, w, b, conv_param)


def conv_backward_dwlast(dout, cache):
    """``dw[f] =`` where ``+=`` belongs: each filter keeps the last window's gradient only."""
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    dx, _, db = conv_backward_naive(dout, cache)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dw = np.zeros_like(w)
    HH, WW = w.shape[2:]
    for n in range(x.shape[0]):
        for f in range(w.shape[0]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    dw[f] = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW] * dout[n, f, i, j]
    return dx, dw, db


def conv_forward_padded_dx(x, w, b, conv_param):
    return conv_forward_naive(x, w, b, conv_param)


def conv_backward_padded_dx(dout, cache):
    """The gradient of the padded input handed back uncropped."""
    x, w, b, conv_param = cache
    pad = conv_param["pad"]
    dx, dw, db = conv_backward_naive(dout, cache)
    return np.pad(dx, ((0, 0), (0, 0), (pad, pad), (pad, pad))), dw, db


def max_pool_forward_overwrite(x, pool_param):
    return max_pool_forward_naive(x, pool_param)


def max_pool_backward_overwrite(dout, cache):
    """``dx[...] = dout`` where ``+=`` belongs: overlapping windows that share a maximum lose all
    but the last window's gradient."""
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    a, k = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * s + a, j * s + k] = dout[n, c, i, j]
    return dx
