"""Layers in the deeplearning.ai assignments' API: channels last, a ``hparameters`` dict, a cache.

``conv_forward(A_prev, W, b, hparameters) -> (Z, cache)`` with ``A_prev`` of shape ``(m, n_H_prev,
n_W_prev, n_C_prev)``, ``W`` of ``(f, f, n_C_prev, n_C)``, ``b`` of ``(1, 1, 1, n_C)``, ``hparameters =
{"stride": s, "pad": p}``; ``conv_backward(dZ, cache) -> (dA_prev, dW, db)``; ``pool_forward(A_prev,
hparameters, mode="max")`` with ``{"f": f, "stride": s}`` and ``pool_backward(dA, cache, mode)``.
The last pair makes the classic mistake: the gradient of a window to every element equal to its
maximum (PyTorch gives it to the first).
"""
import numpy as np


def zero_pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def conv_forward(A_prev, W, b, hparameters):
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f2, _, n_C) = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    n_H = (n_H_prev + 2 * pad - f) // stride + 1
    n_W = (n_W_prev + 2 * pad - f2) // stride + 1
    A_pad = zero_pad(A_prev, pad)
    Z = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for h in range(n_H):
        for w in range(n_W):
            window = A_pad[:, h * stride:h * stride + f, w * stride:w * stride + f2, :]
            Z[:, h, w, :] = np.tensordot(window, W, axes=([1, 2, 3], [0, 1, 2])) + b[0, 0, 0]
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    (A_prev, W, b, hparameters) = cache
    stride, pad = hparameters["stride"], hparameters["pad"]
    f, f2 = W.shape[:2]
    (m, n_H, n_W, n_C) = dZ.shape
    A_pad = zero_pad(A_prev, pad)
    dA_pad = np.zeros_like(A_pad)
    dW = np.zeros_like(W)
    db = dZ.sum(axis=(0, 1, 2)).reshape(1, 1, 1, n_C)
    for h in range(n_H):
        for w in range(n_W):
            rows, cols = slice(h * stride, h * stride + f), slice(w * stride, w * stride + f2)
            dA_pad[:, rows, cols, :] += np.tensordot(dZ[:, h, w, :], W, axes=([1], [3]))
            dW += np.tensordot(A_pad[:, rows, cols, :], dZ[:, h, w, :], axes=([0], [0]))
    n_H_prev, n_W_prev = A_prev.shape[1:3]
    return dA_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :], dW, db


def pool_forward(A_prev, hparameters, mode="max"):
    (m, n_H_prev, n_W_prev, n_C) = A_prev.shape
    f, stride = hparameters["f"], hparameters["stride"]
    n_H, n_W = (n_H_prev - f) // stride + 1, (n_W_prev - f) // stride + 1
    A = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for h in range(n_H):
        for w in range(n_W):
            window = A_prev[:, h * stride:h * stride + f, w * stride:w * stride + f, :]
            A[:, h, w, :] = window.max(axis=(1, 2)) if mode == "max" else window.mean(axis=(1, 2))
    return A, (A_prev, hparameters)


def pool_backward(dA, cache, mode="max"):
    (A_prev, hparameters) = cache
    f, stride = hparameters["f"], hparameters["stride"]
    (m, n_H, n_W, n_C) = dA.shape
    dA_prev = np.zeros_like(A_prev)
    i, c = np.indices((m, n_C))
    for h in range(n_H):
        for w in range(n_W):
            r0, c0 = h * stride, w * stride
            if mode == "max":
                window = A_prev[:, r0:r0 + f, c0:c0 + f, :].transpose(0, 3, 1, 2).reshape(m, n_C, f * f)
                k = window.argmax(axis=2)  # the first maximum
                dA_prev[i, r0 + k // f, c0 + k % f, c] += dA[:, h, w, :]
            else:
                dA_prev[:, r0:r0 + f, c0:c0 + f, :] += dA[:, h, w, None, None, :] / (f * f)
    return dA_prev


def pool_forward_tiesall(A_prev, hparameters, mode="max"):
    return pool_forward(A_prev, hparameters, mode)


def pool_backward_tiesall(dA, cache, mode="max"):
    """``mask = window == np.max(window)``: every tied maximum gets the whole gradient."""
    (A_prev, hparameters) = cache
    f, stride = hparameters["f"], hparameters["stride"]
    (m, n_H, n_W, n_C) = dA.shape
    dA_prev = np.zeros_like(A_prev)
    for h in range(n_H):
        for w in range(n_W):
            window = A_prev[:, h * stride:h * stride + f, w * stride:w * stride + f, :]
            mask = window == window.max(axis=(1, 2), keepdims=True)
            dA_prev[:, h * stride:h * stride + f, w * stride:w * stride + f, :] += mask * dA[:, h, w, None, None, :]
    return dA_prev
