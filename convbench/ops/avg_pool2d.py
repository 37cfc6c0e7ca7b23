"""avg_pool2d: PyTorch semantics (NCHW; stride defaults to the kernel; zero padding).

The divisor of window (i, j) is, as in PyTorch's kernels: ``divisor_override`` when given; else,
with ``count_include_pad``, the window's size clipped to the *padded* input (so a ceil_mode window
hanging past the padded edge counts only up to that edge); else the number of input elements it
covers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from convbench._errors import ParamError
from convbench.ops._common import single
from convbench.ops._pool import PoolOp, PoolParams, flag

__all__ = ["AvgPool2dParams", "AvgPool2d", "OP"]


@dataclass(frozen=True)
class AvgPool2dParams(PoolParams):
    """One avg_pool2d call: kernel (kh, kw), stride, padding pairs, ceil_mode, count_include_pad,
    divisor_override (None or a non-zero int)."""

    op: ClassVar[str] = "avg_pool2d"

    count_include_pad: bool = True
    divisor_override: int | None = None

    def _normalise(self) -> None:
        super()._normalise()
        self._set("count_include_pad", flag("count_include_pad", self.count_include_pad))
        if self.divisor_override is not None:
            # PyTorch rejects only 0 (a negative divisor flips the sign; the public API takes what
            # PyTorch takes)
            d = single("divisor_override", self.divisor_override)
            if d == 0:
                raise ParamError("divisor_override must be a non-zero int (or None), got 0")
            self._set("divisor_override", d)

    def divisor(self, i: int, j: int) -> int:
        """The divisor of output (i, j), PyTorch's formula."""
        if self.divisor_override is not None:
            return self.divisor_override
        return self.axis_divisors(0)[i] * self.axis_divisors(1)[j]

    def axis_divisors(self, axis: int) -> list[int]:
        """Per output row (axis 0) or column (axis 1), its factor of the divisor (no override):
        the window's extent clipped to the padded input, or to the input without count_include_pad."""
        size, k, s, pad = ((self.h, self.kh, self.stride[0], self.padding[0]) if axis == 0
                           else (self.w, self.kw, self.stride[1], self.padding[1]))
        out = []
        for i in range(self.out_hw[axis]):
            a = i * s - pad
            b = min(a + k, size + pad)
            out.append(b - a if self.count_include_pad else min(b, size) - max(a, 0))
        return out

    def flops(self, direction: str) -> int:
        """Element operations: forward ``kh*kw - 1`` adds and one divide per window (nominal, padding
        included); backward one divide per window and ``kh*kw`` adds into the input gradient."""
        k = self.kh * self.kw
        if self._direction(direction) == "forward":
            return self.windows * k
        return self.windows * (k + 1)

    def _forward_accumulation(self) -> int:
        return self.kh * self.kw

    def features(self) -> frozenset[str]:
        f = self._base_features()
        if not self.count_include_pad and any(self.padding):
            f.add("exclude_pad")
        if self.divisor_override is not None:
            f.add("divisor_override")
        return frozenset(f)

    @property
    def descriptor(self) -> str:
        parts = self._base_descriptor()
        if self.ceil_mode:
            parts.append("ceil")
        if not self.count_include_pad:
            parts.append("cip0")
        if self.divisor_override is not None:
            parts.append(f"do{self.divisor_override}")
        return "".join(parts)


class AvgPool2d(PoolOp):
    name = "avg_pool2d"
    Params = AvgPool2dParams
    descriptor_keys = ("n", "c", "h", "w", "k", "kh", "kw", "s", "sh", "sw", "p", "ph", "pw",
                       "ceil", "cip", "do", "dt")

    def params_from_arrays(self, x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0,
                           ceil_mode: Any = False, count_include_pad: Any = True,
                           divisor_override: Any = None) -> AvgPool2dParams:
        return AvgPool2dParams(**self._array_params(
            x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad, divisor_override=divisor_override))

    def params_from_keys(self, keys: dict[str, Any]) -> AvgPool2dParams:
        if "do" in keys and keys["do"] == 0:
            raise ParamError("divisor_override must be a non-zero int (or None), got 0 (descriptor token 'do0')")
        return AvgPool2dParams(**self._key_params(keys), count_include_pad=keys.get("cip", 1),
                               divisor_override=keys.get("do"))

    def exact_magnitude(self, p: AvgPool2dParams, dtype: str) -> int:  # type: ignore[override]
        """0 (no exact fill) unless every divisor is a power of two: dividing by 3 rounds, whatever
        the inputs, so a correct implementation need not match the reference bit for bit."""
        divs = ({p.divisor_override} if p.divisor_override is not None
                else set(p.axis_divisors(0)) | set(p.axis_divisors(1)))
        if any(d & (d - 1) for d in divs):
            return 0
        return super().exact_magnitude(p, dtype)

    # --- float64 reference: one window at a time ----------------------------------------------
    def _spans(self, p: AvgPool2dParams):
        oh, ow = p.out_hw
        for i in range(oh):
            for j in range(ow):
                rows, cols = p.window(i, j)
                yield i, j, slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1), p.divisor(i, j)

    def reference_forward(self, p: AvgPool2dParams, x: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """y[n, c, i, j] = (sum of the input elements of window (i, j)) / divisor(i, j)."""
        x = np.asarray(x, np.float64)
        y = np.empty(p.shapes()["y"], np.float64)
        for i, j, rows, cols, div in self._spans(p):
            y[:, :, i, j] = x[:, :, rows, cols].sum(axis=(2, 3)) / div
        return y

    def reference_backward(self, p: AvgPool2dParams, dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:  # type: ignore[override]
        """dx[window (i, j)'s input elements] += dy[n, c, i, j] / divisor(i, j)."""
        dy = np.asarray(dy, np.float64)
        dx = np.zeros(p.shapes()["grad_input"], np.float64)
        for i, j, rows, cols, div in self._spans(p):
            dx[:, :, rows, cols] += (dy[:, :, i, j] / div)[:, :, None, None]
        return (dx,)


OP = AvgPool2d()
