"""max_pool2d in ceil_mode without PyTorch's rule: a last window that starts in the right padding is kept."""
from __future__ import annotations

import numpy as np

from _planted_ops_info import info
from impls.stride_tricks import StrideTricksMaxPool2d, windows


class CeilInPaddingMaxPool2d(StrideTricksMaxPool2d):
    info = info("max_pool2d", "ceil_in_padding", __file__, "CeilInPaddingMaxPool2d")

    def forward(self, p, x):
        (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
        out = []
        for size, k, s, pad, d in ((p.h, p.kh, sh, ph, dh), (p.w, p.kw, sw, pw, dw)):
            span = size + 2 * pad - d * (k - 1) - 1
            out.append(-(-span // s) + 1 if p.ceil_mode else span // s + 1)  # BUG: no last-window rule
        oh, ow = out
        hp, wp = (oh - 1) * sh + dh * (p.kh - 1) + 1, (ow - 1) * sw + dw * (p.kw - 1) + 1
        xp = np.pad(x, ((0, 0), (0, 0), (ph, max(hp - p.h - ph, ph)), (pw, max(wp - p.w - pw, pw))),
                    constant_values=-np.inf)
        return windows(xp, p.kh, p.kw, p.stride, p.dilation, (oh, ow)).max(axis=(-2, -1))
