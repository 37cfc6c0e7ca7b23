"""conv2d: PyTorch semantics (cross-correlation, NCHW, weight (O, C/groups, kh, kw))."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from convbench._errors import ParamError
from convbench.ops._base import Op, OpParams
from convbench.ops._common import float_dtype, ndim, out_size, pair, same_pads, single

__all__ = ["Conv2dParams", "Conv2d", "OP"]

PADDING_STRINGS = ("same", "valid")


@dataclass(frozen=True)
class Conv2dParams(OpParams):
    """One conv2d call. ``padding`` is an (h, w) pair or ``'same'`` / ``'valid'``."""

    op: ClassVar[str] = "conv2d"

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: Any = (1, 1)
    padding: Any = (0, 0)
    dilation: Any = (1, 1)
    groups: int = 1
    bias: bool = True

    def _normalise(self) -> None:
        for name in ("n", "c", "h", "w", "o", "kh", "kw"):
            self._set(name, single(name, getattr(self, name), minimum=1, what="a positive int"))
        self._set("stride", pair("stride", self.stride, minimum=1, what="positive (>= 1)"))
        self._set("dilation", pair("dilation", self.dilation, minimum=1, what="positive (>= 1)"))
        if isinstance(self.padding, str):
            if self.padding not in PADDING_STRINGS:
                raise ParamError(f"padding must be an int, a pair, 'same' or 'valid', got {self.padding!r}")
        else:
            self._set("padding", pair("padding", self.padding, minimum=0, what="non-negative"))
        self._set("groups", single("groups", self.groups, minimum=1, what="a positive int"))
        self._set("bias", bool(self.bias))

    def validate(self) -> None:
        g = self.groups
        if self.c % g:
            raise ParamError(f"groups={g} must divide in_channels={self.c}")
        if self.o % g:
            raise ParamError(f"groups={g} must divide out_channels={self.o}")
        if self.padding == "same" and self.stride != (1, 1):
            raise ParamError(f"padding='same' needs stride 1, got stride={self.stride}")
        pt, pb, pl, pr = self.pads
        for axis, size, pad, k, d in (("height", self.h, pt + pb, self.kh, self.dilation[0]),
                                      ("width", self.w, pl + pr, self.kw, self.dilation[1])):
            eff = d * (k - 1) + 1
            if eff > size + pad:
                raise ParamError(
                    f"kernel {axis} with dilation ({eff} = {d}*({k}-1)+1) is larger than the padded "
                    f"input {axis} ({size + pad} = {size}+{pad})"
                )

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            return (*same_pads(self.kh, self.dilation[0]), *same_pads(self.kw, self.dilation[1]))
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    @property
    def out_hw(self) -> tuple[int, int]:
        pt, pb, pl, pr = self.pads
        return (out_size(self.h, self.kh, self.stride[0], self.dilation[0], pt + pb),
                out_size(self.w, self.kw, self.stride[1], self.dilation[1], pl + pr))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        oh, ow = self.out_hw
        s = {"x": (self.n, self.c, self.h, self.w),
             "w": (self.o, self.c // self.groups, self.kh, self.kw),
             "y": (self.n, self.o, oh, ow), "dy": (self.n, self.o, oh, ow),
             "grad_input": (self.n, self.c, self.h, self.w),
             "grad_weight": (self.o, self.c // self.groups, self.kh, self.kw)}
        if self.bias:
            s["b"] = s["grad_bias"] = (self.o,)
        return s

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the convolution proper (one direction, no bias)."""
        oh, ow = self.out_hw
        return self.n * self.o * (self.c // self.groups) * self.kh * self.kw * oh * ow

    def flops(self, direction: str) -> int:
        oh, ow = self.out_hw
        conv = 2 * self.macs
        bias = self.n * self.o * oh * ow if self.bias else 0
        per = {"forward": conv + bias, "grad_input": conv, "grad_weight": conv, "grad_bias": bias}
        if direction == "backward":
            return per["grad_input"] + per["grad_weight"] + per["grad_bias"]
        try:
            return per[direction]
        except KeyError:
            raise ParamError(f"direction must be one of forward, backward, {', '.join(OP.grads)}; got {direction!r}") from None

    def accumulation_length(self, direction: str) -> int:
        oh, ow = self.out_hw
        cg, og = self.c // self.groups, self.o // self.groups
        k = self.kh * self.kw
        return {"forward": cg * k + (1 if self.bias else 0),
                "grad_input": og * k,
                "grad_weight": self.n * oh * ow,
                "grad_bias": self.n * oh * ow}[direction]

    def features(self) -> frozenset[str]:
        f = set()
        if self.stride != (1, 1):
            f.add("stride")
        pt, pb, pl, pr = self.pads
        if any(self.pads):
            f.add("padding")
        if pt != pb or pl != pr:
            f.add("asymmetric_padding")
        if isinstance(self.padding, str):
            f.add(f"padding_{self.padding}")
        if self.dilation != (1, 1):
            f.add("dilation")
        if self.groups != 1:
            f.add("groups")
        f.add("bias" if self.bias else "no_bias")
        if (self.kh != self.kw or self.stride[0] != self.stride[1] or self.dilation[0] != self.dilation[1]
                or (not isinstance(self.padding, str) and self.padding[0] != self.padding[1])):
            f.add("rectangular")
        return frozenset(f)

    @property
    def descriptor(self) -> str:
        parts = [f"n{self.n}c{self.c}h{self.h}w{self.w}o{self.o}"]
        parts.append(f"k{self.kh}" if self.kh == self.kw else f"kh{self.kh}kw{self.kw}")
        sh, sw = self.stride
        parts.append(f"s{sh}" if sh == sw else f"sh{sh}sw{sw}")
        if isinstance(self.padding, str):
            parts.append(f"p{self.padding}")
        else:
            ph, pw = self.padding
            parts.append(f"p{ph}" if ph == pw else f"ph{ph}pw{pw}")
        dh, dw = self.dilation
        if (dh, dw) != (1, 1):
            parts.append(f"d{dh}" if dh == dw else f"dh{dh}dw{dw}")
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        if not self.bias:
            parts.append("nb")
        return "".join(parts)


class Conv2d(Op):
    name = "conv2d"
    Params = Conv2dParams
    forward_inputs = ("x", "w", "b")
    backward_inputs = ("dy", "x", "w")
    grads = ("grad_input", "grad_weight", "grad_bias")
    # ``x`` in the backward too: ``grad_weight`` multiplies it by ``dy``
    nan_inputs = {"forward": ("x",), "backward": ("dy", "x")}
    descriptor_keys = ("n", "c", "h", "w", "o", "k", "kh", "kw", "s", "sh", "sw", "p", "ph", "pw",
                       "d", "dh", "dw", "g", "nb", "dt")

    def params_from_arrays(self, x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
                           dilation: Any = 1, groups: Any = 1) -> Conv2dParams:
        dt = float_dtype("x", x)
        if float_dtype("w", w) != dt:
            raise TypeError(f"w must have the dtype of x ({dt}), got {w.dtype}")
        ndim("x", x, 4, "N, C, H, W")
        ndim("w", w, 4, "out_channels, in_channels/groups, kh, kw")
        groups = single("groups", groups, minimum=1, what="a positive int")
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        if cg * groups != c:
            raise ParamError(
                f"input channels do not match the weight: x has C={c}, w has in_channels/groups={cg} "
                f"with groups={groups} (expects C={cg * groups})"
            )
        if b is not None:
            if float_dtype("b", b) != dt:
                raise TypeError(f"b must have the dtype of x ({dt}), got {b.dtype}")
            if b.shape != (o,):
                raise ParamError(f"b must have shape (out_channels,) = ({o},), got {b.shape}")
        if isinstance(padding, str):
            pad: Any = padding
        elif isinstance(padding, (tuple, list)) and len(padding) == 1:
            pad = padding[0]
        else:
            pad = padding
        return Conv2dParams(n=n, c=c, h=h, w=wd, o=o, kh=kh, kw=kw, stride=stride, padding=pad,
                            dilation=dilation, groups=groups, bias=b is not None)

    def params_from_keys(self, keys: dict[str, Any]) -> Conv2dParams:
        def two(a: str, ah: str, aw: str, default: Any) -> Any:
            v = keys.get(a, default)
            if isinstance(v, str):
                return v
            return (keys.get(ah, v), keys.get(aw, v))

        for req in ("c", "h", "w", "o"):
            if req not in keys:
                raise ParamError(f"conv2d descriptor needs key {req!r} (keys given: {sorted(keys)})")
        if "k" not in keys and not ("kh" in keys and "kw" in keys):
            raise ParamError("conv2d descriptor needs a kernel size: 'k' or both 'kh' and 'kw'")
        kh, kw = two("k", "kh", "kw", None)
        return Conv2dParams(n=keys.get("n", 1), c=keys["c"], h=keys["h"], w=keys["w"], o=keys["o"],
                            kh=kh, kw=kw, stride=two("s", "sh", "sw", 1), padding=two("p", "ph", "pw", 0),
                            dilation=two("d", "dh", "dw", 1), groups=keys.get("g", 1),
                            bias=not keys.get("nb", False))

    def make_inputs(self, p: Conv2dParams, dtype: str, fill: str = "random", seed: int = 0) -> dict[str, np.ndarray]:  # type: ignore[override]
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
    def _padded(p: Conv2dParams, x: np.ndarray) -> np.ndarray:
        pt, pb, pl, pr = p.pads
        return np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))

    @staticmethod
    def _tap(p: Conv2dParams, i: int, j: int) -> tuple[slice, slice]:
        """Rows and columns of the padded input that kernel tap (i, j) meets, over all outputs."""
        (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
        return (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))

    def reference_forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:  # type: ignore[override]
        """y[n, o, i, j] = b[o] + sum_{c, u, v} x_pad[n, g*C/g + c, i*sh + u*dh, j*sw + v*dw] * w[o, c, u, v]."""
        xp = self._padded(p, x)
        w = np.asarray(w, np.float64)
        g, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        y = np.zeros(p.shapes()["y"], np.float64)
        for gi in range(g):
            xs, ws = xp[:, gi * cg:(gi + 1) * cg], w[gi * og:(gi + 1) * og]
            for u in range(p.kh):
                for v in range(p.kw):
                    rows, cols = self._tap(p, u, v)
                    y[:, gi * og:(gi + 1) * og] += np.einsum("nchw,oc->nohw", xs[:, :, rows, cols], ws[:, :, u, v])
        if b is not None:
            y += np.asarray(b, np.float64)[None, :, None, None]
        return y

    def reference_backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # type: ignore[override]
        """The adjoints of the forward, tap by tap: dx scatters dy*w, dw gathers dy*x, db sums dy."""
        xp = self._padded(p, x)
        dy = np.asarray(dy, np.float64)
        w = np.asarray(w, np.float64)
        g, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        dxp = np.zeros_like(xp)
        dw = np.zeros(w.shape, np.float64)
        for gi in range(g):
            dys = dy[:, gi * og:(gi + 1) * og]
            for u in range(p.kh):
                for v in range(p.kw):
                    rows, cols = self._tap(p, u, v)
                    dxp[:, gi * cg:(gi + 1) * cg, rows, cols] += np.einsum(
                        "nohw,oc->nchw", dys, w[gi * og:(gi + 1) * og, :, u, v])
                    dw[gi * og:(gi + 1) * og, :, u, v] = np.einsum(
                        "nohw,nchw->oc", dys, xp[:, gi * cg:(gi + 1) * cg, rows, cols])
        pt, pb, pl, pr = p.pads
        dx = dxp[:, :, pt:pt + p.h, pl:pl + p.w]
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return np.ascontiguousarray(dx), dw, db


OP = Conv2d()
