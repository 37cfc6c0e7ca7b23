"""Kernel height and width read the wrong way round from the weight's shape."""
import numpy as np

from _base import im2col, out_hw, pair


def conv2d(x, w, b=None, stride=1, padding=0):
    s, p = pair(stride), pair(padding)
    o, c, kw, kh = w.shape  # BUG: (kh, kw) swapped
    n, _, h, wd = x.shape
    oh, ow = out_hw(h, wd, (kh, kw), s, p)
    y = im2col(x, (kh, kw), s, p) @ w.reshape(o, -1).T
    if b is not None:
        y = y + b
    return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
