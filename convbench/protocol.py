"""The implementation protocol: what an implementation declares (:class:`ImplInfo`), what it
provides (:class:`Implementation`) and how it registers (:func:`register`).

The ground floor of the engine beside :mod:`convbench.ops`: it imports nothing else of convbench,
so ``impls/`` and the adapters build on it without reaching the registry. Discovery, listing and
loading by spec live in :mod:`convbench.registry`, which reads the store filled here.
"""
from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from convbench._errors import ParamError
from convbench.ops import DIRECTIONS, OpParams, get_op

__all__ = ["ImplInfo", "Implementation", "register", "REGISTRY", "REGISTRY_LOCK", "ALL_DTYPES", "ALL_DIRECTIONS"]

ALL_DTYPES = frozenset({"float32", "float64"})
ALL_DIRECTIONS = frozenset(DIRECTIONS)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ImplInfo:
    """What an implementation declares about itself.

    Parameters
    ----------
    op, name, backend, device
        Operator (``conv2d``), snake-case name (``im2col``, ``torch_cpu``), array library and device.
    directions, dtypes
        What it computes: ``forward``/``backward``; ``float32``/``float64``.
    features
        The case features it handles (see ``OpParams.features``: ``stride``, ``padding``,
        ``asymmetric_padding``, ``dilation``, ``groups``, ``no_bias``, ``rectangular``, ...), or
        ``None`` for all of them. A case needing a feature outside the set is *unsupported*.
    deterministic
        Two runs on the same inputs give bitwise-equal results.
    exact
        A direct method (every output a plain sum of products): held to the bit-exact tier.
    algorithm
        Error model for the random tier's bound: ``direct``, ``fft`` or ``winograd``.
    isolate
        Checked in a subprocess by default (implementations from files and entry points).
    backward_includes_forward
        Its backward direction runs the forward first (an adapted layer or function that needs the
        forward's cache or autograd graph), so a backward time includes a forward's; bench
        records and reports say so.
    spec
        How to load it again, in another process.
    available, reason
        Filled in by :func:`implementations`: whether it can run here, and why not.
    """

    op: str
    name: str
    backend: str = "numpy"
    device: str = "cpu"
    directions: frozenset[str] = ALL_DIRECTIONS
    dtypes: frozenset[str] = ALL_DTYPES
    features: frozenset[str] | None = None
    deterministic: bool = True
    exact: bool = True
    algorithm: str = "direct"
    isolate: bool = False
    backward_includes_forward: bool = False
    spec: str = ""
    description: str = ""
    available: bool = True
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("directions", "dtypes", "features"):
            d[k] = sorted(d[k]) if d[k] is not None else None
        return d


class Implementation:
    """The protocol, with CPU/NumPy defaults. Subclass it, or give any object these members.

    ``forward(p, *inputs)`` receives the op's forward inputs in order (conv2d: ``x, w, b`` with
    ``b`` None when ``p.bias`` is false) and returns the output; ``backward(p, *inputs)`` receives
    ``dy`` then the remaining backward inputs (conv2d: ``dy, x, w``) and returns the gradients in
    the op's order (conv2d: ``grad_input, grad_weight, grad_bias``, the last None without bias).
    Both are stateless: everything comes in as arguments, already in native form (``prepare``),
    and parameters are always valid. Output dtype must equal input dtype.
    """

    info: ImplInfo

    def availability(self) -> str | None:
        """None when the implementation can run here, else the reason it cannot."""
        return None

    def unsupported(self, p: OpParams, dtype: str, direction: str) -> str | None:
        """None when this case is supported, else why not. Override to add constraints."""
        info = self.info
        if direction not in info.directions:
            return f"{info.name} has no {direction}"
        if dtype not in info.dtypes:
            return f"{info.name} does not take {dtype}"
        if info.features is not None:
            missing = sorted(p.features() - info.features)
            if missing:
                return f"{info.name} does not support {', '.join(missing)}"
        return None

    def prepare(self, *arrays: np.ndarray | None) -> tuple[Any, ...]:
        """NumPy arrays to native arrays (untimed)."""
        return arrays

    def forward(self, p: OpParams, *inputs: Any) -> Any:
        raise NotImplementedError

    def backward(self, p: OpParams, *inputs: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until all queued device work is done (no-op on the CPU)."""

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def __repr__(self) -> str:
        i = getattr(self, "info", None)
        return f"<{type(self).__name__} {i.op}/{i.name}>" if i else f"<{type(self).__name__}>"


#: the store ``@register`` fills: (op, name) -> implementation; read it through :mod:`convbench.registry`
REGISTRY: dict[tuple[str, str], Any] = {}
#: held while the store is read or written (registration may happen in several threads)
REGISTRY_LOCK = threading.RLock()


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ParamError(f"implementation name must be snake case (e.g. 'im2col', 'torch_cpu'), got {name!r}")


def register(obj: Any = None, *, op: str, name: str, backend: str = "numpy", device: str = "cpu",
             replace: bool = False, **info: Any) -> Any:
    """Register an implementation; usable as a class decorator.

    ``@register(op="conv2d", name="im2col", backend="numpy")`` on a class instantiates it (no
    arguments) and stores the instance with its :class:`ImplInfo`. On an instance, it registers the
    instance. Returns what it decorated.

    Examples
    --------
    >>> @register(op="conv2d", name="my_conv", backend="numpy")
    ... class MyConv(Implementation):
    ...     def forward(self, p, x, w, b): ...
    """

    def deco(target: Any) -> Any:
        get_op(op)
        _check_name(name)
        inst = target() if isinstance(target, type) else target
        spec = info.pop("spec", "") or name
        inst.info = ImplInfo(op=op, name=name, backend=backend, device=device, spec=spec,
                             **{k: (frozenset(v) if k in ("directions", "dtypes", "features") and v is not None else v)
                                for k, v in info.items()})
        with REGISTRY_LOCK:
            old = REGISTRY.get((op, name))
            if old is not None and not replace and old.info.spec != inst.info.spec:
                raise ParamError(f"implementation {op}/{name} is already registered (from {old.info.spec!r})")
            REGISTRY[(op, name)] = inst
        return target

    return deco if obj is None else deco(obj)
