"""Turn the objects people write into the implementation protocol.

``adapt(obj, op)`` returns ``(implementation, info)`` where ``info`` holds the keyword arguments of
:class:`convbench.protocol.ImplInfo` that the adapter could infer (op, backend, directions,
features). The parameters an object lacks tell which cases it cannot take: those are
*unsupported*, never failed. One module per form: plain functions (:mod:`.functions`), layer
classes of every operator (:mod:`.layers`), CS231n/deeplearning.ai forward/backward functions that
pass a cache (:mod:`.cache`), ``torch.nn.Module`` layers (:mod:`.torch_modules`); what they share:
reading an object's source (:mod:`.source`), the operators' layer kinds (:mod:`.kinds`) and torch
tensor arguments (:mod:`.tensors`).
"""
from __future__ import annotations

import inspect
from typing import Any

from convbench.adapt.cache import CacheImpl, TorchCacheImpl, adapt_cache, dict_param, static_forward
from convbench.adapt.functions import FunctionImpl, TorchFunctionImpl, adapt_function
from convbench.adapt.kinds import infer_op
from convbench.adapt.layers import DataHolder, LayerImpl, adapt_layer
from convbench.adapt.tensors import is_torch_module
from convbench.adapt.torch_modules import TorchModuleImpl, adapt_torch_module
from convbench.protocol import Implementation

__all__ = ["adapt", "infer_op", "FunctionImpl", "TorchFunctionImpl", "CacheImpl", "TorchCacheImpl", "LayerImpl",
           "TorchModuleImpl", "DataHolder", "adapt_cache", "adapt_function", "adapt_layer", "adapt_torch_module"]


def adapt(obj: Any, op: str | None = None) -> tuple[Implementation, dict[str, Any]]:
    """An implementation and its inferred metadata for ``obj``.

    Parameters
    ----------
    obj : object
        An :class:`~convbench.protocol.Implementation`; a function ``f(x, w, b=None, stride=...,
        padding=..., dilation=..., groups=...)`` (conv2d, conv1d), on arrays or, where its source
        is written against them, torch tensors (backward then through autograd); a layer class or
        instance with
        ``forward(x)`` and optionally ``backward(dout) -> dx`` (conv: weights in ``W``/``b`` or
        ``weight``/``bias``, gradients left in ``dW``/``db``; pooling: ``MaxPool2D(pool_size,
        stride)``, ``AveragePool2D(...)``); a CS231n-style forward function ``conv_forward(x, w, b,
        conv_param) -> (out, cache)`` / ``max_pool_forward(x, pool_param)`` whose backward
        ``(dout, cache)`` has the same name with ``backward`` (or a class with both as static
        methods; the deeplearning.ai assignments' channels-last ``conv_forward(A_prev, W, b,
        hparameters)``); a ``torch.nn.Module`` class or instance.
    op : str, optional
        The operator; None infers it from the object's name (:func:`infer_op`).

    Raises
    ------
    TypeError
        Nothing fits ``obj``, or its constructor does not fit ``op``.
    """
    if isinstance(obj, Implementation):  # convbench.adapt's result carries what it read
        info = dict(getattr(obj, "adapted_info", None) or {"op": op or infer_op(obj)})
        if op is not None and info["op"] != op:
            raise TypeError(f"{obj!r} was adapted as a {info['op']} implementation, not {op}")
        return obj, info
    op = op or infer_op(obj)
    if is_torch_module(obj):
        return adapt_torch_module(obj, op)
    if static_forward(obj) is not None or (inspect.isfunction(obj) and dict_param(obj)):
        return adapt_cache(obj, op)
    if isinstance(obj, type) and callable(getattr(obj, "forward", None)):
        return adapt_layer(obj, op)
    if not isinstance(obj, type) and not inspect.isroutine(obj) and callable(getattr(obj, "forward", None)):
        return adapt_layer(type(obj), op)  # a layer instance: its class, built afresh per case
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or (callable(obj) and not isinstance(obj, type)):
        return adapt_function(obj, op)
    raise TypeError(f"cannot adapt {obj!r} to a {op} implementation: expected an implementation, "
                    "a function f(x, w, b=None, stride=..., padding=...), a layer class or a torch module")
