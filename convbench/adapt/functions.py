"""Plain functions as implementations of every operator, in the forms people write them.

``f(x, w, b=None, stride=..., padding=..., dilation=..., groups=...)`` for a convolution,
``f(x, kernel_size, stride=None, padding=0, ...)`` for a pooling, on arrays or, where the source is
written against them, torch tensors (backward then through autograd). Besides the batched
``(N, C, H, W)`` form: a function of one unbatched sample ``(C, H, W)`` / ``(C, L)`` (told from
``C, H, W = x.shape``), a single-channel 2-D convolution ``f(image, kernel)`` on ``(H, W)``
arrays (told from ``H, W = image.shape`` or ``kh, kw = kernel.shape``), fed one sample (and one
channel) at a time inside the timed call; channels last and other weight layouts where the user
says so (:func:`convbench.adapt.public.adapt`). The parameters a function lacks, or that cannot be
identified, make the cases needing them unsupported; a case whose value is PyTorch's default is
called without the argument where the function's own default means the same, so a wrong default
fails.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from convbench.adapt.kinds import features as layer_features, layer_kind
from convbench.adapt.params import FnParams, omit_default, read_params
from convbench.adapt.source import pair_keys as source_pair_keys
from convbench.adapt.source import pair_only, shape_unpacks, source, square_only, uses_torch
from convbench.adapt.tensors import TensorArgs, zeros_like_bias
from convbench.ops import OpParams
from convbench.protocol import Implementation

__all__ = ["FunctionImpl", "TorchFunctionImpl", "adapt_function", "CANONICAL"]

#: PyTorch's layouts of each operator's input and weight
CANONICAL = {"conv2d": ("NCHW", "OIHW"), "conv1d": ("NCL", "OIL"), "max_pool2d": ("NCHW", ""),
             "avg_pool2d": ("NCHW", "")}
_CONV = ("conv2d", "conv1d")


def _perm(a: Any, axes: tuple[int, ...]) -> Any:
    """``a`` with its axes in ``axes`` order: a view for arrays and tensors alike."""
    if axes == tuple(range(len(axes))):
        return a
    return a.transpose(axes) if isinstance(a, np.ndarray) else a.permute(*axes)


def _axes(canonical: str, given: str) -> tuple[int, ...]:
    """The permutation from ``canonical`` (less the letters ``given`` lacks) to ``given``."""
    kept = "".join(ch for ch in canonical if ch in given)
    return tuple(kept.index(ch) for ch in given)


def _stack(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray) or not hasattr(parts[0], "detach"):
        return np.stack([np.asarray(q) for q in parts])
    import torch  # deferred: only a function written against torch tensors returns tensors

    return torch.stack(parts)


class FunctionImpl(Implementation):
    """A function of any operator and form.

    Parameters
    ----------
    fn : callable
        The function.
    op : str
        The operator.
    fp : FnParams
        Its parameters' roles (:func:`~convbench.adapt.params.read_params`).
    pair_keys : set of str
        The hyperparameters it takes as ``(h, w)`` pairs; the others as one int (a case needing two
        different values is unsupported).
    pair_only : set of str
        Those it takes as pairs only (given as pairs always).
    layout, weight_layout : str
        Its arrays' layouts (``NCHW``, ``CHW``, ``HW``, ``NHWC``; ``OIHW``, ``HWIO``, ``HW``): a
        layout without ``N`` is one sample at a time, without ``C`` one channel at a time.
    square : str, optional
        The line of its source that reads one kernel size for both axes: square kernels only.
    """

    def __init__(self, fn: Callable[..., Any], op: str, fp: FnParams, pair_keys: frozenset[str] = frozenset(),
                 pair_only: frozenset[str] = frozenset(), layout: str = "", weight_layout: str = "",
                 square: str | None = None) -> None:
        self.fn, self.op, self.fp = fn, op, fp
        self.pair_keys, self.pair_only, self.square = pair_keys, pair_only, square
        canon_x, canon_w = CANONICAL[op]
        self.layout, self.weight_layout = layout or canon_x, weight_layout or canon_w
        self.x_axes = _axes(canon_x, self.layout)
        self.w_axes = _axes(canon_w, self.weight_layout) if canon_w else ()
        self.batched, self.channels = "N" in self.layout, "C" in self.layout
        self.name = getattr(fn, "__name__", "f")
        try:
            self.posonly = [q.name for q in inspect.signature(fn).parameters.values() if q.kind == q.POSITIONAL_ONLY]
        except (TypeError, ValueError):
            self.posonly = []

    # --- what the function is given ---------------------------------------------------------

    def _values(self, p: OpParams) -> dict[str, Any]:
        """Each hyperparameter's value for ``p`` and whether it is PyTorch's default (omittable)."""
        if self.op == "conv1d":
            return {"stride": p.stride, "padding": p.pads[0], "dilation": p.dilation, "groups": p.groups}
        if self.op == "conv2d":
            pt, _, pl, _ = p.pads
            return {"stride": tuple(p.stride), "padding": (pt, pl), "dilation": tuple(p.dilation), "groups": p.groups}
        v = {"kernel_size": (p.kh, p.kw), "stride": tuple(p.stride), "padding": tuple(p.padding),
             "ceil_mode": p.ceil_mode}
        if self.op == "max_pool2d":
            v["dilation"] = tuple(p.dilation)
        else:
            v.update(count_include_pad=p.count_include_pad, divisor_override=p.divisor_override)
        return v

    def _omit(self, p: OpParams, key: str, value: Any) -> bool:
        """Leave ``key`` out: the case has PyTorch's default and the function's own means the same."""
        if key in self.pair_only:  # it unpacks what it is given: its own int default is never used
            return False
        default = self.fp.defaults.get(key, inspect.Parameter.empty)
        return omit_default(self.op, key, value, default, (p.kh, p.kw) if self.op.endswith("pool2d") else ())

    def _kwargs(self, p: OpParams) -> dict[str, Any]:
        out = {}
        for key, value in self._values(p).items():
            arg = self.fp.kw.get(key)
            if arg is None or self._omit(p, key, value):
                continue
            if isinstance(value, tuple) and key not in self.pair_only and len(set(value)) == 1:
                value = value[0]
            out[arg] = value
        return out

    def unsupported(self, p: OpParams, dtype: str, direction: str) -> str | None:
        loud = self.fp.loud
        if loud:
            arg, default = next(iter(loud.items()))
            return (f"{self.name} has a parameter convbench cannot identify, {arg}={default!r}, whose default may "
                    f"change every result; name it: convbench.adapt({self.name}, names={{{arg!r}: '...'}})")
        why = super().unsupported(p, dtype, direction)
        if why is not None:
            if self.fp.unknown and " does not support " in why:
                unknown = ", ".join(self.fp.unknown)
                why += (f" (it has parameter(s) convbench cannot identify: {unknown}; if one is what the case needs, "
                        f"name it: convbench.adapt({self.name}, names={{{next(iter(self.fp.unknown))!r}: '...'}}))")
            return why
        if not self.channels and p.c != 1:
            return f"{self.name} takes one channel (an (H, W) image); the case has {p.c} input channels"
        if self.square and p.kh != p.kw:
            return f"{self.name} takes square kernels only ({self.square}); the case's kernel is {p.kh}x{p.kw}"
        for key, value in self._values(p).items():
            if (isinstance(value, tuple) and len(set(value)) > 1 and key in self.fp.kw
                    and key not in self.pair_keys | self.pair_only):
                read, arg = [self.fp.kw[k] for k in sorted(self.pair_keys) if k in self.fp.kw], self.fp.kw[key]
                where = (f"its source reads {' and '.join(read)} as a pair, {arg} never" if read else
                         f"its source never indexes {arg}[0] or the like")
                return f"{self.name} takes {arg} as an int ({where}), the case needs {arg}={value!r}"
        return None

    # --- calls ------------------------------------------------------------------------------------

    def forward(self, p: OpParams, x: Any, *wb: Any) -> Any:
        return self._call(p, x, *wb)

    def _call(self, p: OpParams, x: Any, w: Any = None, b: Any = None) -> Any:
        kw = self._kwargs(p)
        conv = self.op in _CONV
        if conv and self.fp.b is not None and b is None and self.fp.bias_required:
            b = zeros_like_bias(p.o, w)  # a bias it must be given: zeros where the case has none
        args = {}
        if conv:
            args[self.fp.w] = _perm(w, self.w_axes) if self.channels else None
            if self.fp.b is not None:
                args[self.fp.b] = b
        try:
            if self.batched and self.channels:
                return self._out(self._one(_perm(x, self.x_axes), args, kw))
            samples = []
            for n in range(x.shape[0]):  # one sample at a time, as the function takes it
                if self.channels:
                    samples.append(self._out(self._one(_perm(x[n], self.x_axes), args, kw)))
                    continue
                # one channel at a time: a convolution's input channel is 0 (C is 1), each filter in turn
                chans = [self._out(self._one(_perm(x[n, 0 if conv else c], self.x_axes),
                                             {**args, self.fp.w: _perm(w[c, 0], self.w_axes)} if conv else args, kw))
                         for c in range(p.o if conv else p.c)]
                samples.append(_stack(chans))
            return _stack(samples)
        except Exception as exc:
            # the arguments it was given: "padding=(2, 0)" explains a failure deep inside np.pad
            shown = [f"{k}={v!r}" for k, v in kw.items()]
            given = ["x", *(["w"] if conv else []), *(["b" if b is not None else "None"] if self.fp.b else [])]
            exc.__notes__ = [*getattr(exc, "__notes__", []), f"called as {self.name}({', '.join(given + shown)})"]
            raise

    def _one(self, x: Any, args: dict[str, Any], kw: dict[str, Any]) -> Any:
        given = {self.fp.x: x, **args, **kw}
        # positional-only parameters (``def f(x, w, /, ...)``) in order, as far as they are given
        pos = []
        for name in self.posonly:
            if name not in given:
                break
            pos.append(given.pop(name))
        y = self.fn(*pos, **given)
        if isinstance(y, tuple) and y and hasattr(y[0], "shape"):
            return y[0]  # (out, cache), as a forward that keeps what its backward needs returns
        return y

    def _out(self, y: Any) -> Any:
        """A result in the function's layout, back in PyTorch's."""
        return _perm(y, tuple(int(i) for i in np.argsort(self.x_axes))) if hasattr(y, "shape") else y


class TorchFunctionImpl(TensorArgs, FunctionImpl):
    """A function written against torch tensors (:func:`~convbench.adapt.source.uses_torch`): given
    CPU tensors, run under ``torch.no_grad()`` forward; backward through autograd, from the inputs
    (and a zero bias) made leaves that require a gradient."""

    backward_runs_forward = True  # the autograd graph its backward needs is built by a forward

    def forward(self, p: OpParams, x: Any, *wb: Any) -> Any:
        import torch  # deferred: loaded already by the function adapted; keeps the adapters light

        with torch.no_grad():
            return self._call(p, x, *wb)

    def backward(self, p: OpParams, dy: Any, x: Any, *w: Any) -> tuple[Any, ...]:
        xt = x.detach().requires_grad_(True)
        if self.op in _CONV:
            wt = w[0].detach().requires_grad_(True)
            bt = zeros_like_bias(p.o, w[0]).requires_grad_(True) if p.bias and self.fp.b else None
            y = self._call(p, xt, wt, bt)
        else:
            y = self._call(p, xt)
        if getattr(y, "grad_fn", None) is None:
            raise TypeError(f"{self.name}'s output carries no autograd graph (computed under torch.no_grad, through "
                            ".numpy() or by a kernel without a backward), so its gradients cannot be checked; "
                            "give it one with torch.autograd.Function")
        y.backward(dy)
        if self.op not in _CONV:
            return (xt.grad,)
        return xt.grad, wt.grad, (bt.grad if bt is not None else None)


def _conv_features(kw: dict[str, str], takes_bias: bool, pairs: bool) -> frozenset[str]:
    f = {"no_bias"}
    if pairs:
        f.add("rectangular")
    if takes_bias:
        f.add("bias")
    if "stride" in kw:
        f.add("stride")
    if "padding" in kw:
        f |= {"padding", "padding_same", "padding_valid"}
    else:
        f.add("padding_valid")
    if "dilation" in kw:
        f.add("dilation")
    if "groups" in kw:
        f.add("groups")
    return frozenset(f)


def _form(fn: Callable[..., Any], op: str, fp: FnParams, src: str) -> tuple[str, str]:
    """The layouts the source says the function takes: ``C, H, W = x.shape`` is one sample,
    ``H, W = image.shape`` (or ``kh, kw = kernel.shape``) one channel of a 2-D convolution."""
    canon_x, canon_w = CANONICAL[op]
    unpacks = shape_unpacks(src, fp.x)
    n = len(unpacks[0].targets[0].elts) if unpacks else len(canon_x)
    if op == "conv2d" and fp.w and not unpacks:
        wun = shape_unpacks(src, fp.w)
        if wun and len(wun[0].targets[0].elts) == 2:
            n = 2
    if n == len(canon_x) - 1:
        return canon_x[1:], canon_w
    if n == len(canon_x) - 2 and op != "conv1d":
        return canon_x[2:], canon_w[2:]
    return canon_x, canon_w


def adapt_function(fn: Callable[..., Any], op: str, names: dict[str, str] | None = None, layout: str | None = None,
                   weight_layout: str | None = None) -> tuple[Implementation, dict[str, Any]]:
    """A :class:`FunctionImpl` (:class:`TorchFunctionImpl` for one written against torch tensors),
    with the features its parameters can express.

    ``names``, ``layout`` and ``weight_layout`` are the user's word where the source does not
    tell (:func:`convbench.adapt.public.adapt`); by default the form is read from the source.
    """
    if op not in CANONICAL:
        raise TypeError(f"functions are adapted for {', '.join(CANONICAL)}; got op={op!r}")
    fp = read_params(fn, op, names)
    src = source(fn)
    if layout is None:
        layout, weight_layout = _form(fn, op, fp, src) if src else CANONICAL[op]
    weight_layout = weight_layout or (CANONICAL[op][1] if "C" in layout else CANONICAL[op][1][2:])
    hyper = {k: fp.kw[k] for k in ("kernel_size", "stride", "padding", "dilation") if k in fp.kw}
    only = frozenset() if op == "conv1d" else pair_only(fn, hyper)
    if op == "conv1d" or not src:  # one axis; or nothing to read: pairs where they differ, as before
        pairs_of = frozenset(hyper)
    else:
        pairs_of = source_pair_keys(src, hyper, only)
    square = square_only(src, fp.w) if src and fp.w and op == "conv2d" else None
    if op in _CONV:
        feats = _conv_features(fp.kw, fp.b is not None and "C" in layout, True)  # a kernel comes with its array
        if op == "conv1d":
            feats -= {"rectangular"}
    else:
        feats = layer_features(layer_kind(op), fp.kw, bool(pairs_of))
    torch = uses_torch(fn)
    cls = TorchFunctionImpl if torch else FunctionImpl
    impl = cls(fn, op, fp, pairs_of, only, layout, weight_layout, square)
    form = ("" if impl.batched and impl.channels else
            ", fed one sample at a time (inside the timed call)" if impl.channels else
            ", fed one sample and one filter at a time (inside the timed call)")
    try:
        sig = str(inspect.signature(fn))
    except (TypeError, ValueError):
        sig = "(...)"
    module = getattr(fn, "__module__", None) or "?"
    # a file's module is named after its path (convbench_user_...): the function's own name says more
    where = f"{'' if module.startswith('convbench_user_') else module + '.'}{getattr(fn, '__qualname__', impl.name)}{sig}"
    return impl, {"op": op, "backend": "torch" if torch else "numpy",
                  "directions": {"forward", "backward"} if torch else {"forward"}, "features": feats,
                  "description": f"function {where}{' on torch tensors, backward through autograd' if torch else ''}"
                                 f"{'' if layout == CANONICAL[op][0] else ', input ' + layout}{form}"}
