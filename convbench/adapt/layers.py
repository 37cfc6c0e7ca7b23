"""Layer classes (seed-style, TinyTorch-style) as implementations of any operator.

A layer is built afresh per call from the case: its constructor gets the hyperparameters it takes
(by name, or positionally in the seeds' order), a conv layer's weights are set from the case, then
``forward(x)`` and ``backward(dout)`` run as a training loop would call them. What the constructor
cannot express (no ``stride`` argument, ints only) makes the cases needing it unsupported.
"""
from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np

from convbench.adapt.kinds import LayerKind, features, infer_op, layer_kind
from convbench.adapt.params import omit_default
from convbench.adapt.source import pair_keys, pair_only, reads_data, reads_pairs, source
from convbench.ops import OpParams
from convbench.protocol import Implementation

__all__ = ["DataHolder", "LayerImpl", "adapt_layer", "ctor_map", "ctor_values"]

_WEIGHT = ("W", "weight", "weights", "w", "kernel", "filters", "K")
_BIAS = ("b", "bias", "biases", "B")
_GRAD_W = ("dW", "dw", "grad_W", "grad_w", "dweight", "dweights", "grad_weight", "weight_grad", "dK")
_GRAD_B = ("db", "dB", "grad_b", "grad_B", "dbias", "grad_bias", "bias_grad")


class DataHolder:
    """What a TinyTorch-style layer expects: an object holding the array in ``.data``."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.data, dtype=dtype)


def ctor_map(cls: type, kind: LayerKind) -> dict[str, str]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the constructor of {cls.__name__}: {exc}") from None
    params = [q for q in list(sig.parameters.values())[1:] if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    mapping: dict[str, str] = {}
    for q in params:
        for key, aliases in kind.ctor.items():
            if key not in mapping and q.name in aliases:
                mapping[key] = q.name
                break
    named = set(mapping.values())
    rest = [k for k in kind.order if k not in mapping]
    for q in params:
        if q.name in named or q.default is not q.empty:
            continue
        if not rest:
            raise TypeError(f"{cls.__name__}{sig}: cannot tell what required argument {q.name!r} is")
        mapping[rest.pop(0)] = q.name
    for need in kind.required:
        if need not in mapping and not (need in kind.instead and all(k in mapping for k in kind.instead[need])):
            named_op = infer_op(cls)
            hint = (f"; its name says {named_op}: pass op={named_op!r} (command line: --op {named_op})"
                    if named_op != kind.op else "")
            if not hint and "pool" in cls.__name__.lower() and not kind.op.endswith("pool2d"):
                hint = ("; its name says pooling: pass op='max_pool2d' or op='avg_pool2d' (command line: "
                        "--op max_pool2d or --op avg_pool2d)")
            raise TypeError(f"{cls.__name__}{sig} does not look like a {kind.op} layer constructor: "
                            f"no {need}{hint}")
    return mapping


def _plain(a: Any) -> Any:
    """The array inside a ``.data`` holder (a Tensor, a Parameter), or ``a`` itself."""
    if a is None or isinstance(a, np.ndarray):
        return a
    inner = getattr(a, "data", None)
    if inner is not None and not isinstance(inner, (memoryview, bytes)):
        return _plain(inner) if inner is not a else inner
    return a


def _fit(value: np.ndarray, like: Any, where: str) -> np.ndarray:
    """``value`` in the shape of the layer's own array (only if they differ by length-1 axes)."""
    shape = np.shape(like) if like is not None else value.shape
    if tuple(shape) == value.shape:
        return value
    if int(np.prod(shape)) == value.size and tuple(s for s in shape if s != 1) == tuple(s for s in value.shape if s != 1):
        return value.reshape(shape)
    raise ValueError(f"{where} has shape {tuple(shape)}, but the case needs {value.shape} "
                     "(PyTorch layout: weight (out_channels, in_channels/groups, *kernel), bias (out_channels,))")


def _find(obj: Any, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in vars(obj) or isinstance(getattr(type(obj), n, None), property)), None)


def ctor_values(p: OpParams, op: str, arg: Any, torch: bool) -> dict[str, Any]:
    """Constructor values for every key of the op's kind; ``arg(key, (h, w))`` turns a pair into
    what the layer takes."""
    if op == "conv2d":
        pt, _, pl, _ = p.pads
        return {"in_channels": p.c, "out_channels": p.o, "kernel_size": arg("kernel_size", (p.kh, p.kw)),
                "stride": arg("stride", p.stride), "padding": p.padding if torch else arg("padding", (pt, pl)),
                "dilation": arg("dilation", p.dilation), "groups": p.groups, "bias": p.bias}
    if op == "conv1d":
        return {"in_channels": p.c, "out_channels": p.o, "kernel_size": p.k, "stride": p.stride,
                "padding": p.padding if torch else p.pads[0], "dilation": p.dilation, "groups": p.groups,
                "bias": p.bias}
    v = {"kernel_size": arg("kernel_size", (p.kh, p.kw)), "stride": arg("stride", p.stride),
         "padding": arg("padding", p.padding), "ceil_mode": p.ceil_mode, "kernel_h": p.kh, "kernel_w": p.kw}
    if op == "max_pool2d":
        v["dilation"] = arg("dilation", p.dilation)
    else:
        v.update(count_include_pad=p.count_include_pad, divisor_override=p.divisor_override)
    return v


