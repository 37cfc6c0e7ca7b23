"""A seed-style layer whose weight gradient leaves out the first sample of the batch."""
from _base import Conv2D, conv_backward


class Conv2DDropSample(Conv2D):
    def backward(self, dout):
        dx, _, self.db = conv_backward(dout, self.x, self.W, self.stride, self.padding)
        if len(self.x) > 1:  # BUG: for n in range(1, N)
            _, self.dW, _ = conv_backward(dout[1:], self.x[1:], self.W, self.stride, self.padding)
        else:
            _, self.dW, _ = conv_backward(dout, self.x, self.W, self.stride, self.padding)
        return dx
