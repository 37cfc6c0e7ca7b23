"""Plain functions as implementations: ``f(x, w, b=None, stride=..., padding=..., dilation=...,
groups=...)`` on arrays, or on torch tensors where its source is written against them (backward
then through autograd). The parameters a function lacks tell which cases it cannot take."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from convbench.adapt.source import pair_only, reads_pairs, source, uses_torch
from convbench.adapt.tensors import TensorArgs, zeros_like_bias
from convbench.ops import OpParams
from convbench.protocol import Implementation

__all__ = ["FunctionImpl", "TorchFunctionImpl", "adapt_function"]

# keyword names a function may use for each hyperparameter, first match wins
_ALIASES = {
    "stride": ("stride", "strides", "s"),
    "padding": ("padding", "pad", "pads", "p"),
    "dilation": ("dilation", "dilations", "d"),
    "groups": ("groups", "group", "g"),
}


def _conv_padding_arg(p: Any) -> Any:
    """The padding as a function most likely takes it: an int when both sides agree."""
    if len(p.pads) == 2:  # conv1d: (left, right)
        return p.pads[0]
    pt, pb, pl, pr = p.pads
    return pt if pt == pl else (pt, pl)


def _pair_arg(v: Any) -> Any:
    if isinstance(v, int):
        return v
    return v[0] if v[0] == v[1] else v


class FunctionImpl(Implementation):
    """A plain forward function ``f(x, w, b=None, stride=..., padding=..., dilation=..., groups=...)``.

    ``pairs`` False: the function takes its hyperparameters as ints only (as for layer classes,
    judged from its source, which never indexes ``stride[0]`` or the like), so a case that would
    pass one as an ``(h, w)`` pair is unsupported rather than an error inside the function.
    ``pair_only``: the hyperparameters it takes as pairs only (a tuple default, ``sh, sw = stride``
    with no int handling; :func:`~convbench.adapt.source.pair_only`), passed as pairs always.
    """

    def __init__(self, fn: Callable[..., Any], kwnames: dict[str, str], takes_bias: bool, pairs: bool = True,
                 pair_only: frozenset[str] = frozenset()) -> None:
        self.fn = fn
        self.kwnames = kwnames
        self.takes_bias = takes_bias
        self.pairs = pairs
        self.pair_only = pair_only

    def _kwargs(self, p: OpParams) -> dict[str, Any]:
        values = {"stride": _pair_arg(p.stride), "padding": _conv_padding_arg(p),
                  "dilation": _pair_arg(p.dilation), "groups": p.groups}
        if len(p.pads) == 4:  # conv2d: the pairs as they are, for what takes nothing else
            pairs = {"stride": tuple(p.stride), "padding": (p.pads[0], p.pads[2]), "dilation": tuple(p.dilation)}
            values.update({k: pairs[k] for k in self.pair_only})
        return {argname: values[key] for key, argname in self.kwnames.items()}

    def unsupported(self, p: OpParams, dtype: str, direction: str) -> str | None:
        why = super().unsupported(p, dtype, direction)
        if why is None and not self.pairs:
            pair = next(((k, v) for k, v in self._kwargs(p).items() if isinstance(v, tuple)), None)
            if pair is not None:
                name = getattr(self.fn, "__name__", "f")
                return (f"{name} takes {pair[0]} as an int (its source never indexes {pair[0]}[0] or the like), "
                        f"the case needs {pair[0]}={pair[1]!r}")
        return why

    def forward(self, p: OpParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> Any:
        return self._call(p, x, w, b)

    def _call(self, p: OpParams, x: Any, w: Any, b: Any) -> Any:
        kw = self._kwargs(p)
        try:
            if self.takes_bias:
                return self.fn(x, w, b, **kw)
            return self.fn(x, w, **kw)
        except Exception as exc:
            # the arguments it was given, where a case passes per-axis (h, w) pairs the reader may
            # not expect: "padding=(2, 0)" explains a failure deep inside np.pad
            args = ["x", "w"] + (["b" if b is not None else "None"] if self.takes_bias else [])
            args += [f"{k}={v!r}" for k, v in kw.items()]
            name = getattr(self.fn, "__name__", "f")
            exc.__notes__ = [*getattr(exc, "__notes__", []), f"called as {name}({', '.join(args)})"]
            raise


class TorchFunctionImpl(TensorArgs, FunctionImpl):
    """A forward function written against torch tensors (:func:`~convbench.adapt.source.uses_torch`):
    given CPU tensors, run under ``torch.no_grad()`` forward; backward through autograd, from
    ``x``, ``w`` (and a zero bias) made leaves that require a gradient."""

    backward_runs_forward = True  # the autograd graph its backward needs is built by a forward

    def forward(self, p: OpParams, x: Any, w: Any, b: Any = None) -> Any:
        import torch  # deferred: loaded already by the function adapted; keeps the adapters light

        with torch.no_grad():
            return self._call(p, x, w, b)

    def backward(self, p: OpParams, dy: Any, x: Any, w: Any) -> tuple[Any, ...]:
        xt, wt = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
        bt = zeros_like_bias(p.o, w).requires_grad_(True) if p.bias and self.takes_bias else None
        y = self._call(p, xt, wt, bt)
        if getattr(y, "grad_fn", None) is None:
            name = getattr(self.fn, "__name__", "f")
            raise TypeError(f"{name}'s output carries no autograd graph (computed under torch.no_grad, through "
                            ".numpy() or by a kernel without a backward), so its gradients cannot be checked; "
                            "give it one with torch.autograd.Function")
        y.backward(dy)
        return xt.grad, wt.grad, (bt.grad if bt is not None else None)


def _function_features(kwnames: dict[str, str], takes_bias: bool) -> frozenset[str]:
    f = {"no_bias", "rectangular"}
    if takes_bias:
        f.add("bias")
    if "stride" in kwnames:
        f.add("stride")
    if "padding" in kwnames:
        f |= {"padding", "padding_same", "padding_valid"}
    else:
        f.add("padding_valid")
    if "dilation" in kwnames:
        f.add("dilation")
    if "groups" in kwnames:
        f.add("groups")
    return frozenset(f)


def adapt_function(fn: Callable[..., Any], op: str) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`FunctionImpl` (:class:`TorchFunctionImpl` for one written against torch tensors) for a
    conv2d or conv1d function, with the features its parameters can express."""
    if op not in ("conv2d", "conv1d"):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is a function: functions are adapted for conv2d and "
                        f"conv1d only; for op={op!r} write a layer class (forward(x), backward(dout)) or an "
                        "Implementation")
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
    if op == "conv1d":
        features -= {"rectangular"}
    # conv1d passes ints only; a conv2d function without a source to read is given pairs as before
    src = source(fn)
    hyper = {k: kwnames[k] for k in ("stride", "padding", "dilation") if k in kwnames}
    only = frozenset() if op == "conv1d" else pair_only(fn, hyper)
    pairs = op == "conv1d" or not src or bool(only) or reads_pairs(src, list(hyper.values()))
    if uses_torch(fn):
        return TorchFunctionImpl(fn, kwnames, takes_bias, pairs, only), {
            "op": op, "backend": "torch", "directions": {"forward", "backward"}, "features": features,
            "description": f"function {fn.__module__}.{fn.__qualname__}{sig} on torch tensors, "
                           "backward through autograd"}
    return FunctionImpl(fn, kwnames, takes_bias, pairs, only), {
        "op": op, "backend": "numpy", "directions": {"forward"}, "features": features,
        "description": f"function {fn.__module__}.{fn.__qualname__}{sig}"}
