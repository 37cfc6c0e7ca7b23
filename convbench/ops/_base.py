"""What every operator module provides, so the engine treats operators alike."""
from __future__ import annotations

import abc
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class OpParams(abc.ABC):
    """A fully resolved operator call: shapes and hyperparameters, validated on construction.

    Subclasses are frozen dataclasses; an instance that exists is valid.
    """

    op: ClassVar[str]

    def __post_init__(self) -> None:
        self._normalise()
        self.validate()

    def _normalise(self) -> None:  # pragma: no cover - overridden
        pass

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @abc.abstractmethod
    def validate(self) -> None:
        """Raise ``ParamError`` naming the argument and its value if the call is invalid."""

    @property
    @abc.abstractmethod
    def descriptor(self) -> str:
        """The case descriptor (``n8c64h56w56o64k3s1p1``) that parses back to these parameters."""

    @abc.abstractmethod
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every named array: forward inputs, output ``y`` and ``dy``."""

    @abc.abstractmethod
    def flops(self, direction: str) -> int:
        """Floating-point operations of ``direction`` (``forward``, ``backward`` or one gradient)."""

    @abc.abstractmethod
    def features(self) -> frozenset[str]:
        """Features this call needs of an implementation (``stride``, ``dilation``, ...)."""

    @abc.abstractmethod
    def accumulation_length(self, direction: str) -> int:
        """Longest sum of products behind one output element of ``direction``."""

    def bytes_min(self, direction: str, itemsize: int) -> int:
        """Minimum bytes moved: every input read once, every output written once."""
        shp = self.shapes()
        names = self.op_spec().io_names(direction, self)
        return itemsize * sum(int(np.prod(shp[n])) for n in names)

    def asdict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def op_spec(cls) -> "Op":
        return _BY_NAME[cls.op]


#: every operator by name, filled as each operator module makes its one instance (``OP = Conv2d()``)
_BY_NAME: dict[str, "Op"] = {}


class Op(abc.ABC):
    """An operator: its parameter type, the names of its arrays, its reference and input makers."""

    name: ClassVar[str]
    Params: ClassVar[type[OpParams]]
    #: forward inputs in the order implementations receive them (``forward(p, *inputs)``)
    forward_inputs: ClassVar[tuple[str, ...]]
    #: backward inputs in order (``backward(p, *inputs)``); ``dy`` first
    backward_inputs: ClassVar[tuple[str, ...]]
    #: names of the backward outputs, in order
    grads: ClassVar[tuple[str, ...]]
    #: descriptor keys this operator takes (``n``, ``c``, ...)
    descriptor_keys: ClassVar[tuple[str, ...]]
    #: per direction, the inputs the ``nan`` check plants a NaN in: those that enter the results
    #: as factors, so that a NaN must reach every result element depending on it (not max
    #: pooling's ``x`` in the backward, which only routes ``dy``)
    nan_inputs: ClassVar[dict[str, tuple[str, ...]]] = {"forward": ("x",), "backward": ("dy",)}

    def __init__(self) -> None:
        _BY_NAME[self.name] = self  # so that its parameters find it (OpParams.op_spec)

    def io_names(self, direction: str, p: OpParams) -> list[str]:
        """Arrays read and written by ``direction`` (for bytes_min); absent optional ones dropped."""
        if direction == "forward":
            names = [*self.forward_inputs, "y"]
        else:
            names = [*self.backward_inputs, *self.grads]
        return [n for n in names if n in p.shapes()]

    @abc.abstractmethod
    def params_from_arrays(self, *inputs: Any, **hyper: Any) -> OpParams:
        """Validate a public-API call and return its parameters."""

    @abc.abstractmethod
    def params_from_keys(self, keys: dict[str, Any]) -> OpParams:
        """Parameters from parsed descriptor keys (defaults filled in)."""

    @abc.abstractmethod
    def make_inputs(self, p: OpParams, dtype: str, fill: str = "random", seed: int = 0) -> dict[str, np.ndarray]:
        """Every array of the call (forward inputs and ``dy``), C-contiguous, of ``dtype``.

        ``fill='random'`` draws standard normal data; ``fill='exact'`` small integers sized so every
        sum of every direction is exact in ``dtype`` (see :meth:`exact_magnitude`).
        """

    @abc.abstractmethod
    def reference_forward(self, p: OpParams, *inputs: np.ndarray) -> np.ndarray:
        """Float64 forward, written for obviousness."""

    @abc.abstractmethod
    def reference_backward(self, p: OpParams, *inputs: np.ndarray) -> tuple[np.ndarray | None, ...]:
        """Float64 gradients, in the order of :attr:`grads`."""

    def exact_magnitude(self, p: OpParams, dtype: str) -> int:
        """Largest integer magnitude m such that every sum of products of values in [-m, m] is exact.

        0 means no such fill exists (the accumulation is too long for the dtype's mantissa).
        """
        mant = 24 if dtype == "float32" else 53
        longest = max(p.accumulation_length(d) for d in ("forward", *self.grads))
        # each term |a*b| <= m*m and sum <= longest*m*m must stay below 2**mant
        m = int(np.floor(np.sqrt((2.0**mant - 1) / max(longest, 1))))
        return min(m, 8)
