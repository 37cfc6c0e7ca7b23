"""Turn the objects people write into the implementation protocol.

``adapt(obj, op)`` returns ``(implementation, info)`` where ``info`` holds the keyword arguments of
:class:`convbench.registry.ImplInfo` that the adapter could infer (op, backend, directions,
features). The parameters an object lacks tell which cases it cannot take: those are
*unsupported*, never failed.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import numpy as np

from convbench.ops import OpParams
from convbench.registry import Implementation

__all__ = ["adapt", "FunctionImpl", "LayerImpl", "TorchModuleImpl", "DataHolder", "adapt_layer", "adapt_torch_module"]

# keyword names a function may use for each hyperparameter, first match wins
_ALIASES = {
    "stride": ("stride", "strides", "s"),
    "padding": ("padding", "pad", "pads", "p"),
    "dilation": ("dilation", "dilations", "d"),
    "groups": ("groups", "group", "g"),
}


def _conv_padding_arg(p: Any) -> Any:
    """The padding as a function most likely takes it: an int when both sides agree."""
    pt, pb, pl, pr = p.pads
    return pt if pt == pl else (pt, pl)


def _pair_arg(v: tuple[int, int]) -> Any:
    return v[0] if v[0] == v[1] else v


class FunctionImpl(Implementation):
    """A plain forward function ``f(x, w, b=None, stride=..., padding=..., dilation=..., groups=...)``."""

    def __init__(self, fn: Callable[..., Any], kwnames: dict[str, str], takes_bias: bool) -> None:
        self.fn = fn
        self.kwnames = kwnames
        self.takes_bias = takes_bias

    def forward(self, p: OpParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> Any:
        kw: dict[str, Any] = {}
        values = {"stride": _pair_arg(p.stride), "padding": _conv_padding_arg(p),
                  "dilation": _pair_arg(p.dilation), "groups": p.groups}
        for key, argname in self.kwnames.items():
            kw[argname] = values[key]
        if self.takes_bias:
            return self.fn(x, w, b, **kw)
        return self.fn(x, w, **kw)


def _function_features(kwnames: dict[str, str], takes_bias: bool) -> frozenset[str]:
    f = {"no_bias", "rectangular"}
    if takes_bias:
        f.add("bias")
    if "stride" in kwnames:
        f.add("stride")
    if "padding" in kwnames:
        f |= {"padding", "padding_same", "padding_valid"}
    elif True:
        f.add("padding_valid")
    if "dilation" in kwnames:
        f.add("dilation")
    if "groups" in kwnames:
        f.add("groups")
    return frozenset(f)


def _adapt_function(fn: Callable[..., Any], op: str) -> tuple[Implementation, dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {fn!r}: {exc}") from None
    params = list(sig.parameters.values())
    positional = [q for q in params if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        raise TypeError(f"a conv function takes at least (x, w); {fn.__name__}{sig} does not")
    names = {q.name for q in params}
    kwnames = {}
    for key, aliases in _ALIASES.items():
        for a in aliases:
            if a in names and a not in (positional[0].name, positional[1].name):
                kwnames[key] = a
                break
    third = positional[2].name if len(positional) > 2 else None
    takes_bias = third is not None and third not in kwnames.values()
    features = _function_features(kwnames, takes_bias)
    return FunctionImpl(fn, kwnames, takes_bias), {
        "op": op, "backend": "numpy", "directions": {"forward"}, "features": features,
        "description": f"function {fn.__module__}.{fn.__qualname__}{sig}"}


def adapt(obj: Any, op: str | None = None) -> tuple[Implementation, dict[str, Any]]:
    """An implementation and its inferred metadata for ``obj``; ``TypeError`` if none fits."""
    op = op or "conv2d"
    if isinstance(obj, Implementation):
        return obj, {"op": op}
    if _is_torch_module(obj):
        return adapt_torch_module(obj, op)
    if isinstance(obj, type) and callable(getattr(obj, "forward", None)):
        return adapt_layer(obj, op)
    if not isinstance(obj, type) and not inspect.isroutine(obj) and callable(getattr(obj, "forward", None)):
        return adapt_layer(type(obj), op)  # a layer instance: its class, built afresh per case
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or (callable(obj) and not isinstance(obj, type)):
        return _adapt_function(obj, op)
    raise TypeError(f"cannot adapt {obj!r} to a {op} implementation: expected an implementation, "
                    "a function f(x, w, b=None, stride=..., padding=...), a layer class or a torch module")


def _is_torch_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return False
    cls = obj if isinstance(obj, type) else type(obj)
    return issubclass(cls, torch.nn.Module)


# --- seed-style and TinyTorch-style layer classes ------------------------------------------------

# constructor argument names people use, first match wins; unnamed required arguments are taken
# positionally in the order of _CTOR_ORDER (the seeds' Conv2D(in, out, kernel, stride, padding))
_CTOR = {
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
}
_CTOR_ORDER = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
_WEIGHT = ("W", "weight", "weights", "w", "kernel", "filters", "K")
_BIAS = ("b", "bias", "biases", "B")
_GRAD_W = ("dW", "dw", "grad_W", "grad_w", "dweight", "dweights", "grad_weight", "weight_grad", "dK")
_GRAD_B = ("db", "dB", "grad_b", "grad_B", "dbias", "grad_bias", "bias_grad")
_PAIR_SRC = re.compile(r"(kernel_size|kernel|stride|padding|pad|ksize)\s*\[\s*[01]\s*\]|_pair\(|"
                       r"isinstance\(\s*(kernel_size|kernel|stride|padding|pad|ksize)\s*,")


class DataHolder:
    """What a TinyTorch-style layer expects: an object holding the array in ``.data``."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.data, dtype=dtype)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _ctor_map(cls: type) -> dict[str, str]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the constructor of {cls.__name__}: {exc}") from None
    params = [q for q in list(sig.parameters.values())[1:] if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    mapping: dict[str, str] = {}
    for q in params:
        for key, aliases in _CTOR.items():
            if key not in mapping and q.name in aliases:
                mapping[key] = q.name
                break
    named = set(mapping.values())
    rest = [k for k in _CTOR_ORDER if k not in mapping]
    for q in params:
        if q.name in named or q.default is not q.empty:
            continue
        if not rest:
            raise TypeError(f"{cls.__name__}{sig}: cannot tell what required argument {q.name!r} is")
        mapping[rest.pop(0)] = q.name
    for need in ("in_channels", "out_channels", "kernel_size"):
        if need not in mapping:
            raise TypeError(f"{cls.__name__}{sig} does not look like a conv layer constructor: no {need}")
    return mapping


def _reads_data(method: Any) -> bool:
    """Does ``method(arg)`` read ``arg.data`` (a TinyTorch-style layer)?"""
    try:
        names = [q for q in inspect.signature(method).parameters if q != "self"]
    except (TypeError, ValueError):
        return False
    return bool(names) and re.search(rf"\b{re.escape(names[0])}\.data\b", _source(method)) is not None


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
                     "(PyTorch layout: weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,))")


