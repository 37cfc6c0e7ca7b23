"""Functions on torch tensors in the forms people write: pooling functions and an unbatched conv.

All correct; backward through autograd. ``convbench check --op max_pool2d --impl
tests/seed_layers/wild_torch.py:maxpool2d``.
"""
import torch
import torch.nn.functional as F


def maxpool2d(x, kernel_size=2, stride=2, padding=0):
    """Max pooling by unfolding windows; ints only (a course's defaults: 2, 2, 0)."""
    n, c, h, w = x.shape
    cols = F.unfold(x.reshape(n * c, 1, h, w), kernel_size, padding=padding, stride=stride)
    if padding:  # padded positions must never win: unfold pads with zeros, so mark them -inf
        ones = F.unfold(torch.ones(1, 1, h, w, dtype=x.dtype), kernel_size, padding=padding, stride=stride)
        cols = cols.masked_fill(ones == 0, float("-inf"))
    oh = (h + 2 * padding - kernel_size) // stride + 1
    ow = (w + 2 * padding - kernel_size) // stride + 1
    return cols.max(dim=1).values.reshape(n, c, oh, ow)


def avgpool2d(x, k, s=None):
    """Average pooling with torch tensor ops; the window as ``k``, the stride as ``s`` (default ``k``)."""
    s = k if s is None else s
    n, c, h, w = x.shape
    win = x.unfold(2, k, s).unfold(3, k, s)  # (n, c, oh, ow, k, k)
    return win.mean(dim=(-2, -1))


def conv2d_chw(x, weight, bias=None, stride=1, padding=0):
    """One unbatched sample ``(C, H, W)`` through ``F.unfold``."""
    c, h, w = x.shape
    o, _, kh, kw = weight.shape
    cols = F.unfold(x.unsqueeze(0), (kh, kw), padding=padding, stride=stride)[0]  # (c*kh*kw, oh*ow)
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    y = (weight.reshape(o, -1) @ cols).reshape(o, oh, ow)
    return y if bias is None else y + bias.reshape(-1, 1, 1)
