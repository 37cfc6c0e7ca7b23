"""Likely causes of a wrong shape: the shapes the usual mistakes give, matched against the result's.

Part of the likely causes (:mod:`convbench.verify.diagnose`): padding ignored or on one side, stride
or dilation ignored or their axes swapped, the kernel's axes swapped, ceil rounding, ``grad_input``
with the padding still on or cropped with ``[p:-p]`` where the padding is 0, channels last.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

from convbench._errors import ParamError
from convbench.ops import OpParams
from convbench.ops._common import out_size

__all__ = ["shape_cause"]


def _replace(p: OpParams, **changes: Any) -> OpParams | None:
    try:
        return dataclasses.replace(p, **changes)
    except (ParamError, TypeError, ValueError):
        return None


def _conv_shapes(p: Any, vdir: str) -> Iterator[tuple[str, tuple[int, ...]]]:
    two = p.op == "conv2d"
    if vdir == "forward":
        sizes = (p.h, p.w) if two else (p.l,)
        ks = (p.kh, p.kw) if two else (p.k,)
        st = p.stride if two else (p.stride,)
        dl = p.dilation if two else (p.dilation,)
        pads = ((p.pads[0], p.pads[1]), (p.pads[2], p.pads[3])) if two else (p.pads,)

        def shape(k=ks, s=st, d=dl, pad=tuple(a + b for a, b in pads), ceil=False):
            return (p.n, p.o, *(out_size(*a, ceil) for a in zip(sizes, k, s, d, pad)))

        if any(map(any, pads)):
            yield "the padding is ignored", shape(pad=(0,) * len(sizes))
            yield "the input is padded on one side only", shape(pad=tuple(max(a, b) for a, b in pads))
        if any(s != 1 for s in st):
            yield "the stride is ignored (taken as 1)", shape(s=(1,) * len(st))
        if any(d != 1 for d in dl):
            yield "the dilation is ignored (taken as 1)", shape(d=(1,) * len(dl))
        if two:
            yield "the stride's height and width are swapped", shape(s=st[::-1])
            yield "the padding's height and width are swapped", shape(pad=tuple(a + b for a, b in pads)[::-1])
            yield "the dilation's height and width are swapped", shape(d=dl[::-1])
            yield "the kernel's height and width are swapped (read from w.shape the wrong way round)", shape(k=ks[::-1])
        yield "the output size is rounded up (ceil) where PyTorch rounds down", shape(ceil=True)
    elif vdir == "grad_input":
        if two:
            pt, pb, pl, pr = p.pads
            yield ("grad_input still holds the padding: crop it to the input's shape",
                   (p.n, p.c, p.h + pt + pb, p.w + pl + pr))
        else:
            yield "grad_input still holds the padding: crop it to the input's shape", (p.n, p.c, p.l + sum(p.pads))
        yield from _minus_crop(p, (p.h, p.w) if two else (p.l,), p.pads)


def _minus_crop(p: Any, sizes: tuple[int, ...], pads: tuple[int, ...]) -> Iterator[tuple[str, tuple[int, ...]]]:
    """``grad_input`` cropped from the padded buffer with ``[p:-p]``: right where the padding is
    positive, empty where it is 0 (``a[0:-0]`` is ``a[0:0]``)."""
    befores, afters = pads[0::2], pads[1::2]
    if all(afters):
        return
    cropped = tuple(len(range(s + a + b)[a:-b]) if b else 0 for s, a, b in zip(sizes, befores, afters))
    yield ("grad_input is cropped with [p:-p], which is empty where the padding is 0 (x[0:-0] has no "
           "elements): crop with [p:p + H]"), (p.n, p.c, *cropped)


def _pool_shapes(p: Any, vdir: str) -> Iterator[tuple[str, tuple[int, ...]]]:
    if vdir == "grad_input":
        yield from _minus_crop(p, (p.h, p.w), p.pads)
    if vdir != "forward":
        return
    if p.kh != p.kw and p.stride == (p.kh, p.kw):
        for k, which in ((p.kh, "kernel_size[0]"), (p.kw, "kernel_size[1]")):
            q = _replace(p, stride=(k, k))
            if q is not None:
                yield (f"the stride defaults to {which} = {k} on both axes: PyTorch's default stride is the "
                       f"whole kernel, ({p.kh}, {p.kw})"), q.shapes()["y"]
    variants = [("the padding is ignored", dict(padding=(0, 0))),
                ("the stride is ignored (taken as 1)", dict(stride=(1, 1))),
                ("the stride is taken as the kernel size (PyTorch's default when none is given)",
                 dict(stride=(p.kh, p.kw))),
                ("the stride's height and width are swapped", dict(stride=p.stride[::-1])),
                (f"the output size is rounded {'down (floor) where ceil_mode rounds up' if p.ceil_mode else 'up (ceil) where PyTorch rounds down'}",
                 dict(ceil_mode=not p.ceil_mode))]
    if p.op == "max_pool2d":
        variants.append(("the dilation is ignored (taken as 1)", dict(dilation=(1, 1))))
    for what, change in variants:
        q = _replace(p, **change)
        if q is not None:
            yield what, q.shapes()["y"]
    if p.ceil_mode:
        oh, ow = p.out_hw
        full = tuple(-(-(size + 2 * pad - d * (k - 1) - 1) // s) + 1 for size, k, s, d, pad in
                     zip((p.h, p.w), (p.kh, p.kw), p.stride, p.dil, p.padding))
        yield ("a last window that starts in the padding is kept: PyTorch drops it in ceil_mode",
               (p.n, p.c, *full))


def shape_cause(p: OpParams, vdir: str, got_shape: tuple[int, ...]) -> str | None:
    """The likely cause of a result of shape ``got_shape`` where ``vdir``'s shape is another, or None."""
    try:
        want = p.shapes()["y" if vdir == "forward" else vdir]
        got_shape = tuple(int(s) for s in got_shape)
        if got_shape == want:
            return None
        gen = {"conv2d": _conv_shapes, "conv1d": _conv_shapes}.get(p.op, _pool_shapes)
        # several mistakes can give one shape (stride 2 rounds one-sided and no padding alike): all are named
        named = [what for what, shape in gen(p, vdir) if tuple(shape) == got_shape and tuple(shape) != want]
        if named:
            return ", or ".join(dict.fromkeys(named))
        if sorted(got_shape) == sorted(want):
            hint = ", channels last" if len(want) >= 3 and got_shape == (want[0], *want[2:], want[1]) else ""
            return f"the right axes in another order{hint}: PyTorch's order is {want}"
        if math.prod(got_shape) == math.prod(want):
            return f"the right number of elements in another shape: reshape to {want}"
    except Exception:  # a diagnosis never takes a check down
        return None
    return None
