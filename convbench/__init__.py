"""convbench: verify and benchmark convolution and pooling implementations, side by side.

>>> import numpy as np, convbench
>>> x = np.ones((1, 1, 4, 4), np.float32); w = np.ones((1, 1, 3, 3), np.float32)
>>> convbench.conv2d(x, w, padding=1, impl="reference")[0, 0, 0, 0]
4.0
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convbench._api import UnsupportedError, run_backward, run_forward
from convbench._errors import ParamError
from convbench.adapt.public import adapt
from convbench.protocol import register
from convbench.registry import implementations, load_impl
from convbench.verify import check_impl, parametrize_with_checks

__all__ = [
    "conv2d", "conv2d_backward", "conv1d", "conv1d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "implementations", "load_impl", "check_impl", "adapt", "parametrize_with_checks", "register",
    "ParamError", "UnsupportedError",
]
__version__ = "0.1.0"


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, impl: Any = "reference") -> np.ndarray:
    """2-D cross-correlation with PyTorch's semantics.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (O, C // groups, kh, kw)
    b : ndarray, shape (O,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), 'same' (stride 1 only) or 'valid'
    groups : int
    impl : str or object
        ``'reference'`` (float64 oracle), a registered name or a spec (``file.py:OBJ``).

    Returns
    -------
    ndarray, shape (N, O, OH, OW), dtype of ``x``

    Raises
    ------
    ParamError
        An invalid argument, named with its value; raised before any implementation runs.
    TypeError
        A non-floating dtype.
    """
    return run_forward("conv2d", impl, (x, w, b),
                       dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


def conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, bias: bool = True, stride: Any = 1,
                    padding: Any = 0, dilation: Any = 1, groups: int = 1,
                    impl: Any = "reference") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d`: ``(grad_input, grad_weight, grad_bias)``; ``grad_bias`` is None without bias."""
    return run_backward("conv2d", impl, dy, (x, w, None),
                        dict(stride=stride, padding=padding, dilation=dilation, groups=groups), bias=bias)  # type: ignore[return-value]


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: int = 1, padding: Any = 0,
           dilation: int = 1, groups: int = 1, impl: Any = "reference") -> np.ndarray:
    """1-D cross-correlation with PyTorch's semantics.

    Parameters
    ----------
    x : ndarray, shape (N, C, L)
    w : ndarray, shape (O, C // groups, k)
    b : ndarray, shape (O,), optional
    stride, dilation : int
    padding : int, 'same' (stride 1 only) or 'valid'
    groups : int
    impl : str or object
        ``'reference'`` (float64 oracle), a registered name or a spec (``file.py:OBJ``).

    Returns
    -------
    ndarray, shape (N, O, OL), dtype of ``x``

    Raises
    ------
    ParamError
        An invalid argument, named with its value; raised before any implementation runs.
    TypeError
        A non-floating dtype.
    """
    return run_forward("conv1d", impl, (x, w, b),
                       dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


def conv1d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, bias: bool = True, stride: int = 1,
                    padding: Any = 0, dilation: int = 1, groups: int = 1,
                    impl: Any = "reference") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv1d`: ``(grad_input, grad_weight, grad_bias)``; ``grad_bias`` is None without bias."""
    return run_backward("conv1d", impl, dy, (x, w, None),
                        dict(stride=stride, padding=padding, dilation=dilation, groups=groups), bias=bias)  # type: ignore[return-value]


def max_pool2d(x: np.ndarray, kernel_size: Any, *, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, impl: Any = "reference") -> np.ndarray:
    """2-D max pooling with PyTorch's semantics (padding never wins a window).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most ``kernel_size // 2`` per axis (PyTorch's rule).
    dilation : int or (int, int)
    ceil_mode : bool
        Round the output size up; a last window that would start past the input and its left
        padding is dropped (PyTorch's rule).
    impl : str or object
        ``'reference'`` (float64 oracle), a registered name or a spec (``file.py:OBJ``).

    Returns
    -------
    ndarray, shape (N, C, OH, OW), dtype of ``x``

    Raises
    ------
    ParamError
        An invalid argument, named with its value; raised before any implementation runs.
    TypeError
        A non-floating dtype.
    """
    return run_forward("max_pool2d", impl, (x,), dict(kernel_size=kernel_size, stride=stride, padding=padding,
                                                      dilation=dilation, ceil_mode=ceil_mode))


def max_pool2d_backward(dy: np.ndarray, x: np.ndarray, kernel_size: Any, *, stride: Any = None,
                        padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False,
                        impl: Any = "reference") -> tuple[np.ndarray]:
    """Gradient of :func:`max_pool2d`: ``(grad_input,)``.

    Each window's gradient goes to its first maximum in row-major window order (to its NaN when it
    holds one), as PyTorch does.
    """
    return run_backward("max_pool2d", impl, dy, (x,), dict(kernel_size=kernel_size, stride=stride,  # type: ignore[return-value]
                                                           padding=padding, dilation=dilation, ceil_mode=ceil_mode))


def avg_pool2d(x: np.ndarray, kernel_size: Any, *, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None,
               impl: Any = "reference") -> np.ndarray:
    """2-D average pooling with PyTorch's semantics.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Zero padding, at most ``kernel_size // 2`` per axis (PyTorch's rule).
    ceil_mode : bool
        Round the output size up (PyTorch's rule for the last window).
    count_include_pad : bool
        Count padding in the divisor (up to the padded edge) or only the input elements.
    divisor_override : int, optional
        A positive divisor used for every window instead.
    impl : str or object
        ``'reference'`` (float64 oracle), a registered name or a spec (``file.py:OBJ``).

    Returns
    -------
    ndarray, shape (N, C, OH, OW), dtype of ``x``

    Raises
    ------
    ParamError
        An invalid argument, named with its value; raised before any implementation runs.
    TypeError
        A non-floating dtype.
    """
    return run_forward("avg_pool2d", impl, (x,), dict(kernel_size=kernel_size, stride=stride, padding=padding,
                                                      ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                                                      divisor_override=divisor_override))


def avg_pool2d_backward(dy: np.ndarray, x: np.ndarray, kernel_size: Any, *, stride: Any = None,
                        padding: Any = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None, impl: Any = "reference") -> tuple[np.ndarray]:
    """Gradient of :func:`avg_pool2d`: ``(grad_input,)``. ``x`` gives the input's shape and dtype."""
    return run_backward("avg_pool2d", impl, dy, (x,), dict(  # type: ignore[return-value]
        kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad, divisor_override=divisor_override))
