"""The random tier's error bounds: one error model per algorithm family.

A bound is an array broadcastable to the result: the largest error an implementation of that
family may make on each element, given the inputs. The reported ``err_ratio`` is
``max(|got - expected| / bound)``: below 1 passes. :data:`BOUNDS` maps ``ImplInfo.algorithm`` to
its bound function, so a new algorithm family is one entry.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from convbench.ops import OpParams, get_op

__all__ = ["BOUNDS", "register_bound", "magnitudes", "bound", "unit_roundoff", "err_ratio", "C_DIRECT",
           "C_FFT", "describe", "C_WINOGRAD"]

# Direct summation of L products satisfies |err| <= gamma_L * sum|x_i w_i| with
# gamma_L = L*u/(1 - L*u) (Higham, Accuracy and Stability, 3.1); the cast of the result to the
# dtype adds one more u. C_DIRECT = 2 covers both with margin; measured ratios of correct float32
# code stay below ~0.05 because rounding errors cancel, while a float16 accumulator (u 8192x
# larger) lands far above 1 for every accumulation length the suites use.
C_DIRECT = 2.0
# FFT: errors grow with log2 of the transform size, spread over every output (normwise).
C_FFT = 8.0
# Winograd: the input/output transforms amplify rounding by a constant of the tile size, and
# cuDNN may round float32 inputs to TF32 (10-bit mantissa) first: normwise, with that input rounding.
C_WINOGRAD = 16.0
_TF32_U = 2.0**-11


def unit_roundoff(dtype: str | np.dtype) -> float:
    """u = eps/2 of ``dtype`` (float32: 2**-24)."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def magnitudes(op: str, p: OpParams, inputs: dict[str, np.ndarray], direction: str) -> np.ndarray:
    """The operator applied to absolute values, in float64: ``conv(|x|, |w|) + |b|`` and the like.

    Every term of the sum behind an element is bounded by this, so it scales every bound.
    """
    spec = get_op(op)
    if hasattr(spec, "magnitudes"):  # an operator whose bound is not the op of |inputs| (max pooling)
        return spec.magnitudes(p, inputs, direction)
    a = {k: np.abs(np.asarray(v, np.float64)) for k, v in inputs.items() if v is not None}
    if direction == "forward":
        return spec.reference_forward(p, *[a.get(k) for k in spec.forward_inputs])
    grads = spec.reference_backward(p, *[a.get(k) for k in spec.backward_inputs])
    return grads[spec.grads.index(direction)]


def _direct(p: OpParams, direction: str, dtype: str, mag: np.ndarray) -> np.ndarray:
    u = unit_roundoff(dtype)
    return C_DIRECT * u * max(p.accumulation_length(direction), 1) * mag


def _fft(p: OpParams, direction: str, dtype: str, mag: np.ndarray) -> np.ndarray:
    u = unit_roundoff(dtype)
    shp = p.shapes()
    size = int(np.prod(shp["x"][2:])) if "x" in shp else mag.size
    growth = p.accumulation_length(direction) + math.log2(max(size, 2))
    return np.full_like(mag, C_FFT * u * growth * float(mag.max(initial=0.0)))


def _winograd(p: OpParams, direction: str, dtype: str, mag: np.ndarray) -> np.ndarray:
    u = unit_roundoff(dtype)
    u_in = max(u, _TF32_U) if dtype == "float32" else u
    growth = u_in + u * p.accumulation_length(direction)
    return np.full_like(mag, C_WINOGRAD * growth * float(mag.max(initial=0.0)))


BoundFn = Callable[[OpParams, str, str, np.ndarray], np.ndarray]

#: algorithm family -> bound(p, direction, dtype, magnitudes) -> elementwise bound
BOUNDS: dict[str, BoundFn] = {"direct": _direct, "fft": _fft, "winograd": _winograd}


def register_bound(algorithm: str, fn: BoundFn) -> None:
    """Add or replace the error model of an algorithm family (``ImplInfo.algorithm``)."""
    BOUNDS[algorithm] = fn


def bound(algorithm: str, op: str, p: OpParams, direction: str, dtype: str,
          inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Elementwise error bound of ``direction`` for an implementation of family ``algorithm``."""
    try:
        fn = BOUNDS[algorithm]
    except KeyError:
        raise ValueError(f"no error model for algorithm {algorithm!r}; known: {', '.join(sorted(BOUNDS))}") from None
    return fn(p, direction, dtype, magnitudes(op, p, inputs, direction))


def err_ratio(err: np.ndarray, bnd: np.ndarray) -> np.ndarray:
    """``err / bound`` elementwise: 0 where both are 0, inf where only the bound is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = err / bnd
    r = np.where(err == 0, 0.0, r)
    return np.where(np.isnan(err), np.inf, r)


def describe(algorithm: str) -> str:
    """One line on the error model (for messages)."""
    return {"direct": f"|err| <= {C_DIRECT:g}*u*L*conv(|x|,|w|) elementwise",
            "fft": f"|err| <= {C_FFT:g}*u*(L+log2 HW)*max conv(|x|,|w|) normwise",
            "winograd": f"|err| <= {C_WINOGRAD:g}*(u_in+u*L)*max conv(|x|,|w|) normwise"}.get(algorithm, algorithm)
