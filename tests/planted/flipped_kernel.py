"""A true convolution: the kernel flipped, as the textbook formula has it."""
from _base import conv_forward


def conv2d(x, w, b=None, stride=1, padding=0):
    return conv_forward(x, w[:, :, ::-1, ::-1], b, stride, padding)  # BUG
