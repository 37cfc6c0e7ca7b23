"""The operators' layer kinds: how a layer (or a forward function's dict of hyperparameters) of
each operator is built, and the case features what it takes can express."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LayerKind", "layer_kind", "features", "infer_op", "CONV_CTOR", "POOL_CTOR"]

CONV_CTOR = {
    "in_channels": ("in_channels", "in_ch", "c_in", "cin", "n_in", "input_channels", "in_chans", "in_planes",
                    "inplanes", "channels_in", "num_channels", "channels"),
    "out_channels": ("out_channels", "out_ch", "c_out", "cout", "n_out", "output_channels", "num_filters",
                     "n_filters", "filters", "out_planes", "planes", "channels_out"),
    "kernel_size": ("kernel_size", "kernel", "k", "ksize", "filter_size", "kernel_shape", "field_size"),
    "stride": ("stride", "strides", "s"),
    "padding": ("padding", "pad", "p", "pads"),
    "dilation": ("dilation", "dilations"),
    "groups": ("groups", "group"),
    "bias": ("bias", "use_bias", "has_bias", "with_bias"),
    # the arrays themselves, where the constructor takes them (Convolution(W, b, stride, pad))
    "weight": ("W", "weight", "weights", "w"),
    "bias_array": ("b", "B", "biases"),
}
POOL_CTOR = {
    "kernel_size": ("kernel_size", "pool_size", "pool", "size", "kernel", "k", "ksize", "window", "window_size",
                    "pool_shape", "filter_size", "field_size"),
    "stride": ("stride", "strides", "s"),
    "padding": ("padding", "pad", "p", "pads"),
    "dilation": ("dilation", "dilations"),
    "ceil_mode": ("ceil_mode", "ceil"),
    "count_include_pad": ("count_include_pad", "include_pad"),
    "divisor_override": ("divisor_override",),
    # one size per axis (Pooling(pool_h, pool_w, stride, pad))
    "kernel_h": ("pool_h", "pool_height", "kernel_h", "kh"),
    "kernel_w": ("pool_w", "pool_width", "kernel_w", "kw"),
}


@dataclass(frozen=True)
class LayerKind:
    """How one operator's layers are built: constructor names, positional order, what is required."""

    op: str
    ctor: dict[str, tuple[str, ...]]
    order: tuple[str, ...]
    required: tuple[str, ...]
    has_weights: bool
    #: ctor key -> the case features it makes supported
    enables: dict[str, frozenset[str]]
    #: features every layer of this kind supports
    base: frozenset[str]
    #: required key -> the keys that stand in for it (the weight array for the channels and kernel)
    instead: dict[str, tuple[str, ...]] = field(default_factory=dict)


_CONV_ENABLES = {"padding": frozenset({"padding", "padding_same"}), "stride": frozenset({"stride"}),
                 "dilation": frozenset({"dilation"}), "groups": frozenset({"groups"})}
_POOL_ENABLES = {"stride": frozenset({"stride", "overlapping"}), "padding": frozenset({"padding"}),
                 "ceil_mode": frozenset({"ceil_mode"}), "dilation": frozenset({"dilation"}),
                 "count_include_pad": frozenset({"exclude_pad"}),
                 "divisor_override": frozenset({"divisor_override"})}
_CONV_ORDER = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
_KINDS = {
    op: LayerKind(op, CONV_CTOR, _CONV_ORDER, ("in_channels", "out_channels", "kernel_size"), True,
                  _CONV_ENABLES, frozenset({"bias", "no_bias", "padding_valid"}),
                  {"in_channels": ("weight",), "out_channels": ("weight",), "kernel_size": ("weight",)})
    for op in ("conv2d", "conv1d")
}
_KINDS.update({
    op: LayerKind(op, POOL_CTOR, ("kernel_size", "stride", "padding"), ("kernel_size",), False,
                  _POOL_ENABLES, frozenset(), {"kernel_size": ("kernel_h", "kernel_w")})
    for op in ("max_pool2d", "avg_pool2d")
})


def layer_kind(op: str) -> LayerKind:
    try:
        return _KINDS[op]
    except KeyError:
        raise TypeError(f"layer classes can be adapted for {', '.join(_KINDS)}; got op={op!r}") from None


def features(kind: LayerKind, ctor: dict[str, Any], pairs: bool) -> frozenset[str]:
    """The case features a layer of ``kind`` supports, given what it takes (``ctor``'s keys) and
    whether it takes ``(h, w)`` pairs."""
    f = set(kind.base)
    for key in ctor:
        f |= kind.enables.get(key, frozenset())
    if pairs:
        f.add("rectangular")
    return frozenset(f)


def infer_op(obj: Any) -> str:
    """The operator an object's name says it implements: ``max_pool2d`` for a ``MaxPool2D``,
    ``avg_pool2d`` for an ``AveragePool2D``/``AvgPool2d``, ``conv1d`` for a ``Conv1d``/``conv1d``;
    else ``conv2d``."""
    name = getattr(obj, "__name__", None) or type(obj).__name__
    low = name.lower()
    if "pool" in low:
        if "max" in low:
            return "max_pool2d"
        if "avg" in low or "average" in low or "mean" in low:
            return "avg_pool2d"
    if re.search(r"conv_?1d", low):
        return "conv1d"
    return "conv2d"
