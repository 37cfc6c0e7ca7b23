"""Takes the bias and never adds it."""
from _base import conv_forward


def conv2d(x, w, b=None, stride=1, padding=0):
    return conv_forward(x, w, None, stride, padding)  # BUG