class LayerImpl(Implementation):
    """A layer class: built per call from the case (weights set from ``w``/``b`` for a conv), then
    ``forward``/``backward``.

    Parameters
    ----------
    cls : type
        The layer class.
    ctor : dict
        Constructor argument name for each hyperparameter it takes (``in_channels``, ``kernel_size``,
        ``stride``, ``padding``, ...).
    pairs : bool
        The constructor takes (h, w) pairs (else only ints: non-square cases are unsupported).
    op : str
        The operator it implements.
    pair_only : set of str
        The hyperparameters it takes as pairs only (:func:`pair_only`): given as pairs always.
    pair_keys : set of str, optional
        The hyperparameters it takes as pairs where the two values differ (default: all of them
        when ``pairs``); the others as one int, so a case needing two values is unsupported.
    defaults : dict, optional
        The constructor's defaults (key -> value): a case at PyTorch's default leaves out an
        argument whose default means the same, so a wrong default is exercised.
    """

    backward_runs_forward = True  # backward(dout) needs the state forward(x) left in the layer

    def __init__(self, cls: type, ctor: dict[str, str], pairs: bool, op: str = "conv2d",
                 pair_only: frozenset[str] = frozenset(), pair_keys: frozenset[str] | None = None,
                 defaults: dict[str, Any] | None = None) -> None:
        self.cls, self.ctor, self.pairs, self.op, self.pair_only = cls, ctor, pairs, op, pair_only
        self.pair_keys = frozenset(ctor) if pair_keys is None and pairs else (pair_keys or frozenset())
        self.defaults = defaults or {}
        self.kind = layer_kind(op)
        self.wrap_in = reads_data(cls.forward)
        self.wrap_dout = hasattr(cls, "backward") and reads_data(cls.backward)
        self.tensor_cls = getattr(inspect.getmodule(cls), "Tensor", None)

    def _arg(self, key: str, v: tuple[int, int]) -> Any:
        return v if key in self.pair_only or (key in self.pair_keys and v[0] != v[1]) else v[0]

    def unsupported(self, p: OpParams, dtype: str, direction: str) -> str | None:
        why = super().unsupported(p, dtype, direction)
        if why is not None or self.op == "conv1d" or not self.pair_keys:
            return why  # a layer that takes no pair at all: told by the features (rectangular)
        for key, v in ctor_values(p, self.op, lambda k, pair: pair, torch=False).items():
            if (key in self.ctor and isinstance(v, tuple) and len(set(v)) > 1
                    and key not in self.pair_keys | self.pair_only):
                return (f"{self.cls.__name__} takes {key} as an int (its source reads "
                        f"{' and '.join(sorted(self.pair_keys))} as a pair, {key} never), the case needs {key}={v!r}")
        return None

    def _build(self, p: OpParams, w: np.ndarray | None = None, b: np.ndarray | None = None) -> Any:
        values = ctor_values(p, self.op, self._arg, torch=False)
        kernel = (p.kh, p.kw) if self.op.endswith("pool2d") else ()
        plain = ctor_values(p, self.op, lambda k, pair: pair, torch=False)
        # a key it takes as pairs only is always given: its own int default is never used
        omitted = {key for key in self.defaults
                   if key in self.ctor and key not in self.pair_only and omit_default(self.op, key, plain.get(key), self.defaults[key], kernel)}
        if "weight" in self.ctor:  # a constructor that takes the arrays themselves
            values["weight"] = w.copy()
        if "bias_array" in self.ctor:
            values["bias_array"] = b.copy() if b is not None else np.zeros(p.o, w.dtype)
        layer = self.cls(**{arg: values[key] for key, arg in self.ctor.items() if key not in omitted})
        if not self.kind.has_weights:
            return layer
        wname = _find(layer, _WEIGHT)
        if wname is None:
            raise AttributeError(f"{self.cls.__name__} has no weight attribute (looked for {', '.join(_WEIGHT)})")
        self._assign(layer, wname, w.copy())
        bname = _find(layer, _BIAS)
        if bname is not None and getattr(layer, bname) is not None and not isinstance(getattr(layer, bname), bool):
            self._assign(layer, bname, b.copy() if b is not None else np.zeros(p.o, w.dtype))
        elif b is not None:
            raise AttributeError(f"{self.cls.__name__} has no bias attribute (looked for {', '.join(_BIAS)})")
        return layer

    @staticmethod
    def _assign(layer: Any, name: str, value: np.ndarray) -> None:
        cur = getattr(layer, name)
        if cur is not None and not isinstance(cur, np.ndarray) and hasattr(cur, "data"):
            cur.data = _fit(value, _plain(cur), f"{type(layer).__name__}.{name}.data")
        else:
            setattr(layer, name, _fit(value, cur, f"{type(layer).__name__}.{name}"))

    def _wrap(self, a: np.ndarray) -> Any:
        if self.tensor_cls is not None and isinstance(self.tensor_cls, type):
            try:
                t = self.tensor_cls(a)
                if _plain(t) is not None:
                    return t
            except Exception:  # a Tensor class that does not take an array: fall back
                pass
        return DataHolder(a)

    def forward(self, p: OpParams, x: np.ndarray, *wb: np.ndarray | None) -> Any:
        layer = self._build(p, *wb)
        return _plain(layer.forward(self._wrap(x) if self.wrap_in else x))

    def backward(self, p: OpParams, dy: np.ndarray, x: np.ndarray, *w: np.ndarray) -> tuple[Any, ...]:
        if self.kind.has_weights:
            # the bias does not change the gradients: zeros stand in for it
            layer = self._build(p, w[0], None if not p.bias else np.zeros(p.o, w[0].dtype))
        else:
            layer = self._build(p)
        layer.forward(self._wrap(x) if self.wrap_in else x)
        dx = _plain(layer.backward(self._wrap(dy) if self.wrap_dout else dy))
        if not self.kind.has_weights:
            return (dx,)
        dw = self._grad(layer, _GRAD_W, _WEIGHT)
        db = self._grad(layer, _GRAD_B, _BIAS) if p.bias else None
        shp = p.shapes()
        dw = None if dw is None else _fit(np.asarray(dw), np.empty(shp["grad_weight"]), "the weight gradient")
        if db is not None:
            db = _fit(np.asarray(db), np.empty(shp["grad_bias"]), "the bias gradient")
        return dx, dw, db

    def _grad(self, layer: Any, grad_names: tuple[str, ...], param_names: tuple[str, ...]) -> Any:
        for n in grad_names:
            if hasattr(layer, n) and getattr(layer, n) is not None:
                return _plain(getattr(layer, n))
        for n in param_names:
            g = getattr(getattr(layer, n, None), "grad", None)
            if g is not None:
                return _plain(g)
        raise AttributeError(f"{self.cls.__name__}.backward left no gradient in any of "
                             f"{', '.join(grad_names)} or {param_names[0]}.grad")


