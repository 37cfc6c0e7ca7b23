"""The oracle: the operator's float64 reference, and calling an implementation the same way.

Both sides take the same dict of named arrays (``make_inputs``) and give results keyed by
direction (``forward``, ``grad_input``, ``grad_weight``, ``grad_bias``), so a check compares
like with like whatever the operator.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convbench.ops import OpParams, get_op

__all__ = ["value_directions", "expected", "run_impl", "forward_args", "backward_args"]


def value_directions(p: OpParams, direction: str) -> list[str]:
    """The value directions behind a contract direction: ``backward`` -> the op's present grads."""
    if direction == "forward":
        return ["forward"]
    shp = p.shapes()
    return [g for g in get_op(p.op).grads if g in shp]


def forward_args(p: OpParams, inputs: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    return [inputs.get(k) for k in get_op(p.op).forward_inputs]


def backward_args(p: OpParams, inputs: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    return [inputs.get(k) for k in get_op(p.op).backward_inputs]


def expected(p: OpParams, inputs: dict[str, np.ndarray], direction: str) -> dict[str, np.ndarray]:
    """The float64 reference results of ``direction`` (``forward`` or ``backward``) by value direction."""
    spec = get_op(p.op)
    if direction == "forward":
        return {"forward": spec.reference_forward(p, *forward_args(p, inputs))}
    grads = spec.reference_backward(p, *backward_args(p, inputs))
    return {g: v for g, v in zip(spec.grads, grads) if v is not None}


def run_impl(impl: Any, p: OpParams, inputs: dict[str, np.ndarray], direction: str,
             raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """The implementation's results of ``direction``, as NumPy arrays keyed like :func:`expected`.

    A missing gradient is None. Exceptions from the implementation propagate. ``raw``, when given,
    receives the results as the implementation returned them, before ``to_numpy``.
    """
    spec = get_op(p.op)
    raw = {} if raw is None else raw
    if direction == "forward":
        native = impl.prepare(*forward_args(p, inputs))
        out = raw["forward"] = impl.forward(p, *native)
        impl.sync()
        return {"forward": None if out is None else impl.to_numpy(out)}
    native = impl.prepare(*backward_args(p, inputs))
    grads = impl.backward(p, *native)
    impl.sync()
    if not isinstance(grads, (tuple, list)):
        raise TypeError(f"backward must return a tuple ({', '.join(spec.grads)}), got {type(grads).__name__}")
    if len(grads) != len(spec.grads):
        raise TypeError(f"backward must return {len(spec.grads)} gradients ({', '.join(spec.grads)}), got {len(grads)}")
    raw.update(zip(spec.grads, grads))
    return {g: (None if v is None else impl.to_numpy(v)) for g, v in zip(spec.grads, grads)}
