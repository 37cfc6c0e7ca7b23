"""float32 in and out, but the GEMM runs in float16 ("to save memory")."""
import numpy as np

from _base import im2col, out_hw, pair


def conv2d(x, w, b=None, stride=1, padding=0):
    s, p = pair(stride), pair(padding)
    o, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = out_hw(h, wd, (kh, kw), s, p)
    cols = im2col(x, (kh, kw), s, p).astype(np.float16)
    y = (cols @ w.reshape(o, -1).T.astype(np.float16)).astype(x.dtype)  # BUG: float16 accumulation
    if b is not None:
        y = y + b
    return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
