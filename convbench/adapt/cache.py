"""Forward/backward functions that hand each other a cache (CS231n's and deeplearning.ai's style).

The courses that follow CS231n write every layer as two functions::

    out, cache = conv_forward_naive(x, w, b, conv_param)      # conv_param = {'stride': 1, 'pad': 1}
    dx, dw, db = conv_backward_naive(dout, cache)
    out, cache = max_pool_forward_naive(x, pool_param)        # {'pool_height': 2, 'pool_width': 2, 'stride': 2}
    dx = max_pool_backward_naive(dout, cache)

The deeplearning.ai assignments write the same pattern channels last (``conv_forward(A_prev, W,
b, hparameters)``, ``pool_forward(A_prev, hparameters, mode="max")``): see ``_channels_last`` and
``_mode``. The backward is found beside the forward: the name with ``forward`` read as
``backward``, in the forward's own module (``conv_forward_im2col`` -> ``conv_backward_im2col``),
or the ``backward`` static method of a class whose static ``forward`` takes the dict
(``Conv.forward(x, w, b, conv_param)`` / ``Conv.backward(dout, cache)``). Which hyperparameters
the functions take is read from the keys looked up in the dict, through the functions it is
handed on to (CS231n's where it goes where it cannot be followed); each is one int, so a case
that needs an ``(h, w)`` pair of two values, or padding that differs between sides, is
*unsupported*.
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any, Callable

import numpy as np

from convbench.adapt.kinds import features, layer_kind
from convbench.adapt.source import square_only, source, uses_torch
from convbench.adapt.tensors import TensorArgs, zeros_like_bias
from convbench.ops import OpParams
from convbench.protocol import Implementation

__all__ = ["CacheImpl", "TorchCacheImpl", "adapt_cache", "dict_param", "static_forward"]

# the dict keys each hyperparameter goes by, first match wins; a pool's kernel is one key per axis
# or one key for both
_CONV_KEYS = {"stride": ("stride",), "padding": ("pad", "padding"), "dilation": ("dilation",),
              "groups": ("groups",)}
_POOL_KEYS = {"kernel_size": (("pool_height", "pool_width"), ("pool_h", "pool_w"), "pool_size", "kernel_size",
                              "size", "f"),
              "stride": ("stride",), "padding": ("pad", "padding")}
# what the CS231n assignments read: taken where the source cannot be read, or for what is not looked
# up where it can be seen when the dict goes where it cannot be followed
_CS231N = {"conv2d": {"stride": "stride", "padding": "pad"},
           "pool": {"kernel_size": ("pool_height", "pool_width"), "stride": "stride"}}
_PARAM_NAME = re.compile(r"(^|_)(h|hyper_?)?param(s|eters)?$")
# the modes a pooling forward with a ``mode`` argument may call each operator
_MODES = {"max_pool2d": ("max", "maximum"), "avg_pool2d": ("average", "avg", "mean")}


def _required(fn: Any) -> list[inspect.Parameter]:
    """``fn``'s positional parameters without a default."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    return [q for q in params if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD) and q.default is q.empty]


def dict_param(fn: Any) -> str | None:
    """The name of ``fn``'s dict of hyperparameters (its last positional parameter without a
    default, named like ``conv_param``/``pool_param``/``params``/``hparameters``), or None."""
    req = _required(fn)
    if len(req) >= 2 and _PARAM_NAME.search(req[-1].name):
        return req[-1].name
    return None


def _channels_last(fn: Any, src: str) -> bool:
    """Whether the forward takes NHWC input, as the deeplearning.ai assignments do
    (``conv_forward(A_prev, W, b, hparameters)``, ``A_prev`` of shape ``(m, n_H_prev, n_W_prev,
    n_C_prev)``, ``W`` of ``(f, f, n_C_prev, n_C)``)."""
    req = _required(fn)
    return (bool(req) and req[0].name == "A_prev") or re.search(r"\bn_[HWC]_prev\b", src) is not None


def _mode(fn: Any, src: str, op: str) -> str | None:
    """The ``mode`` a pooling function is to be called with (the word its source compares ``mode``
    to: ``mode == "average"``), None where it takes no ``mode``."""
    if not _takes(fn, "mode"):
        return None
    said = re.findall(r"\bmode\s*==\s*['\"](\w+)['\"]|['\"](\w+)['\"]\s*==\s*mode\b", src)
    words = [a or b for a, b in said]
    return next((w for w in words if w.lower() in _MODES.get(op, ())), _MODES.get(op, ("max",))[0])


