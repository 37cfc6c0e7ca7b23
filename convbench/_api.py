"""The public operator functions: validate once, then hand valid parameters to an implementation."""
from __future__ import annotations

from typing import Any

import numpy as np

from convbench._errors import ParamError
from convbench.measure import guard
from convbench.ops import OpParams, get_op
from convbench.registry import availability, load_impl


class UnsupportedError(RuntimeError):
    """The implementation cannot run this call here (unavailable, or the case is unsupported)."""


def _resolve(op: str, impl: Any) -> Any:
    if impl == "reference":
        return None
    inst = load_impl(impl, op=op)
    if inst.info.op != op:
        raise ParamError(f"impl {impl!r} is a {inst.info.op} implementation, not {op}")
    return inst


def _ready(inst: Any, p: OpParams, dtype: str, direction: str) -> None:
    why = availability(inst) or inst.unsupported(p, dtype, direction)
    if why:
        raise UnsupportedError(f"{inst.info.name} cannot run {p.op} {p.descriptor} {dtype} {direction}: {why}")


def _fits(p: OpParams, dtype: np.dtype, hyper: dict[str, Any]) -> None:
    """ParamError, naming the arguments, for a call whose arrays could never fit in memory
    (``padding=10**9``): said before anything is allocated."""
    have = guard.available_memory()
    shapes = p.shapes()
    need = dtype.itemsize * sum(int(np.prod(s, dtype=object)) for s in shapes.values())
    if have is not None and need > have:
        args = ", ".join(f"{k}={v!r}" for k, v in hyper.items() if v not in (None, 0, 1, False, (0, 0), (1, 1)))
        raise ParamError(f"{p.op}({args}): the output would have shape {shapes.get('y')} and the call's arrays "
                         f"take {guard.fmt_bytes(need)}; this machine has {guard.fmt_bytes(have)} available")


#: the number of axes of a batched input; PyTorch also takes one sample without the batch axis
_BATCHED_NDIM = {"conv2d": 4, "conv1d": 3, "max_pool2d": 4, "avg_pool2d": 4}


def _unbatched(op: str, x: Any) -> bool:
    """``x`` is one sample without its batch axis (``(C, H, W)``, ``(C, L)``), as PyTorch takes it."""
    return isinstance(x, np.ndarray) and x.ndim == _BATCHED_NDIM[op] - 1


def run_forward(op: str, impl: Any, inputs: tuple[Any, ...], hyper: dict[str, Any]) -> np.ndarray:
    if _unbatched(op, inputs[0]):  # one sample: run it as a batch of one, and hand back the sample
        return run_forward(op, impl, (inputs[0][None], *inputs[1:]), hyper)[0]
    spec = get_op(op)
    p = spec.params_from_arrays(*inputs, **hyper)
    dtype = inputs[0].dtype
    _fits(p, dtype, hyper)
    inst = _resolve(op, impl)
    if inst is None:
        return spec.reference_forward(p, *inputs).astype(dtype)
    _ready(inst, p, dtype.name, "forward")
    native = inst.prepare(*inputs)
    out = inst.forward(p, *native)
    inst.sync()
    return inst.to_numpy(out)


def run_backward(op: str, impl: Any, dy: Any, inputs: tuple[Any, ...], hyper: dict[str, Any],
                 bias: bool = True) -> tuple[np.ndarray | None, ...]:
    if _unbatched(op, inputs[0]) and isinstance(dy, np.ndarray) and dy.ndim == inputs[0].ndim:
        grads = run_backward(op, impl, dy[None], (inputs[0][None], *inputs[1:]), hyper, bias)
        return (grads[0][0], *grads[1:])
    spec = get_op(op)
    p = spec.params_from_arrays(*inputs, **hyper)
    if hasattr(p, "bias") and p.bias != bias:
        p = type(p)(**{**p.asdict(), "bias": bias})
    dtype = inputs[0].dtype
    _fits(p, dtype, hyper)
    expect = p.shapes()["dy"]
    if not isinstance(dy, np.ndarray):
        raise TypeError(f"dy must be a numpy.ndarray, got {type(dy).__name__}")
    if dy.dtype != dtype:
        raise TypeError(f"dy must have the dtype of x ({dtype}), got {dy.dtype}")
    if dy.shape != expect:
        raise ParamError(f"dy must have the output's shape {expect}, got {dy.shape}")
    bwd = (dy, *[a for a, n in zip(inputs, spec.forward_inputs) if n in spec.backward_inputs])
    inst = _resolve(op, impl)
    if inst is None:
        return tuple(None if g is None else g.astype(dtype) for g in spec.reference_backward(p, *bwd))
    _ready(inst, p, dtype.name, "backward")
    native = inst.prepare(*bwd)
    grads = inst.backward(p, *native)
    inst.sync()
    return tuple(None if g is None else inst.to_numpy(g) for g in grads)
