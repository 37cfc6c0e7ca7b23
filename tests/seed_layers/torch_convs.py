"""Convolutions written against torch tensors: checked forward and, through autograd, backward."""
import torch
import torch.nn.functional as F
from torch.nn.functional import conv2d as torch_conv2d


def conv2d_unfold(x, w, b=None, stride=1, padding=0):
    """im2col with ``F.unfold``."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (n, c*kh*kw, oh*ow)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = (w.reshape(o, -1) @ cols).reshape(n, o, oh, ow)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv2d_imported(x, w, b=None, stride=1, padding=0):
    """torch's own, under a name imported from torch."""
    return torch_conv2d(x, w, b, stride, padding)


def conv1d_unfold(x, w, b=None, stride=1, padding=0):
    y = conv2d_unfold(x.unsqueeze(2), w.unsqueeze(2), b, (1, stride), (0, padding))
    return y.squeeze(2)


class _LosesWeightGrad(torch.autograd.Function):
    """A hand-written backward that forgets the weight's gradient."""

    @staticmethod
    def forward(ctx, x, w, stride, padding):
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, w, None, stride, padding)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gx = torch.nn.grad.conv2d_input(x.shape, w, gy, ctx.stride, ctx.padding)
        return gx, None, None, None


def conv2d_loses_grad_weight(x, w, b=None, stride=1, padding=0):
    y = _LosesWeightGrad.apply(x, w, stride, padding)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv2d_detached(x, w, b=None, stride=1, padding=0):
    """Right forward, but nothing for autograd to walk back."""
    with torch.no_grad():
        return F.conv2d(x, w, b, stride, padding)


def conv2d_views(x, w, b=None, stride=1, padding=0):
    """``view`` where ``reshape`` belongs: fails on an input that is not contiguous."""
    n, c, h, wd = x.shape
    flat = x.view(n, c * h * wd)
    return F.conv2d(flat.view(n, c, h, wd), w, b, stride, padding)


class Conv:
    """EECS 498's layer API on tensors: static forward(x, w, b, conv_param) -> (out, cache), backward."""

    @staticmethod
    def forward(x, w, b, conv_param):
        out = F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])
        return out, (x, w, b, conv_param)

    @staticmethod
    def backward(dout, cache):
        x, w, b, conv_param = cache
        dx = torch.nn.grad.conv2d_input(x.shape, w, dout, conv_param["stride"], conv_param["pad"])
        dw = torch.nn.grad.conv2d_weight(x, w.shape, dout, conv_param["stride"], conv_param["pad"])
        return dx, dw, dout.sum(dim=(0, 2, 3))
