"""Sums the input channels in a random order: right to the last bit or two, but never the same twice."""
import numpy as np

from _base import conv_forward


def conv2d(x, w, b=None, stride=1, padding=0):
    y = None
    for c in np.random.permutation(x.shape[1]):  # BUG: order changes between runs
        part = conv_forward(x[:, c:c + 1], w[:, c:c + 1], None, stride, padding)
        y = part if y is None else y + part
    return y if b is None else y + b[None, :, None, None]
