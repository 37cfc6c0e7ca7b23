"""What max_pool2d and avg_pool2d share: parameters, PyTorch's output-size rule, windows, descriptors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from convbench._errors import ParamError
from convbench.ops._base import Op, OpParams
from convbench.ops._common import float_dtype, ndim, pair, single


def flag(name: str, value: Any) -> bool:
    """A boolean argument: True/False (or 0/1, as descriptors give them); ``ParamError`` otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise ParamError(f"{name} must be True or False, got {value!r}")


def pool_out_size(size: int, k: int, s: int, d: int, pad: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape``: floor or ceil, and in ceil mode the last window must start
    inside the input or its left padding (else it is dropped)."""
    span = size + 2 * pad - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True)
class PoolParams(OpParams):
    """The fields of a 2-D pooling call; ``stride`` None means the kernel size (PyTorch's default)."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    stride: Any = None
    padding: Any = (0, 0)
    ceil_mode: bool = False

    #: dilation of the window; avg_pool2d has none, max_pool2d overrides with a field
    @property
    def dil(self) -> tuple[int, int]:
        return (1, 1)

    def _normalise(self) -> None:
        for name in ("n", "c", "h", "w"):
            self._set(name, single(name, getattr(self, name), minimum=1, what="a positive int"))
        for name in ("kh", "kw"):
            self._set(name, single(f"kernel_size ({name})", getattr(self, name), minimum=1,
                                   what="positive (>= 1)"))
        if self.stride is None or (isinstance(self.stride, (tuple, list)) and len(self.stride) == 0):
            self._set("stride", (self.kh, self.kw))
        else:
            self._set("stride", pair("stride", self.stride, minimum=1, what="positive (>= 1)"))
        self._set("padding", pair("padding", self.padding, minimum=0, what="non-negative"))
        self._set("ceil_mode", flag("ceil_mode", self.ceil_mode))

    def validate(self) -> None:
        # PyTorch's rule is on the kernel size, not the dilated one: pad <= kernel_size // 2.
        for axis, pad, k in (("height", self.padding[0], self.kh), ("width", self.padding[1], self.kw)):
            if pad > k // 2:
                raise ParamError(
                    f"padding={pad} must be at most half the kernel size in {axis} "
                    f"(kernel_size {k} -> at most {k // 2}); got padding={self.padding}")
        for axis, size, k, s, d, pad, o in self._axes():
            if o < 1:
                mode = "ceil" if self.ceil_mode else "floor"
                raise ParamError(
                    f"output {axis} would be {o}: {mode}(({axis} {size} + 2*padding {pad} - dilation {d}"
                    f"*(kernel_size {k}-1) - 1) / stride {s}) + 1 = {o}; the window does not fit the input")

    def _axes(self) -> Iterator[tuple[str, int, int, int, int, int, int]]:
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dil
        yield "height", self.h, self.kh, sh, dh, ph, pool_out_size(self.h, self.kh, sh, dh, ph, self.ceil_mode)
        yield "width", self.w, self.kw, sw, dw, pw, pool_out_size(self.w, self.kw, sw, dw, pw, self.ceil_mode)

    @property
    def out_hw(self) -> tuple[int, int]:
        oh, ow = (a[-1] for a in self._axes())
        return oh, ow

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding, as conv2d gives it (pooling pads symmetrically)."""
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        oh, ow = self.out_hw
        x = (self.n, self.c, self.h, self.w)
        y = (self.n, self.c, oh, ow)
        return {"x": x, "y": y, "dy": y, "grad_input": x}

    @property
    def windows(self) -> int:
        oh, ow = self.out_hw
        return self.n * self.c * oh * ow

    def _direction(self, direction: str) -> str:
        if direction in ("forward", "backward", "grad_input"):
            return direction
        raise ParamError(f"direction must be one of forward, backward, grad_input; got {direction!r}")

    def accumulation_length(self, direction: str) -> int:
        if self._direction(direction) == "forward":
            return self._forward_accumulation()
        # grad_input sums the gradients of every window covering one input element
        (sh, sw), (dh, dw) = self.stride, self.dil
        over_h = min(self.kh, -(-(dh * (self.kh - 1) + 1) // sh))
        over_w = min(self.kw, -(-(dw * (self.kw - 1) + 1) // sw))
        return over_h * over_w

    def _forward_accumulation(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _base_features(self) -> set[str]:
        f = set()
        if self.stride != (self.kh, self.kw):
            f.add("stride")
        if self.stride[0] < self.kh or self.stride[1] < self.kw:
            f.add("overlapping")
        if any(self.padding):
            f.add("padding")
        if self.ceil_mode:
            f.add("ceil_mode")
        if (self.kh != self.kw or self.stride[0] != self.stride[1] or self.padding[0] != self.padding[1]
                or self.dil[0] != self.dil[1]):
            f.add("rectangular")
        return f

    def _base_descriptor(self) -> list[str]:
        parts = [f"n{self.n}c{self.c}h{self.h}w{self.w}"]
        parts.append(f"k{self.kh}" if self.kh == self.kw else f"kh{self.kh}kw{self.kw}")
        sh, sw = self.stride
        parts.append(f"s{sh}" if sh == sw else f"sh{sh}sw{sw}")
        ph, pw = self.padding
        parts.append(f"p{ph}" if ph == pw else f"ph{ph}pw{pw}")
        return parts

    def window_misses_input(self) -> bool:
        """Some window holds no input element at all (only padding and dilation gaps)."""
        oh, ow = self.out_hw
        return (any(not self.window(i, 0)[0] for i in range(oh))
                or any(not self.window(0, j)[1] for j in range(ow)))

    def window(self, i: int, j: int) -> tuple[list[int], list[int]]:
        """Input rows and columns window (i, j) covers, padding and positions past the edge left out,
        in window order."""
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dil
        rows = [i * sh - ph + u * dh for u in range(self.kh)]
        cols = [j * sw - pw + v * dw for v in range(self.kw)]
        return [r for r in rows if 0 <= r < self.h], [c for c in cols if 0 <= c < self.w]


class PoolOp(Op):
    """The parts of the pooling operators that do not depend on max or average."""

    forward_inputs = ("x",)
    backward_inputs = ("dy", "x")
    grads = ("grad_input",)

    def _array_params(self, x: Any, **hyper: Any) -> dict[str, Any]:
        float_dtype("x", x)
        ndim("x", x, 4, "N, C, H, W")
        kernel_size = hyper.pop("kernel_size")
        kh, kw = pair("kernel_size", kernel_size, minimum=1, what="positive (>= 1)")
        n, c, h, w = x.shape
        return dict(n=n, c=c, h=h, w=w, kh=kh, kw=kw, **hyper)

    def _key_params(self, keys: dict[str, Any]) -> dict[str, Any]:
        for req in ("c", "h", "w"):
            if req not in keys:
                raise ParamError(f"{self.name} descriptor needs key {req!r} (keys given: {sorted(keys)})")
        if "k" not in keys and not ("kh" in keys and "kw" in keys):
            raise ParamError(f"{self.name} descriptor needs a kernel size: 'k' or both 'kh' and 'kw'")
        kh, kw = keys.get("kh", keys.get("k")), keys.get("kw", keys.get("k"))
        p = keys.get("p", 0)
        return dict(n=keys.get("n", 1), c=keys["c"], h=keys["h"], w=keys["w"], kh=kh, kw=kw,
                    stride=(keys.get("sh", keys.get("s", kh)), keys.get("sw", keys.get("s", kw))),
                    padding=(keys.get("ph", p), keys.get("pw", p)), ceil_mode=keys.get("ceil", False))

    def _exact_x_magnitude(self, p: OpParams, dtype: str) -> int:
        return self.exact_magnitude(p, dtype)

    def _random_x(self, p: OpParams, dtype: str, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(p.shapes()["x"]).astype(dtype)

    def make_inputs(self, p: OpParams, dtype: str, fill: str = "random", seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        shp = p.shapes()
        if fill == "random":
            return {"x": self._random_x(p, dtype, rng), "dy": rng.standard_normal(shp["dy"]).astype(dtype)}
        if fill == "exact":
            m = self.exact_magnitude(p, dtype)
            if m == 0:
                raise ParamError(f"no exact fill exists for {p.descriptor} in {dtype}: accumulation too long")
            mx = min(m, self._exact_x_magnitude(p, dtype))
            return {"x": rng.integers(-mx, mx + 1, size=shp["x"]).astype(dtype),
                    "dy": rng.integers(-m, m + 1, size=shp["dy"]).astype(dtype)}
        raise ParamError(f"fill must be 'random' or 'exact', got {fill!r}")
