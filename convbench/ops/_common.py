"""Argument normalisation shared by the operator modules."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from convbench._errors import ParamError

FLOAT_DTYPES = ("float32", "float64")


def pair(name: str, value: Any, *, minimum: int | None = None, what: str = "") -> tuple[int, int]:
    """``value`` as an (h, w) pair of ints (a 1-tuple stands for both axes, as PyTorch takes it);
    ``ParamError`` naming ``name`` otherwise."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ParamError(f"{name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(out) < minimum:
        raise ParamError(f"{name} must be {what or f'>= {minimum}'}, got {value!r}")
    return out


def single(name: str, value: Any, *, minimum: int | None = None, what: str = "") -> int:
    """``value`` as one int (a 1-tuple is accepted); ``ParamError`` naming ``name`` otherwise."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ParamError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ParamError(f"{name} must be {what or f'>= {minimum}'}, got {value!r}")
    return int(value)


def float_dtype(name: str, arr: Any) -> np.dtype:
    """The dtype of ``arr``; ``TypeError`` naming ``name`` unless float32 or float64."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype.name not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype (float32 or float64), got {arr.dtype}")
    return arr.dtype


def ndim(name: str, arr: np.ndarray, expected: int, layout: str) -> None:
    if arr.ndim != expected:
        raise ParamError(
            f"{name} must be {expected}-dimensional ({layout}), got {arr.ndim} dimensions with shape {arr.shape}"
        )


def out_size(size: int, k: int, s: int, d: int, pad_total: int, ceil_mode: bool = False) -> int:
    """Output length of a sliding window (PyTorch's formula)."""
    eff = d * (k - 1) + 1
    span = size + pad_total - eff
    if ceil_mode:
        return -(-span // s) + 1
    return span // s + 1


def same_pads(k: int, d: int) -> tuple[int, int]:
    """PyTorch's 'same' padding: total d*(k-1), the extra element on the far side."""
    total = d * (k - 1)
    return total // 2, total - total // 2