def _find(obj: Any, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in vars(obj) or isinstance(getattr(type(obj), n, None), property)), None)


class LayerImpl(Implementation):
    """A layer class: built per call from the case, weights set from ``w``/``b``, then ``forward``/``backward``.

    Parameters
    ----------
    cls : type
        The layer class.
    ctor : dict
        Constructor argument name for each of ``in_channels, out_channels, kernel_size, stride,
        padding, dilation, groups, bias`` it takes.
    pairs : bool
        The constructor takes (h, w) pairs (else only ints: non-square cases are unsupported).
    """

    def __init__(self, cls: type, ctor: dict[str, str], pairs: bool) -> None:
        self.cls, self.ctor, self.pairs = cls, ctor, pairs
        self.wrap_in = _reads_data(cls.forward)
        self.wrap_dout = hasattr(cls, "backward") and _reads_data(cls.backward)
        self.tensor_cls = getattr(inspect.getmodule(cls), "Tensor", None)

    def _arg(self, v: tuple[int, int]) -> Any:
        return v if (self.pairs and v[0] != v[1]) else v[0]

    def _build(self, p: OpParams, w: np.ndarray, b: np.ndarray | None) -> Any:
        pt, _, pl, _ = p.pads
        values = {"in_channels": p.c, "out_channels": p.o, "kernel_size": self._arg((p.kh, p.kw)),
                  "stride": self._arg(p.stride), "padding": self._arg((pt, pl)),
                  "dilation": self._arg(p.dilation), "groups": p.groups, "bias": p.bias}
        layer = self.cls(**{arg: values[key] for key, arg in self.ctor.items()})
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

    def forward(self, p: OpParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> Any:
        layer = self._build(p, w, b)
        return _plain(layer.forward(self._wrap(x) if self.wrap_in else x))

    def backward(self, p: OpParams, dy: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[Any, Any, Any]:
        # the bias does not change the gradients: zeros stand in for it
        layer = self._build(p, w, None if not p.bias else np.zeros(p.o, w.dtype))
        layer.forward(self._wrap(x) if self.wrap_in else x)
        dx = _plain(layer.backward(self._wrap(dy) if self.wrap_dout else dy))
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
    """A :class:`LayerImpl` for a layer class, with the features its constructor can express."""
    ctor = _ctor_map(cls)
    pairs = bool(_PAIR_SRC.search(_source(cls)))
    f = {"bias", "no_bias", "padding_valid"}
    if "padding" in ctor:
        f |= {"padding", "padding_same"}
    for key in ("stride", "dilation", "groups"):
        if key in ctor:
            f.add(key)
    if pairs:
        f.add("rectangular")
    directions = {"forward", "backward"} if callable(getattr(cls, "backward", None)) else {"forward"}
    return LayerImpl(cls, ctor, pairs), {
        "op": op, "backend": "numpy", "directions": directions, "features": frozenset(f),
        "description": f"layer class {cls.__module__}.{cls.__qualname__}"}


# --- torch.nn.Module -------------------------------------------------------------------------------

class TorchModuleImpl(LayerImpl):
    """A ``torch.nn.Module`` conv layer class: weights set from the case, gradients through autograd."""

    def __init__(self, cls: type, ctor: dict[str, str]) -> None:
        super().__init__(cls, ctor, pairs=True)
        self.wrap_in = self.wrap_dout = False

    def _module(self, p: OpParams, w: np.ndarray, b: np.ndarray | None) -> Any:
        import torch

        values = {"in_channels": p.c, "out_channels": p.o, "kernel_size": (p.kh, p.kw), "stride": p.stride,
                  "padding": p.padding, "dilation": p.dilation, "groups": p.groups, "bias": p.bias}
        m = self.cls(**{arg: values[key] for key, arg in self.ctor.items()})
        m = m.to(torch.float64 if w.dtype == np.float64 else torch.float32)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)) if b is not None else torch.zeros_like(m.bias))
        return m

    def forward(self, p: OpParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> Any:
        import torch

        m = self._module(p, w, b)
        with torch.no_grad():
            return m(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def backward(self, p: OpParams, dy: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[Any, Any, Any]:
        import torch

        m = self._module(p, w, None)
        xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        m(xt).backward(torch.from_numpy(np.ascontiguousarray(dy)))
        db = m.bias.grad.numpy() if p.bias and getattr(m, "bias", None) is not None else None
        return xt.grad.numpy(), m.weight.grad.numpy(), db


def adapt_torch_module(obj: Any, op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`TorchModuleImpl` for a ``torch.nn.Module`` class (or an instance: its class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    ctor = _ctor_map(cls)
    f = {"bias", "no_bias", "padding", "padding_same", "padding_valid", "rectangular", "asymmetric_padding"}
    f |= {k for k in ("stride", "dilation", "groups") if k in ctor}
    if "padding" not in ctor:
        f -= {"padding", "padding_same", "asymmetric_padding"}
    return TorchModuleImpl(cls, ctor), {
        "op": op, "backend": "torch", "directions": {"forward", "backward"}, "features": frozenset(f),
        "description": f"torch module {cls.__module__}.{cls.__qualname__}"}