def adapt_layer(cls: type, op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`LayerImpl` for a layer class of ``op``, with the features its constructor can express."""
    kind = layer_kind(op)
    ctor = ctor_map(cls, kind)
    # conv1d has one spatial axis: nothing is rectangular
    only = frozenset() if op == "conv1d" else pair_only(
        cls.__init__, {k: ctor[k] for k in ("kernel_size", "stride", "padding", "dilation") if k in ctor}, source(cls))
    names = [ctor[k] for k in ("kernel_size", "stride", "padding", "dilation") if k in ctor]
    src = source(cls)
    pairs = op != "conv1d" and (bool(only) or reads_pairs(src, names))
    # decided per parameter where the source tells: kernel_size as an int or a pair, stride as an int
    pairs_of = pair_keys(src, {k: ctor[k] for k in ("kernel_size", "stride", "padding", "dilation") if k in ctor}, only)
    try:
        sig = inspect.signature(cls.__init__).parameters
        defaults = {key: sig[arg].default for key, arg in ctor.items() if arg in sig}
    except (TypeError, ValueError):
        defaults = {}
    directions = {"forward", "backward"} if callable(getattr(cls, "backward", None)) else {"forward"}
    feats = features(kind, ctor, pairs)
    if kind.has_weights and not {"bias", "bias_array"} & set(ctor) and not _may_have_bias(cls):
        feats -= {"bias"}  # a conv without bias (one followed by batch norm): the no-bias cases only
    return LayerImpl(cls, ctor, pairs, op, only, pairs_of if pairs else frozenset(), defaults), {
        "op": op, "backend": "numpy", "directions": directions, "features": feats,
        "description": f"layer class {cls.__module__}.{cls.__qualname__}"}


def _may_have_bias(cls: type) -> bool:
    """False only where the class (with its bases) never sets a bias attribute (``self.b = ...``,
    ``setattr(self, "bias", ...)``, a class attribute or property) in a source that can be read."""
    mro = [k for k in cls.__mro__ if k is not object]
    if any(n in vars(k) for k in mro for n in _BIAS):
        return True
    sources = [source(k) for k in mro]
    if not all(sources):  # a class whose source cannot be read may set one
        return True
    src = "".join(sources)
    names = "|".join(_BIAS)
    # self.b = ..., self.b: T = ..., or a target among others (self.W, self.b = W, b)
    return re.search(rf"\bself\.({names})\s*(,|:[^=]*=|=(?!=))|setattr\(\s*self\s*,\s*['\"]({names})['\"]",
                     src) is not None
