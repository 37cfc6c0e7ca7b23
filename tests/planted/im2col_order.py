"""An im2col whose patch columns run (kh, kw, C) while the weight is flattened (C, kh, kw)."""
import numpy as np

from _base import out_hw, pad_input, pair


def conv2d(x, w, b=None, stride=1, padding=0):
    s, p = pair(stride), pair(padding)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = out_hw(h, wd, (kh, kw), s, p)
    xp = pad_input(x, p)
    cols = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, :, :, u, v, :] = xp[:, :, u:u + s[0] * oh:s[0], v:v + s[1] * ow:s[1]].transpose(0, 2, 3, 1)
    y = cols.reshape(n * oh * ow, -1) @ w.reshape(o, -1).T  # BUG: columns (u, v, c), weight (c, u, v)
    y = y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y)