def _takes(fn: Any, name: str) -> bool:
    """Whether ``fn`` has a parameter ``name``."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _swap(a: Any, axes: tuple[int, ...]) -> Any:
    """``a`` with its axes permuted (a view: a NumPy transpose or a torch permute)."""
    return a.permute(*axes) if hasattr(a, "permute") else a.transpose(axes)


def static_forward(cls: Any) -> Callable[..., Any] | None:
    """``cls.forward`` where it is a static method taking a dict of hyperparameters, else None."""
    if not isinstance(cls, type) or not isinstance(inspect.getattr_static(cls, "forward", None), staticmethod):
        return None
    return cls.forward if dict_param(cls.forward) else None


def _keys_read(src: str, pname: str) -> set[str]:
    """The string keys the source looks up in ``pname`` (``conv_param['stride']``, ``.get('pad', 0)``)."""
    return set(re.findall(rf"\b{re.escape(pname)}\s*(?:\[\s*|\.get\(\s*)['\"](\w+)['\"]", src))


def _reads(fn: Any, pname: str, seen: set[int] | None = None) -> tuple[set[str], bool]:
    """The keys ``fn`` looks up in its argument ``pname``, with those of the Python functions it
    hands the dict on to (``pool_forward(A_prev, hparameters)``, ``conv_forward_naive(x, w, b,
    conv_param)``), followed by their own parameter names; and whether it hands the dict to
    anything it cannot follow (not ``cache = (x, w, b, conv_param)``, which is no call)."""
    seen = set() if seen is None else seen
    seen.add(id(fn))
    src = source(fn)
    read = _keys_read(src, pname)
    try:
        tree = ast.parse(textwrap.dedent(src))
    except (SyntaxError, ValueError):  # a fragment (a lambda inside a call), a null byte
        return read, False
    g = getattr(fn, "__globals__", {})
    lost = False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        passed = [(i, None) for i, a in enumerate(node.args) if isinstance(a, ast.Name) and a.id == pname]
        passed += [(None, k.arg) for k in node.keywords if isinstance(k.value, ast.Name) and k.value.id == pname]
        if not passed:
            continue
        callee = None
        if isinstance(node.func, ast.Name):
            callee = g.get(node.func.id)
        elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            callee = getattr(g.get(node.func.value.id), node.func.attr, None)
        try:
            params = list(inspect.signature(callee).parameters) if inspect.isfunction(callee) else None
        except (TypeError, ValueError):
            params = None
        for i, kw in passed:
            name = kw if kw is not None else (params[i] if params is not None and i < len(params) else None)
            if params is None or name not in params:
                lost = True  # a C extension, a method of an object, *args
            elif id(callee) not in seen:
                more, more_lost = _reads(callee, name, seen)
                read |= more
                lost = lost or more_lost
    return read, lost


def _keys(op: str, fn: Any, src: str, pname: str) -> dict[str, Any]:
    """Hyperparameter -> the key (or the (height, width) keys) the functions read it from
    (``src``: ``fn``'s source)."""
    table = _CONV_KEYS if op == "conv2d" else _POOL_KEYS
    cs231n = _CS231N["conv2d" if op == "conv2d" else "pool"]
    if not src:
        return dict(cs231n)
    read, lost = _reads(fn, pname)
    # a dict handed on to what cannot be followed (a C extension, a method of an object) is taken
    # to be read as CS231n does, for what is not looked up where it can be seen
    found: dict[str, Any] = {}
    for hyper, aliases in table.items():
        for a in aliases:
            if (set(a) <= read) if isinstance(a, tuple) else a in read:
                found[hyper] = a
                break
        else:
            if lost and hyper in cs231n:
                found[hyper] = cs231n[hyper]
    return found


def _callname(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "f")


class CacheImpl(Implementation):
    """A forward function ``(x, w, b, conv_param) -> (out, cache)`` (pooling: ``(x, pool_param)``)
    and, optionally, its backward ``(dout, cache) -> (dx, dw, db)`` (pooling: ``dx``).

    The backward direction runs the forward first, for the cache it needs, as a training step
    would: its time includes the forward's. A forward without a bias parameter gets only the cases
    without bias; one with it is given zeros where the case has no bias (adding 0 changes nothing).
    ``channels_last``: the functions take and return NHWC arrays and ``(kh, kw, C, O)`` weights
    (transposed views both ways, inside the call); ``mode``: passed to a pooling forward (and
    backward) that takes one.
    """

    backward_runs_forward = True  # backward(dout, cache) needs the cache the forward returns

    def __init__(self, fwd: Callable[..., Any], bwd: Callable[..., Any] | None, op: str, pname: str,
                 keys: dict[str, Any], takes_bias: bool, channels_last: bool = False,
                 mode: str | None = None) -> None:
        self.fwd, self.bwd, self.op, self.pname = fwd, bwd, op, pname
        self.keys, self.takes_bias = keys, takes_bias
        self.channels_last, self.mode = channels_last, mode
        # the backward gets the mode too where it takes one (read once here, not per timed call)
        self.bwd_mode = mode is not None and bwd is not None and _takes(bwd, "mode")
        self.kind = layer_kind(op)
        #: the line that reads one size for both kernel axes from the weight's shape (square only)
        self.square: str | None = None

    def _param(self, p: OpParams) -> dict[str, Any]:
        """A fresh dict for one call (a function may write into it)."""
        if self.op == "conv2d":
            values = {"stride": p.stride[0], "padding": p.pads[0], "dilation": p.dilation[0], "groups": p.groups}
        else:
            values = {"stride": p.stride[0], "padding": p.padding[0], "kernel_size": (p.kh, p.kw)}
        d: dict[str, Any] = {}
        for hyper, key in self.keys.items():
            if isinstance(key, tuple):
                d.update(zip(key, values[hyper]))
            else:
                d[key] = values[hyper][0] if hyper == "kernel_size" else values[hyper]
        return d

    def unsupported(self, p: OpParams, dtype: str, direction: str) -> str | None:
        why = super().unsupported(p, dtype, direction)
        if why is not None:
            return why
        if self.square and p.kh != p.kw:
            return (f"{_callname(self.fwd)} takes square kernels only ({self.square}); the case's kernel is "
                    f"{p.kh}x{p.kw}")
        # each key holds one int: the case must need one value per hyperparameter
        if self.op == "conv2d":
            need = {"stride": p.stride, "padding": p.pads, "dilation": p.dilation}
        else:
            need = {"kernel_size": (p.kh, p.kw), "stride": p.stride, "padding": p.padding}
        for hyper, v in need.items():
            key = self.keys.get(hyper)
            if key is None or isinstance(key, tuple) or len(set(v)) == 1:
                continue
            what = "padding (the same on every side)" if hyper == "padding" else hyper
            shown = p.padding if hyper == "padding" else v
            return (f"{_callname(self.fwd)} takes {what} as one int, {self.pname}[{key!r}]; "
                    f"the case needs {hyper}={shown!r}")
        return None

    def _forward(self, p: OpParams, x: np.ndarray, wb: tuple[np.ndarray | None, ...]) -> tuple[Any, Any]:
        last = self.channels_last
        args: list[Any] = [_swap(x, (0, 2, 3, 1)) if last else x]
        if self.kind.has_weights:
            w, b = wb
            args.append(_swap(w, (2, 3, 1, 0)) if last else w)  # (O, C, kh, kw) -> (kh, kw, C, O)
            if self.takes_bias:
                b = b if b is not None else zeros_like_bias(p.o, w)
                args.append(b.reshape(1, 1, 1, -1) if last else b)
        param = self._param(p)
        mode = {} if self.mode is None else {"mode": self.mode}
        try:
            res = self.fwd(*args, param, **mode)
        except Exception as exc:
            names = (["A_prev", "W", "b"] if last else ["x", "w", "b"])[:len(args)]
            extra = f", mode={self.mode!r}" if mode else ""
            exc.__notes__ = [*getattr(exc, "__notes__", []),
                             f"called as {_callname(self.fwd)}({', '.join(names)}, {self.pname}={param!r}{extra})"]
            raise
        out, cache = res, None
        if isinstance(res, tuple):
            if len(res) != 2:
                raise TypeError(f"{_callname(self.fwd)} returned a tuple of {len(res)}; expected (out, cache)")
            out, cache = res
        if last and getattr(out, "ndim", 0) == 4:
            out = _swap(out, (0, 3, 1, 2))
        return out, cache

    def forward(self, p: OpParams, x: np.ndarray, *wb: np.ndarray | None) -> Any:
        return self._forward(p, x, wb)[0]

    def backward(self, p: OpParams, dy: np.ndarray, x: np.ndarray, *w: np.ndarray) -> tuple[Any, ...]:
        if self.bwd is None:
            raise TypeError(f"{_callname(self.fwd)} has no backward beside it")
        wb = (w[0], None) if self.kind.has_weights else ()
        _, cache = self._forward(p, x, wb)
        if cache is None:
            raise TypeError(f"{_callname(self.fwd)} returned no cache for {_callname(self.bwd)}: "
                            "expected it to return (out, cache)")
        last = self.channels_last
        mode = {"mode": self.mode} if self.bwd_mode else {}
        try:
            res = self.bwd(_swap(dy, (0, 2, 3, 1)) if last else dy, cache, **mode)
        except Exception as exc:
            exc.__notes__ = [*getattr(exc, "__notes__", []), f"called as {_callname(self.bwd)}(dout, cache)"]
            raise
        back = (lambda a: _swap(a, (0, 3, 1, 2)) if getattr(a, "ndim", 0) == 4 else a) if last else (lambda a: a)
        if not self.kind.has_weights:
            if isinstance(res, tuple):
                if len(res) != 1:
                    raise TypeError(f"{_callname(self.bwd)} returned a tuple of {len(res)}; expected dx")
                res = res[0]
            return (back(res),)
        want = 3 if self.takes_bias else 2
        if not isinstance(res, tuple) or len(res) != want:
            got = f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
            raise TypeError(f"{_callname(self.bwd)} returned {got}; expected "
                            f"{'(dx, dw, db)' if self.takes_bias else '(dx, dw)'}")
        dx, dw = back(res[0]), res[1]
        db = res[2] if self.takes_bias and p.bias else None
        if last:  # dW (kh, kw, C, O) -> (O, C, kh, kw); db (1, 1, 1, O) -> (O,)
            dw = _swap(dw, (3, 2, 0, 1)) if getattr(dw, "ndim", 0) == 4 else dw
            db = db.reshape(-1) if db is not None and getattr(db, "size", 0) == p.o else db
        return dx, dw, db


class TorchCacheImpl(TensorArgs, CacheImpl):
    """The same, written against torch tensors (EECS 498's ``Conv.forward``): given CPU tensors."""


def _backward_beside(fwd: Callable[..., Any], owner: type | None) -> Callable[..., Any] | None:
    if owner is not None:
        bwd = getattr(owner, "backward", None)
        return bwd if callable(bwd) else None
    name = getattr(fwd, "__name__", "")
    if "forward" not in name:
        return None
    bwd = getattr(fwd, "__globals__", {}).get(name.replace("forward", "backward"))
    if bwd is None and inspect.getmodule(fwd) is not None:
        bwd = getattr(inspect.getmodule(fwd), name.replace("forward", "backward"), None)
    return bwd if callable(bwd) else None


def adapt_cache(obj: Any, op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`CacheImpl` for a CS231n-style forward function (or a class with static
    ``forward``/``backward``) of conv2d, max_pool2d or avg_pool2d."""
    owner = obj if isinstance(obj, type) else None
    fwd = static_forward(obj) if owner is not None else obj
    what = f"{_callname(fwd)}{inspect.signature(fwd)}"
    if op not in ("conv2d", "max_pool2d", "avg_pool2d"):
        raise TypeError(f"{what} takes a dict of hyperparameters: such forward/backward pairs are adapted for "
                        f"conv2d, max_pool2d and avg_pool2d; got op={op!r}")
    pname = dict_param(fwd)
    pos = _required(fwd)
    kind = layer_kind(op)
    arity = (3, 4) if kind.has_weights else (2,)
    if len(pos) not in arity:
        expected = "(x, w, b, conv_param) or (x, w, conv_param)" if kind.has_weights else "(x, pool_param)"
        hint = ""
        if kind.has_weights and len(pos) == 2 and "pool" in _callname(fwd).lower():
            hint = ("; its name says pooling: pass op='max_pool2d' or op='avg_pool2d' (command line: "
                    "--op max_pool2d or --op avg_pool2d)")
        raise TypeError(f"{what} does not look like a {op} forward: expected {expected}{hint}")
    takes_bias = len(pos) == 4
    src = source(fwd)
    keys = _keys(op, fwd, src, pname)
    if not kind.has_weights and "kernel_size" not in keys:
        raise TypeError(f"{what} reads no pool size from {pname} (looked for "
                        f"'pool_height'/'pool_width', 'pool_size', 'kernel_size', 'size')")
    bwd = _backward_beside(fwd, owner)
    feats = set(features(kind, keys, pairs=True))  # one int per key: unsupported() turns pairs away
    if kind.has_weights and not takes_bias:
        feats.discard("bias")
    directions = {"forward", "backward"} if bwd is not None else {"forward"}
    pair = f"{_callname(fwd)} / {_callname(bwd)}" if bwd is not None else f"{_callname(fwd)} (no backward beside it)"
    torch = uses_torch(fwd)
    last = _channels_last(fwd, src)
    mode = None if kind.has_weights else _mode(fwd, src, op)
    impl = (TorchCacheImpl if torch else CacheImpl)(fwd, bwd, op, pname, keys, takes_bias, last, mode)
    weight = _required(fwd)[1].name if kind.has_weights and len(_required(fwd)) > 1 else None
    impl.square = square_only(src, weight) if src and weight else None
    return impl, {
        "op": op, "backend": "torch" if torch else "numpy", "directions": directions,
        "features": frozenset(feats),
        "description": f"forward/backward functions {fwd.__module__}: {pair}, hyperparameters in a dict "
                       f"{pname} with keys {sorted(_flat(keys.values()))}"
                       f"{' on torch tensors' if torch else ''}{', channels last (NHWC)' if last else ''}"
                       f"{f', mode={mode!r}' if mode else ''}"}


def _flat(keys: Any) -> list[str]:
    out: list[str] = []
    for k in keys:
        out.extend(k if isinstance(k, tuple) else (k,))
    return out
