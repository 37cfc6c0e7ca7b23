"""Stride axes swapped: the width stride used for rows and the height stride for columns."""
from _base import conv_forward, pair


def conv2d(x, w, b=None, stride=1, padding=0):
    sh, sw = pair(stride)
    return conv_forward(x, w, b, (sw, sh), padding)  # BUG
