"""``torch.nn.Module`` layer classes as implementations: built per call from the case like any
layer, weights set from the case, gradients through autograd."""
from __future__ import annotations

from typing import Any

import numpy as np

from convbench.adapt.kinds import features, layer_kind
from convbench.adapt.layers import LayerImpl, ctor_map, ctor_values
from convbench.ops import OpParams
from convbench.protocol import Implementation

__all__ = ["TorchModuleImpl", "adapt_torch_module"]


class TorchModuleImpl(LayerImpl):
    """A ``torch.nn.Module`` layer class: weights set from the case, gradients through autograd."""

    def __init__(self, cls: type, ctor: dict[str, str], op: str = "conv2d") -> None:
        super().__init__(cls, ctor, pairs=True, op=op)
        self.wrap_in = self.wrap_dout = False

    def _module(self, p: OpParams, w: np.ndarray | None, b: np.ndarray | None, dtype: np.dtype) -> Any:
        import torch  # deferred: loaded already where a torch module is adapted; keeps the adapters light

        values = ctor_values(p, self.op, lambda key, v: v, torch=True)
        m = self.cls(**{arg: values[key] for key, arg in self.ctor.items()})
        m = m.to(torch.float64 if dtype == np.float64 else torch.float32)
        if self.kind.has_weights:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)) if b is not None else torch.zeros_like(m.bias))
        return m

    def forward(self, p: OpParams, x: np.ndarray, *wb: np.ndarray | None) -> Any:
        import torch  # deferred: loaded already where a torch module is adapted; keeps the adapters light

        m = self._module(p, *(wb or (None, None)), dtype=x.dtype)
        with torch.no_grad():
            return m(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def backward(self, p: OpParams, dy: np.ndarray, x: np.ndarray, *w: np.ndarray) -> tuple[Any, ...]:
        import torch  # deferred: loaded already where a torch module is adapted; keeps the adapters light

        m = self._module(p, w[0] if w else None, None, dtype=x.dtype)
        xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        m(xt).backward(torch.from_numpy(np.ascontiguousarray(dy)))
        if not self.kind.has_weights:
            return (xt.grad.numpy(),)
        db = m.bias.grad.numpy() if p.bias and getattr(m, "bias", None) is not None else None
        return xt.grad.numpy(), m.weight.grad.numpy(), db


def adapt_torch_module(obj: Any, op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`TorchModuleImpl` for a ``torch.nn.Module`` class (or an instance: its class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    kind = layer_kind(op)
    ctor = ctor_map(cls, kind)
    f = set(features(kind, ctor, pairs=op != "conv1d"))
    if kind.has_weights and "padding" in ctor:
        f.add("asymmetric_padding")  # torch pads 'same' with an even kernel on one side itself
    return TorchModuleImpl(cls, ctor, op), {
        "op": op, "backend": "torch", "directions": {"forward", "backward"}, "features": frozenset(f),
        "description": f"torch module {cls.__module__}.{cls.__qualname__}"}
