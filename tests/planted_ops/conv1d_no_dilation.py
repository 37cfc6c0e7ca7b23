"""conv1d that ignores dilation: kernel taps land on consecutive positions."""
from __future__ import annotations

import numpy as np

from _planted_ops_info import info
from convbench.protocol import Implementation
from impls.stride_tricks import StrideTricksConv1d


class NoDilationConv1d(Implementation):
    info = info("conv1d", "no_dilation", __file__, "NoDilationConv1d")
    _ok = StrideTricksConv1d()

    def forward(self, p, x, w, b):
        left, right = p.pads
        xp = np.pad(x, ((0, 0), (0, 0), (left, right + p.k * p.dilation)))
        cg, og = p.c // p.groups, p.o // p.groups
        y = np.zeros((p.n, p.o, p.out_l), x.dtype)
        for g in range(p.groups):
            for u in range(p.k):
                taps = xp[:, g * cg:(g + 1) * cg, u:u + p.stride * (p.out_l - 1) + 1:p.stride]  # BUG: u, not u*d
                y[:, g * og:(g + 1) * og] += np.einsum("ncl,oc->nol", taps, w[g * og:(g + 1) * og, :, u])
        return y + (b[None, :, None] if b is not None else 0)

    def backward(self, p, dy, x, w):
        return self._ok.backward(p, dy, x, w)
