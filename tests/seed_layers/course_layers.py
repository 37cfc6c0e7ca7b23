"""Layers written the way a deep-learning course has students write them: NumPy, loops over output
positions, a cache in ``forward`` for ``backward``. The first three are correct; the ones after
them make the classic mistakes, and every one must fail. Checked through the command line, e.g.
``convbench check --op max_pool2d --impl tests/seed_layers/course_layers.py:MaxPool2D``.
"""
import numpy as np


class MaxPool2D:
    def __init__(self, pool_size=2, stride=2):
        self.pool_size = pool_size
        self.stride = stride

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        k, s = self.pool_size, self.stride
        OH, OW = (H - k) // s + 1, (W - k) // s + 1
        out = np.zeros((N, C, OH, OW), dtype=x.dtype)
        for i in range(OH):
            for j in range(OW):
                out[:, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
        return out

    def backward(self, dout):
        x = self.x
        N, C, H, W = x.shape
        k, s = self.pool_size, self.stride
        OH, OW = dout.shape[2:]
        dx = np.zeros_like(x)
        n, c = np.indices((N, C))
        for i in range(OH):
            for j in range(OW):
                window = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(N, C, k * k)
                idx = window.argmax(axis=2)  # the first maximum gets the gradient
                dx[n, c, i * s + idx // k, j * s + idx % k] += dout[:, :, i, j]
        return dx


class AveragePool2D:
    def __init__(self, pool_size=2, stride=2, padding=0):
        self.pool_size = pool_size
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        self.x_shape = x.shape
        N, C, H, W = x.shape
        k, s, p = self.pool_size, self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        out = np.zeros((N, C, OH, OW), dtype=x.dtype)
        for i in range(OH):
            for j in range(OW):
                out[:, :, i, j] = xp[:, :, i * s:i * s + k, j * s:j * s + k].sum(axis=(2, 3)) / (k * k)
        return out

    def backward(self, dout):
        N, C, H, W = self.x_shape
        k, s, p = self.pool_size, self.stride, self.padding
        dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=dout.dtype)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                dxp[:, :, i * s:i * s + k, j * s:j * s + k] += (dout[:, :, i, j] / (k * k))[:, :, None, None]
        return dxp[:, :, p:p + H, p:p + W]


class Conv1D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.stride = stride
        self.padding = padding
        self.W = np.random.randn(out_channels, in_channels, kernel_size) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        s, p = self.stride, self.padding
        K = self.W.shape[2]
        self.L = x.shape[2]
        self.xp = np.pad(x, ((0, 0), (0, 0), (p, p)))
        OL = (self.xp.shape[2] - K) // s + 1
        out = np.zeros((x.shape[0], self.W.shape[0], OL), dtype=x.dtype)
        for i in range(OL):
            seg = self.xp[:, :, i * s:i * s + K]
            out[:, :, i] = np.tensordot(seg, self.W, axes=([1, 2], [1, 2])) + self.b
        return out

    def backward(self, dout):
        s, p = self.stride, self.padding
        K = self.W.shape[2]
        dxp = np.zeros_like(self.xp)
        self.dW = np.zeros_like(self.W)
        self.db = dout.sum(axis=(0, 2))
        for i in range(dout.shape[2]):
            seg = self.xp[:, :, i * s:i * s + K]
            self.dW += np.tensordot(dout[:, :, i], seg, axes=([0], [0]))
            dxp[:, :, i * s:i * s + K] += np.tensordot(dout[:, :, i], self.W, axes=([1], [0]))
        return dxp[:, :, p:p + self.L]


# --- the classic mistakes -----------------------------------------------------------------------

class MaxPool2DTiesAll(MaxPool2D):
    """The mask version: every element equal to the window's maximum gets the gradient."""

    def backward(self, dout):
        x = self.x
        k, s = self.pool_size, self.stride
        dx = np.zeros_like(x)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                window = x[:, :, i * s:i * s + k, j * s:j * s + k]
                mask = window == window.max(axis=(2, 3), keepdims=True)
                dx[:, :, i * s:i * s + k, j * s:j * s + k] += mask * dout[:, :, i, j][:, :, None, None]
        return dx


class AveragePool2DPadUncounted(AveragePool2D):
    """Divides a window by the input elements it covers, although PyTorch's default counts padding."""

    def forward(self, x):
        out = super().forward(x)
        k, s, p = self.pool_size, self.stride, self.padding
        inside = np.pad(np.ones(x.shape[2:]), p)
        covered = np.array([[inside[i * s:i * s + k, j * s:j * s + k].sum() for j in range(out.shape[3])]
                            for i in range(out.shape[2])])
        return (out * (k * k) / covered).astype(x.dtype)


class Conv1DNoBiasGrad(Conv1D):
    """Forgets the bias gradient's sum over the batch: db from the first sample only."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout[0].sum(axis=1)
        return dx
