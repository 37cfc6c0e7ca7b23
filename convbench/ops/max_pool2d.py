"""max_pool2d: PyTorch semantics (NCHW; stride defaults to the kernel; implicit -inf padding).

Gradients go to the *first* maximum of each window in row-major window order, as PyTorch's
kernels do (they update only on a strictly greater value). NaN propagates: a window holding a NaN
outputs NaN and its gradient goes to the NaN, the last one in window order when there are several
(PyTorch's ``val > max || isnan(val)`` update). A window holding no input element at all (possible
only with dilation skipping over the whole input) outputs -inf and passes no gradient back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from convbench.ops._common import pair
from convbench.ops._pool import PoolOp, PoolParams

__all__ = ["MaxPool2dParams", "MaxPool2d", "OP"]


@dataclass(frozen=True)
class MaxPool2dParams(PoolParams):
    """One max_pool2d call: kernel (kh, kw), stride, padding, dilation pairs, ceil_mode."""

    op: ClassVar[str] = "max_pool2d"

    dilation: Any = (1, 1)

    @property
    def dil(self) -> tuple[int, int]:
        return self.dilation

    def _normalise(self) -> None:
        super()._normalise()
        self._set("dilation", pair("dilation", self.dilation, minimum=1, what="positive (>= 1)"))

    def flops(self, direction: str) -> int:
        """Element operations: forward ``kh*kw - 1`` comparisons per window (nominal, padding
        included); backward finds the maximum again (``kh*kw - 1``) and adds one gradient."""
        k = self.kh * self.kw
        if self._direction(direction) == "forward":
            return self.windows * (k - 1)
        return self.windows * k

    def _forward_accumulation(self) -> int:
        return 1  # a maximum selects, it never rounds

    def features(self) -> frozenset[str]:
        f = self._base_features()
        if self.dilation != (1, 1):
            f.add("dilation")
        return frozenset(f)

    @property
    def descriptor(self) -> str:
        parts = self._base_descriptor()
        dh, dw = self.dilation
        if (dh, dw) != (1, 1):
            parts.append(f"d{dh}" if dh == dw else f"dh{dh}dw{dw}")
        if self.ceil_mode:
            parts.append("ceil")
        return "".join(parts)


class MaxPool2d(PoolOp):
    name = "max_pool2d"
    Params = MaxPool2dParams
    descriptor_keys = ("n", "c", "h", "w", "k", "kh", "kw", "s", "sh", "sw", "p", "ph", "pw",
                       "d", "dh", "dw", "ceil", "dt")

    def params_from_arrays(self, x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0,
                           dilation: Any = 1, ceil_mode: Any = False) -> MaxPool2dParams:
        return MaxPool2dParams(**self._array_params(x, kernel_size=kernel_size, stride=stride, padding=padding,
                                                    dilation=dilation, ceil_mode=ceil_mode))

    def params_from_keys(self, keys: dict[str, Any]) -> MaxPool2dParams:
        d = keys.get("d", 1)
        return MaxPool2dParams(**self._key_params(keys), dilation=(keys.get("dh", d), keys.get("dw", d)))

    def _exact_x_magnitude(self, p: Any, dtype: str) -> int:
        # few distinct values: most windows hold a tied maximum, which the exact tier then checks
        return 3

    def _random_x(self, p: Any, dtype: str, rng: np.random.Generator) -> np.ndarray:
        # Normal float32 data has ties in large cases (values collide at a rate ~1e-7 per pair), and
        # the random tier should test values, not tie-breaking: each (n, c) plane is a shuffled grid
        # of distinct values, symmetric about 0 with spacing a power of two, exact in either dtype.
        hw = p.h * p.w
        step = 2.0 ** -int(np.ceil(np.log2(max(hw, 4) / 4)))  # values within about [-2, 2]
        planes = np.stack([rng.permutation(hw) for _ in range(p.n * p.c)]) - (hw - 1) / 2
        return (planes * step).reshape(p.shapes()["x"]).astype(dtype)

    def magnitudes(self, p: MaxPool2dParams, inputs: dict[str, np.ndarray], direction: str) -> np.ndarray:
        """What scales the rounding error of each result element (``convbench.verify.tolerance``).

        Not max pooling of ``|x|``: that can pick other elements. The maxima of ``x`` itself decide
        where gradients go, so backward is ``|dy|`` routed by ``x``; forward only selects.
        """
        x = np.asarray(inputs["x"], np.float64)
        if direction == "forward":
            return np.abs(self.reference_forward(p, x))
        return self.reference_backward(p, np.abs(np.asarray(inputs["dy"], np.float64)), x)[0]

    # --- float64 reference: one window at a time ----------------------------------------------
    @staticmethod
    def _argmax(win: np.ndarray) -> np.ndarray:
        """Index of PyTorch's maximum in each row of ``win`` (rows: (n, c); columns: window order)."""
        nan = np.isnan(win)
        last_nan = win.shape[1] - 1 - np.argmax(nan[:, ::-1], axis=1)
        first_max = np.argmax(np.where(nan, -np.inf, win), axis=1)  # argmax returns the first of ties
        return np.where(nan.any(axis=1), last_nan, first_max)

    def _windows(self, p: MaxPool2dParams, x: np.ndarray):
        """(i, j, rows, cols, flat window (n*c, size), argmax) for every window with an input element."""
        oh, ow = p.out_hw
        for i in range(oh):
            for j in range(ow):
                rows, cols = p.window(i, j)
                if not rows or not cols:
                    yield i, j, rows, cols, None, None
                    continue
                win = x[:, :, rows][:, :, :, cols].reshape(p.n * p.c, -1)
                yield i, j, rows, cols, win, self._argmax(win)

    def reference_forward(self, p: MaxPool2dParams, x: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """y[n, c, i, j] = max over the input elements of window (i, j) (padding never wins)."""
        x = np.asarray(x, np.float64)
        y = np.empty(p.shapes()["y"], np.float64)
        for i, j, _, _, win, am in self._windows(p, x):
            y[:, :, i, j] = -np.inf if win is None else win[np.arange(win.shape[0]), am].reshape(p.n, p.c)
        return y

    def reference_backward(self, p: MaxPool2dParams, dy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:  # type: ignore[override]
        """dx[window's maximum] += dy[n, c, i, j], window by window."""
        x = np.asarray(x, np.float64)
        dy = np.asarray(dy, np.float64).reshape(p.n * p.c, *p.out_hw)
        dx = np.zeros((p.n * p.c, p.h, p.w), np.float64)
        nc = np.arange(p.n * p.c)
        for i, j, rows, cols, win, am in self._windows(p, x):
            if win is None:
                continue
            r = np.asarray(rows)[am // len(cols)]
            c = np.asarray(cols)[am % len(cols)]
            dx[nc, r, c] += dy[:, i, j]  # one element per (n, c) row: no repeated index
        return (dx.reshape(p.n, p.c, p.h, p.w),)


OP = MaxPool2d()
