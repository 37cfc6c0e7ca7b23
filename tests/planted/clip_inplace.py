"""Clips its input in place ("for stability") before convolving."""
import numpy as np

from _base import conv_forward


def conv2d(x, w, b=None, stride=1, padding=0):
    np.clip(x, -3.0, 3.0, out=x)  # BUG: modifies the caller's array
    return conv_forward(x, w, b, stride, padding)
