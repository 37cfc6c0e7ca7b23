"""max_pool2d whose backward sends the gradient to every tied maximum of a window, not the first."""
from __future__ import annotations

import numpy as np

from _planted_ops_info import info
from impls.stride_tricks import StrideTricksMaxPool2d, _pool_windows


class TiesAllMaxPool2d(StrideTricksMaxPool2d):
    info = info("max_pool2d", "ties_all", __file__, "TiesAllMaxPool2d")

    def backward(self, p, dy, x):
        oh, ow = p.out_hw
        (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
        win = _pool_windows(p, x, -np.inf)
        top = win.max(axis=(-2, -1))
        hp = max(p.h + 2 * ph, (oh - 1) * sh + dh * (p.kh - 1) + 1)
        wp = max(p.w + 2 * pw, (ow - 1) * sw + dw * (p.kw - 1) + 1)
        dxp = np.zeros((p.n, p.c, hp, wp), x.dtype)
        for u in range(p.kh):
            for v in range(p.kw):
                # BUG: every element equal to the maximum gets the window's gradient
                dxp[:, :, u * dh:u * dh + (oh - 1) * sh + 1:sh, v * dw:v * dw + (ow - 1) * sw + 1:sw] += \
                    np.where(win[..., u, v] == top, dy, 0)
        return (np.ascontiguousarray(dxp[:, :, ph:ph + p.h, pw:pw + p.w]),)
