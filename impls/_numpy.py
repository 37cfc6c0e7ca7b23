"""Helpers shared by the NumPy families: padding, the slices a kernel tap meets, cropping."""
from __future__ import annotations

import numpy as np

from convbench.ops.conv1d import Conv1dParams
from convbench.ops.conv2d import Conv2dParams


def pad(p: Conv2dParams, x: np.ndarray) -> np.ndarray:
    """``x`` zero-padded by ``p.pads`` (top, bottom, left, right), in its own dtype."""
    pt, pb, pl, pr = p.pads
    if not (pt or pb or pl or pr):
        return x
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))


def padded_shape(p: Conv2dParams) -> tuple[int, int, int, int]:
    pt, pb, pl, pr = p.pads
    return (p.n, p.c, p.h + pt + pb, p.w + pl + pr)


def tap(p: Conv2dParams, u: int, v: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel tap (u, v) meets, over all outputs."""
    (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
    return (slice(u * dh, u * dh + sh * (oh - 1) + 1, sh), slice(v * dw, v * dw + sw * (ow - 1) + 1, sw))


def crop(p: Conv2dParams, xp: np.ndarray) -> np.ndarray:
    """The unpadded interior of a padded-input-shaped array (a view)."""
    pt, _, pl, _ = p.pads
    return xp[:, :, pt:pt + p.h, pl:pl + p.w]


def as_conv2d(p: Conv1dParams) -> Conv2dParams:
    """The conv2d of height 1 that computes conv1d ``p`` on ``x[:, :, None, :]``."""
    padding = p.padding if isinstance(p.padding, str) else (0, p.padding)
    return Conv2dParams(n=p.n, c=p.c, h=1, w=p.l, o=p.o, kh=1, kw=p.k, stride=(1, p.stride), padding=padding,
                        dilation=(1, p.dilation), groups=p.groups, bias=p.bias)
