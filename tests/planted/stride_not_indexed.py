"""Naive loops with the stride in the output size but not in the indexing: window (i, j) starts at
(i, j), not (i*stride, j*stride)."""
import numpy as np

from _base import out_hw, pad_input, pair


def conv2d(x, w, b=None, stride=1, padding=0):
    s, p = pair(stride), pair(padding)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = out_hw(h, wd, (kh, kw), s, p)
    xp = pad_input(x, p)
    y = np.zeros((n, o, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i:i + kh, j:j + kw]  # BUG: i*s[0], j*s[1]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b[None, :, None, None]
    return y
