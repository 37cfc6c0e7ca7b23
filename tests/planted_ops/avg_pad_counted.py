"""avg_pool2d that always divides by kh*kw: padding counted even with count_include_pad=False."""
from __future__ import annotations

import numpy as np

from _planted_ops_info import info
from impls.stride_tricks import StrideTricksAvgPool2d


class PadCountedAvgPool2d(StrideTricksAvgPool2d):
    info = info("avg_pool2d", "pad_counted", __file__, "PadCountedAvgPool2d")

    @staticmethod
    def _divisors(p, dtype):
        if p.divisor_override is not None:
            return np.asarray(p.divisor_override, dtype)
        return np.asarray(p.kh * p.kw, dtype)  # BUG: the kernel's size, whatever the window covers
