"""float32 in, float64 out: the weights were upcast and the result never cast back."""
import numpy as np

from _base import conv_forward


def conv2d(x, w, b=None, stride=1, padding=0):
    return conv_forward(x.astype(np.float64), w.astype(np.float64), b, stride, padding)  # BUG
