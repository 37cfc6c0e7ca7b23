"""What the forms written against (CPU) torch tensors share: arguments as tensors, results back
to NumPy, a zero bias of the right kind."""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["TensorArgs", "zeros_like_bias", "is_torch_module"]

class TensorArgs:
    """``prepare``/``to_numpy`` of an implementation written against (CPU) torch tensors: the
    inputs as tensors sharing the arrays' memory and strides (so a change in place shows, and a
    non-contiguous input stays one), results back to NumPy."""

    def prepare(self, *arrays: np.ndarray | None) -> tuple[Any, ...]:
        import torch  # deferred: torch takes seconds to import, and only torch-written objects need it

        return tuple(None if a is None else torch.from_numpy(a if min(a.strides, default=0) >= 0
                                                             else np.ascontiguousarray(a)) for a in arrays)

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def zeros_like_bias(n: int, w: Any) -> Any:
    """Zeros standing in for a missing bias, of ``w``'s kind (array or tensor) and dtype."""
    if isinstance(w, np.ndarray):
        return np.zeros(n, dtype=w.dtype)
    import torch  # deferred: only a torch-written object gets here

    return torch.zeros(n, dtype=w.dtype, device=w.device)


def is_torch_module(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.nn.Module`` class or instance (torch is not imported for it: an
    object of one was made with torch already loaded)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    cls = obj if isinstance(obj, type) else type(obj)
    return issubclass(cls, torch.nn.Module)
