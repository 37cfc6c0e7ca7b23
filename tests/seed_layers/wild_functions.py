"""Functions in the forms people write outside a layer class: NumPy, loops, one image at a time.

Every function here is correct; convbench must check each one through the command line without a
false alarm (``convbench check --impl tests/seed_layers/wild_functions.py:conv2d_naive``). The
forms: a single-channel convolution on an ``(H, W)`` image, functions on one unbatched ``(C, H,
W)`` / ``(C, L)`` sample, pooling functions (kernel as ``kernel_size``, ``pool_size``, ``size``,
``f``; stride defaulting to the kernel), hyperparameters under other names (``pad_size``,
``stride_size``), a bias that must be given, a constructor that takes the kernel as an int or a pair
but the stride and padding as ints only, and a kernel that must be square.
"""
import numpy as np


def conv2d_naive(image, kernel):
    """One channel, no padding, stride 1: the first function of a spatial-ops module."""
    H, W = image.shape
    kH, kW = kernel.shape
    out = np.zeros((H - kH + 1, W - kW + 1), dtype=image.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kH, j:j + kW] * kernel)
    return out


def conv2d_single(image, kernel, stride=1, padding=0):
    """One channel with an int stride and padding."""
    if padding:
        image = np.pad(image, padding)
    H, W = image.shape
    kH, kW = kernel.shape
    oh, ow = (H - kH) // stride + 1, (W - kW) // stride + 1
    out = np.empty((oh, ow), dtype=image.dtype)
    for i in range(oh):
        for j in range(ow):
            out[i, j] = (image[i * stride:i * stride + kH, j * stride:j * stride + kW] * kernel).sum()
    return out


def conv2d_chw(x, w, b, stride=1, padding=0):
    """One unbatched sample ``(C, H, W)``, as PyTorch also takes it."""
    C, H, W = x.shape
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    oh, ow = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.zeros((F, oh, ow), dtype=x.dtype)
    for f in range(F):
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
                out[f, i, j] = np.sum(patch * w[f]) + b[f]
    return out


def conv1d_cl(x, w, b=None, stride=1):
    """One unbatched sequence ``(C, L)``."""
    C, L = x.shape
    O, _, k = w.shape
    n_out = (L - k) // stride + 1
    out = np.zeros((O, n_out), dtype=x.dtype)
    for t in range(n_out):
        out[:, t] = np.tensordot(w, x[:, t * stride:t * stride + k], axes=([1, 2], [0, 1]))
    if b is not None:
        out += b[:, None]
    return out


def max_pool2d(x, kernel_size, stride=None):
    """Max pooling on ``(N, C, H, W)``; kernel and stride an int or a pair, stride by default the kernel."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if stride is None:
        sh, sw = kh, kw
    else:
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
    N, C, H, W = x.shape
    oh, ow = (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.empty((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return out


def avg_pool(x, pool_size=2, stride=None, padding=0):
    """Average pooling with zero padding counted in the divisor (PyTorch's default)."""
    s = pool_size if stride is None else stride
    k, p = pool_size, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    N, C, H, W = xp.shape
    oh, ow = (H - k) // s + 1, (W - k) // s + 1
    out = np.empty((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * s:i * s + k, j * s:j * s + k].mean(axis=(2, 3))
    return out


def pool_max_chw(x, f, s):
    """Max pooling of one unbatched sample ``(C, H, W)``, size and stride as ``f`` and ``s``."""
    C, H, W = x.shape
    oh, ow = (H - f) // s + 1, (W - f) // s + 1
    out = np.empty((C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * s:i * s + f, j * s:j * s + f].max(axis=(1, 2))
    return out


def _conv(x, w, stride, pad):
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    out = np.zeros((N, F, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def conv2d_padsize(x, w, b=None, stride_size=1, pad_size=0):
    """Hyperparameters under the names of its course: ``stride_size``, ``pad_size``."""
    out = _conv(x, w, stride_size, pad_size)
    return out if b is None else out + b[None, :, None, None]


def conv2d_bias_required(x, w, b, stride=1, padding=0):
    """The bias must be given: it is added unconditionally."""
    return _conv(x, w, stride, padding) + b.reshape(1, -1, 1, 1)


def conv_forward_square(x, w, b, stride=1, padding=0):
    """Square kernels only: one size ``f`` read for both axes."""
    n_f, c, f, f = w.shape
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    o = (H + 2 * padding - f) // stride + 1
    p = (W + 2 * padding - f) // stride + 1
    out = np.zeros((N, n_f, o, p), dtype=x.dtype)
    for i in range(o):
        for j in range(p):
            patch = xp[:, :, i * stride:i * stride + f, j * stride:j * stride + f]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


class ConvKernelPair:
    """Takes ``kernel_size`` as an int or a pair, but ``stride`` and ``padding`` as ints only."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.kh, self.kw = kernel_size
        self.stride = stride
        self.padding = padding
        self.W = np.zeros((out_channels, in_channels, self.kh, self.kw), dtype=np.float32)
        self.b = np.zeros(out_channels, dtype=np.float32)

    def forward(self, x):
        N, C, H, W = x.shape
        oh = (H + 2 * self.padding - self.kh) // self.stride + 1
        ow = (W + 2 * self.padding - self.kw) // self.stride + 1
        return _conv(x, self.W, self.stride, self.padding)[:, :, :oh, :ow] + self.b[None, :, None, None]


def conv2d_step(x, w, b=None, step=1, border=0):
    """Hyperparameters under names no one can guess: ``step`` is the stride, ``border`` the padding."""
    out = _conv(x, w, step, border)
    return out if b is None else out + b[None, :, None, None]


def conv2d_nhwc(x, w, b=None, stride=1, padding=0):
    """Channels last: ``x`` ``(N, H, W, C)``, ``w`` ``(kh, kw, C, O)`` (TensorFlow's HWIO)."""
    out = _conv(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), stride, padding).transpose(0, 2, 3, 1)
    return out if b is None else out + b


def conv2d_act(x, w, b, stride, padding, activation):
    """A layer fused with its activation: ``activation`` has no counterpart in a convolution."""
    return activation(_conv(x, w, stride, padding) + b[None, :, None, None])


def conv_forward_hwio(A_prev, W, b, hparameters):
    """deeplearning.ai's form, channels last, square kernels only: ``(f, f, n_C_prev, n_C) = W.shape``."""
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f, n_C_prev, n_C) = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    n_H = (n_H_prev - f + 2 * pad) // stride + 1
    n_W = (n_W_prev - f + 2 * pad) // stride + 1
    A_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Z = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for h in range(n_H):
        for w in range(n_W):
            a_slice = A_pad[:, h * stride:h * stride + f, w * stride:w * stride + f, :]
            Z[:, h, w, :] = np.tensordot(a_slice, W, axes=([1, 2, 3], [0, 1, 2])) + b.reshape(-1)
    return Z, (A_prev, W, b, hparameters)


def conv_forward_cached(x, w, b, stride=1, pad=0):
    """A forward that returns ``(out, cache)`` without a dict of hyperparameters."""
    out = _conv(x, w, stride, pad) + b[None, :, None, None]
    return out, (x, w, b, stride, pad)
