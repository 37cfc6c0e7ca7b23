"""An im2col whose patch columns run (kh, kw, C) while the weight is flattened (C, kh, kw)."""
import numpy as np

from _base import prologue


def conv2d(x, w, b=None, stride=1, padding=0):
    s, oh, ow, xp = prologue(x, w, stride, padding)
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    cols = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, :, :, u, v, :] = xp[:, :, u:u + s[0] * oh:s[0], v:v + s[1] * ow:s[1]].transpose(0, 2, 3, 1)
    y = cols.reshape(n * oh * ow, -1) @ w.reshape(o, -1).T  # BUG: columns (u, v, c), weight (c, u, v)
    y = y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y)
