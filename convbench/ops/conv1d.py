"""conv1d: PyTorch semantics (cross-correlation, NCL, weight (O, C/groups, k))."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from convbench._errors import ParamError
from convbench.ops._base import Op, OpParams
from convbench.ops._common import float_dtype, ndim, out_size, same_pads, single

__all__ = ["Conv1dParams", "Conv1d", "OP"]

PADDING_STRINGS = ("same", "valid")


@dataclass(frozen=True)
class Conv1dParams(OpParams):
    """One conv1d call. ``padding`` is an int or ``'same'`` / ``'valid'``."""

    op: ClassVar[str] = "conv1d"

    n: int
    c: int
    l: int  # noqa: E741 - the length, as PyTorch's docs name it
    o: int
    k: int
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True

    def _normalise(self) -> None:
        for name in ("n", "c", "l", "o", "k"):
            self._set(name, single(name, getattr(self, name), minimum=1, what="a positive int"))
        self._set("stride", single("stride", self.stride, minimum=1, what="positive (>= 1)"))
        self._set("dilation", single("dilation", self.dilation, minimum=1, what="positive (>= 1)"))
        if isinstance(self.padding, str):
            if self.padding not in PADDING_STRINGS:
                raise ParamError(f"padding must be an int, 'same' or 'valid', got {self.padding!r}")
        else:
            self._set("padding", single("padding", self.padding, minimum=0, what="non-negative"))
        self._set("groups", single("groups", self.groups, minimum=1, what="a positive int"))
        self._set("bias", bool(self.bias))

    def validate(self) -> None:
        g = self.groups
        if self.c % g:
            raise ParamError(f"groups={g} must divide in_channels={self.c}")
        if self.o % g:
            raise ParamError(f"groups={g} must divide out_channels={self.o}")
        if self.padding == "same" and self.stride != 1:
            raise ParamError(f"padding='same' needs stride 1, got stride={self.stride}")
        pad = sum(self.pads)
        eff = self.dilation * (self.k - 1) + 1
        if eff > self.l + pad:
            raise ParamError(
                f"kernel length with dilation ({eff} = {self.dilation}*({self.k}-1)+1) is larger than the "
                f"padded input length ({self.l + pad} = {self.l}+{pad})")

    @property
    def pads(self) -> tuple[int, int]:
        """(left, right) padding."""
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return same_pads(self.k, self.dilation)
        return (self.padding, self.padding)

    @property
    def out_l(self) -> int:
        return out_size(self.l, self.k, self.stride, self.dilation, sum(self.pads))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        ol = self.out_l
        s = {"x": (self.n, self.c, self.l), "w": (self.o, self.c // self.groups, self.k),
             "y": (self.n, self.o, ol), "dy": (self.n, self.o, ol),
             "grad_input": (self.n, self.c, self.l), "grad_weight": (self.o, self.c // self.groups, self.k)}
        if self.bias:
            s["b"] = s["grad_bias"] = (self.o,)
        return s

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the convolution proper (one direction, no bias)."""
        return self.n * self.o * (self.c // self.groups) * self.k * self.out_l

    def flops(self, direction: str) -> int:
        conv = 2 * self.macs
        bias = self.n * self.o * self.out_l if self.bias else 0
        per = {"forward": conv + bias, "grad_input": conv, "grad_weight": conv, "grad_bias": bias}
        if direction == "backward":
            return per["grad_input"] + per["grad_weight"] + per["grad_bias"]
        try:
            return per[direction]
        except KeyError:
            raise ParamError(f"direction must be one of forward, backward, {', '.join(OP.grads)}; got {direction!r}") from None

    def accumulation_length(self, direction: str) -> int:
        cg, og = self.c // self.groups, self.o // self.groups
        return {"forward": cg * self.k + (1 if self.bias else 0),
                "grad_input": og * self.k,
                "grad_weight": self.n * self.out_l,
                "grad_bias": self.n * self.out_l}[direction]

    def features(self) -> frozenset[str]:
        f = set()
        if self.stride != 1:
            f.add("stride")
        left, right = self.pads
        if left or right:
            f.add("padding")
        if left != right:
            f.add("asymmetric_padding")
        if isinstance(self.padding, str):
            f.add(f"padding_{self.padding}")
        if self.dilation != 1:
            f.add("dilation")
        if self.groups != 1:
            f.add("groups")
        f.add("bias" if self.bias else "no_bias")
        return frozenset(f)

    @property
    def descriptor(self) -> str:
        parts = [f"n{self.n}c{self.c}l{self.l}o{self.o}k{self.k}s{self.stride}p{self.padding}"]
        if self.dilation != 1:
            parts.append(f"d{self.dilation}")
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        if not self.bias:
            parts.append("nb")
        return "".join(parts)


class Conv1d(Op):
    name = "conv1d"
    Params = Conv1dParams
    forward_inputs = ("x", "w", "b")
    backward_inputs = ("dy", "x", "w")
    grads = ("grad_input", "grad_weight", "grad_bias")
    # ``x`` in the backward too: ``grad_weight`` multiplies it by ``dy``
    nan_inputs = {"forward": ("x",), "backward": ("dy", "x")}
    descriptor_keys = ("n", "c", "l", "o", "k", "s", "p", "d", "g", "nb", "dt")

    def params_from_arrays(self, x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
                           dilation: Any = 1, groups: Any = 1) -> Conv1dParams:
        dt = float_dtype("x", x)
        if float_dtype("w", w) != dt:
            raise TypeError(f"w must have the dtype of x ({dt}), got {w.dtype}")
        ndim("x", x, 3, "N, C, L")
        ndim("w", w, 3, "out_channels, in_channels/groups, k")
        groups = single("groups", groups, minimum=1, what="a positive int")
        n, c, length = x.shape
        o, cg, k = w.shape
        if cg * groups != c:
            raise ParamError(
                f"input channels do not match the weight: x has C={c}, w has in_channels/groups={cg} "
                f"with groups={groups} (expects C={cg * groups})")
        if b is not None:
            if float_dtype("b", b) != dt:
                raise TypeError(f"b must have the dtype of x ({dt}), got {b.dtype}")
            if b.shape != (o,):
                raise ParamError(f"b must have shape (out_channels,) = ({o},), got {b.shape}")
        return Conv1dParams(n=n, c=c, l=length, o=o, k=k, stride=stride, padding=padding,
                            dilation=dilation, groups=groups, bias=b is not None)

    def params_from_keys(self, keys: dict[str, Any]) -> Conv1dParams:
        for req in ("c", "l", "o", "k"):
            if req not in keys:
                raise ParamError(f"conv1d descriptor needs key {req!r} (keys given: {sorted(keys)})")
        return Conv1dParams(n=keys.get("n", 1), c=keys["c"], l=keys["l"], o=keys["o"], k=keys["k"],
                            stride=keys.get("s", 1), padding=keys.get("p", 0), dilation=keys.get("d", 1),
                            groups=keys.get("g", 1), bias=not keys.get("nb", False))

    def make_inputs(self, p: Conv1dParams, dtype: str, fill: str = "random", seed: int = 0) -> dict[str, np.ndarray]:  # type: ignore[override]
        rng = np.random.default_rng(seed)
        shp = p.shapes()
        names = ["x", "w", "dy"] + (["b"] if p.bias else [])
        if fill == "random":
            return {k: rng.standard_normal(shp[k]).astype(dtype) for k in names}
        if fill == "exact":
            m = self.exact_magnitude(p, dtype)
            if m == 0:
                raise ParamError(f"no exact fill exists for {p.descriptor} in {dtype}: accumulation too long")
            return {k: rng.integers(-m, m + 1, size=shp[k]).astype(dtype) for k in names}
        raise ParamError(f"fill must be 'random' or 'exact', got {fill!r}")

    # --- float64 reference: the definition, one kernel tap at a time -------------------------
    @staticmethod
    def _tap(p: Conv1dParams, u: int) -> slice:
        """Positions of the padded input that kernel tap u meets, over all outputs."""
        return slice(u * p.dilation, u * p.dilation + p.stride * (p.out_l - 1) + 1, p.stride)

    def reference_forward(self, p: Conv1dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:  # type: ignore[override]
        """y[n, o, i] = b[o] + sum_{c, u} x_pad[n, g*C/g + c, i*s + u*d] * w[o, c, u]."""
        xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), p.pads))
        w = np.asarray(w, np.float64)
        cg, og = p.c // p.groups, p.o // p.groups
        y = np.zeros(p.shapes()["y"], np.float64)
        for gi in range(p.groups):
            xs, ws = xp[:, gi * cg:(gi + 1) * cg], w[gi * og:(gi + 1) * og]
            for u in range(p.k):
                y[:, gi * og:(gi + 1) * og] += np.einsum(
                    "ncl,oc->nol", xs[:, :, self._tap(p, u)], ws[:, :, u], optimize=True)
        if b is not None:
            y += np.asarray(b, np.float64)[None, :, None]
        return y

    def reference_backward(self, p: Conv1dParams, dy: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # type: ignore[override]
        """The adjoints of the forward, tap by tap: dx scatters dy*w, dw gathers dy*x, db sums dy."""
        xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), p.pads))
        dy = np.asarray(dy, np.float64)
        w = np.asarray(w, np.float64)
        cg, og = p.c // p.groups, p.o // p.groups
        dxp = np.zeros_like(xp)
        dw = np.zeros(w.shape, np.float64)
        for gi in range(p.groups):
            dys = dy[:, gi * og:(gi + 1) * og]
            for u in range(p.k):
                t = self._tap(p, u)
                dxp[:, gi * cg:(gi + 1) * cg, t] += np.einsum(
                    "nol,oc->ncl", dys, w[gi * og:(gi + 1) * og, :, u], optimize=True)
                dw[gi * og:(gi + 1) * og, :, u] = np.einsum(
                    "nol,ncl->oc", dys, xp[:, gi * cg:(gi + 1) * cg, t], optimize=True)
        left = p.pads[0]
        dx = dxp[:, :, left:left + p.l]
        db = dy.sum(axis=(0, 2)) if p.bias else None
        return np.ascontiguousarray(dx), dw, db


OP = Conv1d()
