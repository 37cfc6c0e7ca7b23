"""Layer classes (seed-style, TinyTorch-style, ``torch.nn.Module``) as implementations of any operator.

A layer is built afresh per call from the case: its constructor gets the hyperparameters it takes
(by name, or positionally in the seeds' order), a conv layer's weights are set from the case, then
``forward(x)`` and ``backward(dout)`` run as a training loop would call them. What the constructor
cannot express (no ``stride`` argument, ints only) makes the cases needing it unsupported.
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convbench.ops import OpParams
from convbench.registry import Implementation

__all__ = ["DataHolder", "LayerImpl", "TensorArgs", "TorchModuleImpl", "adapt_layer", "adapt_torch_module",
           "layer_kind", "pair_only", "uses_torch", "zeros_like_bias"]

_CONV_CTOR = {
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
_POOL_CTOR = {
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
_WEIGHT = ("W", "weight", "weights", "w", "kernel", "filters", "K")
_BIAS = ("b", "bias", "biases", "B")
_GRAD_W = ("dW", "dw", "grad_W", "grad_w", "dweight", "dweights", "grad_weight", "weight_grad", "dK")
_GRAD_B = ("db", "dB", "grad_b", "grad_B", "dbias", "grad_bias", "bias_grad")
_PAIR_SRC = re.compile(r"(kernel_size|kernel|stride|padding|pad|ksize|pool_size|pool|size)\s*\[\s*[01]\s*\]|"
                       r"_pair\(|isinstance\(\s*(kernel_size|kernel|stride|padding|pad|ksize|pool_size|pool|size)\s*,")


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
    op: LayerKind(op, _CONV_CTOR, _CONV_ORDER, ("in_channels", "out_channels", "kernel_size"), True,
                  _CONV_ENABLES, frozenset({"bias", "no_bias", "padding_valid"}),
                  {"in_channels": ("weight",), "out_channels": ("weight",), "kernel_size": ("weight",)})
    for op in ("conv2d", "conv1d")
}
_KINDS.update({
    op: LayerKind(op, _POOL_CTOR, ("kernel_size", "stride", "padding"), ("kernel_size",), False,
                  _POOL_ENABLES, frozenset(), {"kernel_size": ("kernel_h", "kernel_w")})
    for op in ("max_pool2d", "avg_pool2d")
})


def layer_kind(op: str) -> LayerKind:
    try:
        return _KINDS[op]
    except KeyError:
        raise TypeError(f"layer classes can be adapted for {', '.join(_KINDS)}; got op={op!r}") from None


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


def _assigned(tree: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) of every plain assignment, ``a, b = c, d`` taken apart."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            v = node.value
            for t in node.targets:
                if isinstance(t, ast.Tuple) and isinstance(v, ast.Tuple) and len(t.elts) == len(v.elts):
                    out.extend(zip(t.elts, v.elts))
                else:
                    out.append((t, node.value))
    return out


def pair_only(fn: Any, names: dict[str, str], src: str | None = None) -> frozenset[str]:
    """The hyperparameters (keys of ``names``: key -> ``fn``'s argument name) that ``fn`` takes as
    ``(h, w)`` pairs only, so that an int would break it: a tuple default (``stride=(1, 1)``), or a
    source that unpacks or indexes the argument (``sh, sw = stride``, ``stride[0]``; or the
    attribute it is stored in, ``self.stride = stride`` ... ``sh, sw = self.stride``) and never
    passes it to a call (``isinstance``, ``pair``), reassigns it or catches an error.
    ``src`` is the source to read (a layer's whole class), by default ``fn``'s."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return frozenset()
    out = {key for key, arg in names.items()
           if arg in params and isinstance(params[arg].default, (tuple, list))}
    try:
        tree = ast.parse(textwrap.dedent(_source(fn) if src is None else src))
    except (SyntaxError, ValueError):  # a fragment (a lambda inside a call), a null byte
        return frozenset(out)
    if any(isinstance(node, ast.Try) for node in ast.walk(tree)):
        return frozenset(out)
    for key, arg in names.items():
        if key in out:
            continue
        attrs = {t.attr for t, v in _assigned(tree) if isinstance(t, ast.Attribute)
                 and isinstance(v, ast.Name) and v.id == arg}

        def ref(node: Any) -> bool:
            return ((isinstance(node, ast.Name) and node.id == arg)
                    or (isinstance(node, ast.Attribute) and node.attr in attrs))

        unpacked = handled = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                if any(isinstance(t, (ast.Tuple, ast.List)) for t in node.targets) and ref(node.value):
                    unpacked = True
                if any(ref(t) for t in node.targets) and not (isinstance(node.value, ast.Name)
                                                              and node.value.id == arg):
                    handled = True  # reassigned: it may be normalised
            elif isinstance(node, (ast.Subscript, ast.Starred)) and ref(node.value):
                unpacked = True  # stride[0], f(*kernel_size)
            elif isinstance(node, ast.Call) and any(ref(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                handled = True
        if unpacked and not handled:
            out.add(key)
    return frozenset(out)


def _reads_pairs(src: str, names: list[str]) -> bool:
    """Whether a source treats a hyperparameter as an ``(h, w)`` pair: ``_PAIR_SRC`` (its common
    names indexed or tested, ``_pair(``), or one of the function's or constructor's own argument
    ``names`` indexed (``stride[0]``), tested (``isinstance(stride, ...)``), unpacked itself or
    through one call (``sh, sw = stride``, ``sh, sw = pair(stride)``; not ``oh, ow = (h - k) //
    stride + 1, ...`` or ``sh, sw = stride, stride``, which use an int) or handed to a
    ``*pair*``/``*tuple*`` helper."""
    if _PAIR_SRC.search(src):
        return True
    if not names:
        return False
    alt = "|".join(re.escape(n) for n in names)
    return bool(re.search(rf"\b({alt})\s*\[\s*[01]\s*\]|isinstance\(\s*({alt})\s*,|"
                          rf"^\s*\w+\s*,\s*\w+\s*=\s*([\w.]+\(\s*({alt})\s*(,[^()]*)?\)|({alt}))\s*(#.*)?$|"
                          rf"\w*(pair|tuple)\w*\(\s*({alt})\s*[,)]", src, re.M))


def _ctor_map(cls: type, kind: LayerKind) -> dict[str, str]:
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
            from convbench.adapters import infer_op

            named_op = infer_op(cls)
            hint = (f"; its name says {named_op}: pass op={named_op!r} (command line: --op {named_op})"
                    if named_op != kind.op else "")
            if not hint and "pool" in cls.__name__.lower() and not kind.op.endswith("pool2d"):
                hint = ("; its name says pooling: pass op='max_pool2d' or op='avg_pool2d' (command line: "
                        "--op max_pool2d or --op avg_pool2d)")
            raise TypeError(f"{cls.__name__}{sig} does not look like a {kind.op} layer constructor: "
                            f"no {need}{hint}")
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
                     "(PyTorch layout: weight (out_channels, in_channels/groups, *kernel), bias (out_channels,))")


def _find(obj: Any, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in vars(obj) or isinstance(getattr(type(obj), n, None), property)), None)


def _values(p: OpParams, op: str, arg: Any, torch: bool) -> dict[str, Any]:
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
    """

    backward_runs_forward = True  # backward(dout) needs the state forward(x) left in the layer

    def __init__(self, cls: type, ctor: dict[str, str], pairs: bool, op: str = "conv2d",
                 pair_only: frozenset[str] = frozenset()) -> None:
        self.cls, self.ctor, self.pairs, self.op, self.pair_only = cls, ctor, pairs, op, pair_only
        self.kind = layer_kind(op)
        self.wrap_in = _reads_data(cls.forward)
        self.wrap_dout = hasattr(cls, "backward") and _reads_data(cls.backward)
        self.tensor_cls = getattr(inspect.getmodule(cls), "Tensor", None)

    def _arg(self, key: str, v: tuple[int, int]) -> Any:
        return v if key in self.pair_only or (self.pairs and v[0] != v[1]) else v[0]

    def _build(self, p: OpParams, w: np.ndarray | None = None, b: np.ndarray | None = None) -> Any:
        values = _values(p, self.op, self._arg, torch=False)
        if "weight" in self.ctor:  # a constructor that takes the arrays themselves
            values["weight"] = w.copy()
        if "bias_array" in self.ctor:
            values["bias_array"] = b.copy() if b is not None else np.zeros(p.o, w.dtype)
        layer = self.cls(**{arg: values[key] for key, arg in self.ctor.items()})
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


def _features(kind: LayerKind, ctor: dict[str, str], pairs: bool) -> frozenset[str]:
    f = set(kind.base)
    for key in ctor:
        f |= kind.enables.get(key, frozenset())
    if pairs:
        f.add("rectangular")
    return frozenset(f)


def adapt_layer(cls: type, op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`LayerImpl` for a layer class of ``op``, with the features its constructor can express."""
    kind = layer_kind(op)
    ctor = _ctor_map(cls, kind)
    # conv1d has one spatial axis: nothing is rectangular
    only = frozenset() if op == "conv1d" else pair_only(
        cls.__init__, {k: ctor[k] for k in ("kernel_size", "stride", "padding", "dilation") if k in ctor}, _source(cls))
    names = [ctor[k] for k in ("kernel_size", "stride", "padding", "dilation") if k in ctor]
    pairs = op != "conv1d" and (bool(only) or _reads_pairs(_source(cls), names))
    directions = {"forward", "backward"} if callable(getattr(cls, "backward", None)) else {"forward"}
    features = _features(kind, ctor, pairs)
    if kind.has_weights and not {"bias", "bias_array"} & set(ctor) and not _may_have_bias(cls):
        features -= {"bias"}  # a conv without bias (one followed by batch norm): the no-bias cases only
    return LayerImpl(cls, ctor, pairs, op, only), {
        "op": op, "backend": "numpy", "directions": directions, "features": features,
        "description": f"layer class {cls.__module__}.{cls.__qualname__}"}


def _may_have_bias(cls: type) -> bool:
    """False only where the class (with its bases) never sets a bias attribute (``self.b = ...``,
    ``setattr(self, "bias", ...)``, a class attribute or property) in a source that can be read."""
    mro = [k for k in cls.__mro__ if k is not object]
    if any(n in vars(k) for k in mro for n in _BIAS):
        return True
    sources = [_source(k) for k in mro]
    if not all(sources):  # a class whose source cannot be read may set one
        return True
    src = "".join(sources)
    names = "|".join(_BIAS)
    # self.b = ..., self.b: T = ..., or a target among others (self.W, self.b = W, b)
    return re.search(rf"\bself\.({names})\s*(,|:[^=]*=|=(?!=))|setattr\(\s*self\s*,\s*['\"]({names})['\"]",
                     src) is not None


# --- torch tensors ---------------------------------------------------------------------------------

def uses_torch(fn: Any, _seen: set[int] | None = None) -> bool:
    """Whether ``fn`` (a function or class) is written against torch tensors: its source uses a
    torch module or function of its module's globals (``torch.zeros``, ``F.conv2d``, ``conv2d(``
    imported from torch), or a function or class of its own module that does (``conv2d_unfold(``,
    ``MyConvFunction.apply(``), and no NumPy module or function, and it does not convert arrays
    itself (``torch.from_numpy``)."""
    seen = set() if _seen is None else _seen
    seen.add(id(fn))
    src = _source(fn)
    module = inspect.getmodule(fn)
    g = getattr(fn, "__globals__", None) or (vars(module) if module is not None else None)
    if not src or not isinstance(g, dict) or "from_numpy(" in src:
        return False
    calls = {n for n in g if re.search(rf"(?<![\w.]){re.escape(n)}\s*[.(]", src)}

    def module_of(v: Any) -> Any:
        try:
            return v.__name__ if inspect.ismodule(v) else getattr(v, "__module__", None) if callable(v) else None
        except Exception:  # a lazy or proxy global that raises on attribute access
            return None

    def of(root: str) -> bool:
        return any(isinstance(m, str) and (m == root or m.startswith(root + "."))
                   for m in (module_of(g[n]) for n in calls))

    if of("numpy"):
        return False
    own = getattr(module, "__name__", None)
    return of("torch") or any(
        (inspect.isfunction(g[n]) or inspect.isclass(g[n])) and getattr(g[n], "__module__", None) == own
        and id(g[n]) not in seen and uses_torch(g[n], seen) for n in calls)


class TensorArgs:
    """``prepare``/``to_numpy`` of an implementation written against (CPU) torch tensors: the
    inputs as tensors sharing the arrays' memory and strides (so a change in place shows, and a
    non-contiguous input stays one), results back to NumPy."""

    def prepare(self, *arrays: np.ndarray | None) -> tuple[Any, ...]:
        import torch

        return tuple(None if a is None else torch.from_numpy(a if min(a.strides, default=0) >= 0
                                                             else np.ascontiguousarray(a)) for a in arrays)

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def zeros_like_bias(n: int, w: Any) -> Any:
    """Zeros standing in for a missing bias, of ``w``'s kind (array or tensor) and dtype."""
    if isinstance(w, np.ndarray):
        return np.zeros(n, dtype=w.dtype)
    import torch

    return torch.zeros(n, dtype=w.dtype, device=w.device)


# --- torch.nn.Module -------------------------------------------------------------------------------

class TorchModuleImpl(LayerImpl):
    """A ``torch.nn.Module`` layer class: weights set from the case, gradients through autograd."""

    def __init__(self, cls: type, ctor: dict[str, str], op: str = "conv2d") -> None:
        super().__init__(cls, ctor, pairs=True, op=op)
        self.wrap_in = self.wrap_dout = False

    def _module(self, p: OpParams, w: np.ndarray | None, b: np.ndarray | None, dtype: np.dtype) -> Any:
        import torch

        values = _values(p, self.op, lambda key, v: v, torch=True)
        m = self.cls(**{arg: values[key] for key, arg in self.ctor.items()})
        m = m.to(torch.float64 if dtype == np.float64 else torch.float32)
        if self.kind.has_weights:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)) if b is not None else torch.zeros_like(m.bias))
        return m

    def forward(self, p: OpParams, x: np.ndarray, *wb: np.ndarray | None) -> Any:
        import torch

        m = self._module(p, *(wb or (None, None)), dtype=x.dtype)
        with torch.no_grad():
            return m(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def backward(self, p: OpParams, dy: np.ndarray, x: np.ndarray, *w: np.ndarray) -> tuple[Any, ...]:
        import torch

        m = self._module(p, w[0] if w else None, None, dtype=x.dtype)
        xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        m(xt).backward(torch.from_numpy(np.ascontiguousarray(dy)))
        if not self.kind.has_weights:
            return (xt.grad.numpy(),)
        db = m.bias.grad.numpy() if p.bias and getattr(m, "bias", None) is not None else None
        return xt.grad.numpy(), m.weight.grad.numpy(), db


def adapt_torch_module(obj: Any, op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`TorchModuleImpl` for a ``torch.nn.Module`` class (or an instance: its class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    kind = layer_kind(op)
    ctor = _ctor_map(cls, kind)
    f = set(_features(kind, ctor, pairs=op != "conv1d"))
    if kind.has_weights and "padding" in ctor:
        f.add("asymmetric_padding")  # torch pads 'same' with an even kernel on one side itself
    return TorchModuleImpl(cls, ctor, op), {
        "op": op, "backend": "torch", "directions": {"forward", "backward"}, "features": frozenset(f),
        "description": f"torch module {cls.__module__}.{cls.__qualname__}"}
