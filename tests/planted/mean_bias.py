"""A seed-style layer with the mean instead of the sum in the bias gradient."""
from _base import Conv2D, conv_backward


class Conv2DMeanBias(Conv2D):
    def backward(self, dout):
        dx, self.dW, _ = conv_backward(dout, self.x, self.W, self.stride, self.padding)
        self.db = dout.mean(axis=(0, 2, 3))  # BUG
        return dx
