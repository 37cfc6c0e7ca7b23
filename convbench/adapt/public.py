"""``convbench.adapt``: the user's word on a form convbench cannot read from the source.

A function whose arrays are channels last, whose weight is TensorFlow's ``HWIO``, or whose
parameters go by names no alias matches, is adapted in a small shim file and named with
``--impl``::

    import convbench
    from my_layers import conv_nhwc
    conv = convbench.adapt(conv_nhwc, layout="NHWC", weight_layout="HWIO", names={"pad_size": "padding"})

``convbench check --impl shim.py:conv`` then checks it like any other implementation.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from convbench.adapt.functions import CANONICAL, adapt_function
from convbench.adapt.kinds import infer_op
from convbench.protocol import Implementation

__all__ = ["adapt"]


def _check_layout(what: str, given: str | None, canonical: str, droppable: str) -> None:
    if given is None:
        return
    if (not isinstance(given, str) or sorted(given) != sorted(ch for ch in canonical if ch in given)
            or any(ch not in given for ch in canonical if ch not in droppable)):
        raise TypeError(f"{what}={given!r}: expected the letters of {canonical!r} in the function's order "
                        f"({', '.join(droppable)} may be left out: one sample, one channel)")


def adapt(fn: Callable[..., Any], op: str | None = None, *, layout: str | None = None,
          weight_layout: str | None = None, names: dict[str, str] | None = None) -> Implementation:
    """An implementation of ``fn`` built from what the caller says about it.

    Parameters
    ----------
    fn : callable
        A function of a convolution ``f(x, w, b, ...)`` or a pooling ``f(x, kernel_size, ...)``.
    op : str, optional
        The operator (default: from the function's name, else ``conv2d``).
    layout : str, optional
        The input's axes as ``fn`` takes them: ``NCHW`` (PyTorch's), ``NHWC`` (channels last),
        ``CHW`` (one sample), ``HW`` (one channel, a 2-D convolution of an image); for conv1d ``NCL``,
        ``NLC``, ``CL``. The output is read back in the same layout. Default: read from the source.
    weight_layout : str, optional
        The weight's axes: ``OIHW`` (PyTorch's), ``HWIO`` (TensorFlow's), ``OHWI``; ``HW`` for a
        single-channel kernel.
    names : dict, optional
        ``fn``'s argument name -> what it is: ``stride``, ``padding``, ``dilation``, ``groups``,
        ``kernel_size``, ``ceil_mode``, ``count_include_pad``, ``divisor_override``, or ``x``, ``w``,
        ``b`` for the arrays.

    Returns
    -------
    Implementation
        An object ``--impl file.py:NAME`` and ``check_impl`` take.

    Raises
    ------
    TypeError
        ``fn`` is not a function, a layout that is not a permutation of the operator's, a name
        that names no parameter, or a required parameter with no counterpart.

    Examples
    --------
    >>> conv = convbench.adapt(conv_nhwc, layout="NHWC", weight_layout="HWIO",  # doctest: +SKIP
    ...                        names={"pad_size": "padding"})
    """
    if not (inspect.isfunction(fn) or inspect.isbuiltin(fn) or inspect.ismethod(fn)):
        raise TypeError(f"convbench.adapt takes a function; got {fn!r} (layer classes and torch modules are "
                        "adapted as they are: name them with --impl)")
    op = op or infer_op(fn)
    if op not in CANONICAL:
        raise TypeError(f"op={op!r}: one of {', '.join(CANONICAL)}")
    canon_x, canon_w = CANONICAL[op]
    _check_layout("layout", layout, canon_x, "NC")
    if weight_layout is not None and not canon_w:
        raise TypeError(f"weight_layout={weight_layout!r}: {op} has no weight")
    _check_layout("weight_layout", weight_layout, canon_w, "OI" if layout and "C" not in layout else "")
    impl, info = adapt_function(fn, op, names=names, layout=layout, weight_layout=weight_layout)
    impl.adapted_info = info
    return impl
