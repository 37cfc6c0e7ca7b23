"""Likely causes: a failed check names the classic mistake the wrong result matches.

A student whose conv2d fails sees ``expected 113, got -12`` and has to guess why. Most wrong
results are the right answer to a slightly different question: the kernel flipped (a true
convolution), the bias left out, a mean where PyTorch sums, one sample left out of the batch
sum, the padding taking part in a max. For each such mistake this module recomputes the float64
reference as the mistake would have it and, where the implementation's result equals that to
within the check's own bound at every element, the failure says so (``likely cause: ...``).
Where no recomputed mistake matches, a few patterns of *where* the result is wrong are named
instead (only at outputs whose window reaches into the padding, only in some samples, only at
input positions that several windows read). A wrong shape is matched the same way against the
shapes of the usual mistakes (padding ignored, stride axes swapped, the padding not cropped from
``grad_input``, channels last, ...).

Nothing here decides pass or fail: a cause is said only for a result that has already failed,
and only when it matches everywhere, so a mistake no suspect models gets no cause rather than a
wrong one. Nothing here raises: a suspect that cannot be computed is passed over.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterator

import numpy as np

from convbench._errors import ParamError
from convbench.ops import OpParams, get_op
from convbench.verify.diagnose_shapes import shape_cause

__all__ = ["value_cause", "suspect_results", "shape_cause", "SLACK"]

#: a suspect matches when the result is within SLACK times the check's bound of it everywhere:
#: a wrong suspect misses by orders of magnitude, so the slack only absorbs rounding differences
#: between the suspect's float64 recomputation and the implementation's own arithmetic
SLACK = 4.0
#: and a suspect must miss the reference by more than DISTINCT times that somewhere, so that a
#: result a few bounds off (rounding, noise) is never read as a mistake that changes little
DISTINCT = 25.0
#: and besides, each element may differ from the suspect by ROUNDING units of the result's dtype in
#: its own magnitude: the suspect's sums, rounded in the implementation's dtype, where the reference
#: sums nothing and its bound allows no rounding (a max pool's gradient without overlapping windows,
#: recomputed as a backward whose windows overlap)
ROUNDING = 16.0
#: recomputing the reference several times is skipped for cases larger than this (input and
#: output elements together); the patterns of where it is wrong are still named
MAX_ELEMENTS = 2_000_000

Results = dict[str, np.ndarray]
Suspect = Callable[[Any, dict[str, np.ndarray], str], Iterator[tuple[str, Results]]]


# --- helpers ---------------------------------------------------------------------------------

def _ref(p: OpParams, inputs: dict[str, np.ndarray], direction: str) -> Results:
    spec = get_op(p.op)
    if direction == "forward":
        return {"forward": spec.reference_forward(p, *[inputs.get(k) for k in spec.forward_inputs])}
    grads = spec.reference_backward(p, *[inputs.get(k) for k in spec.backward_inputs])
    return {g: v for g, v in zip(spec.grads, grads) if v is not None}


def _with(inputs: dict[str, np.ndarray], **changed: Any) -> dict[str, np.ndarray]:
    return {**inputs, **changed}


def _replace(p: OpParams, **changes: Any) -> OpParams | None:
    try:
        return dataclasses.replace(p, **changes)
    except (ParamError, TypeError, ValueError):
        return None


def _flip(a: np.ndarray) -> np.ndarray:
    """A kernel rotated by 180 degrees: every axis after (out, in) reversed."""
    return np.ascontiguousarray(a[(slice(None), slice(None)) + (slice(None, None, -1),) * (a.ndim - 2)])


def _elements(p: OpParams) -> int:
    return sum(math.prod(s) for s in p.shapes().values())


# --- suspects: the reference recomputed as a classic mistake would have it -------------------

def _conv_suspects(p: Any, inputs: dict[str, np.ndarray], direction: str) -> Iterator[tuple[str, Results]]:
    w = inputs["w"]
    axes = "w[..., ::-1, ::-1]" if w.ndim == 4 else "w[..., ::-1]"
    wf = _flip(w)
    if direction == "forward":
        yield (f"the kernel is flipped ({axes}): a true convolution, where {p.op} is PyTorch's "
               "cross-correlation, which reads the weight as it is"), _ref(p, _with(inputs, w=wf), "forward")
        if p.bias:
            yield "the bias is not added", _ref(p, _with(inputs, b=None), "forward")
            yield "the bias is added twice", _ref(p, _with(inputs, b=2 * np.asarray(inputs["b"], np.float64)), "forward")
            products = math.prod(w.shape[1:])  # C/groups * kh * kw: the products summed into one output
            if products > 2:
                yield (f"the bias is added once per product, {products} times (C/groups*kh*kw), as np.sum(window "
                       "* w + b) does: add it once to each output, after the sum"),\
                    _ref(p, _with(inputs, b=products * np.asarray(inputs["b"], np.float64)), "forward")
    else:
        flipped = _ref(p, _with(inputs, w=wf), "backward")
        yield (f"the gradients are those of the kernel flipped ({axes}), a true convolution: "
               f"{p.op} is PyTorch's cross-correlation"),\
            {**flipped, "grad_weight": _flip(flipped["grad_weight"])}
        ref = _ref(p, inputs, "backward")
        yield (f"grad_weight is flipped ({axes.replace('w', 'grad_weight')}): each tap's gradient "
               "belongs to the tap the forward multiplied by it"), {"grad_weight": _flip(ref["grad_weight"])}
        yield (f"grad_input is computed with the kernel flipped ({axes}) against the forward: the "
               "backward must scatter dy through the same taps the forward read"), {"grad_input": flipped["grad_input"]}
        n = inputs["x"].shape[0]
        if n > 1:
            for sel, what in ((slice(1, None), "sample 0 is left out of the sum over the batch"),
                              (slice(None, -1), "the last sample is left out of the sum over the batch"),
                              (slice(None, 1), "only sample 0 is in it: the batch is not summed"),
                              (slice(-1, None), "only the last sample is in it: each sample overwrites "
                                                "the gradient instead of adding to it (+=)")):
                sub = _replace(p, n=len(range(n)[sel]))
                if sub is not None:
                    got = _ref(sub, {k: inputs[k][sel] if k in ("x", "dy") else v for k, v in inputs.items()},
                               "backward")
                    yield what, {k: v for k, v in got.items() if k in ("grad_weight", "grad_bias")}
        last_only = np.zeros_like(np.asarray(inputs["dy"], np.float64))
        last = (-1, slice(None)) + (-1,) * (last_only.ndim - 2)
        last_only[last] = inputs["dy"][last]
        yield ("grad_weight is assigned (=) for each window, not added (+=): only the last window's "
               "product is left"), {"grad_weight": _ref(p, _with(inputs, dy=last_only), "backward")["grad_weight"]}
        if w.ndim == 4:
            for order, what in (("tap", "kernel tap"), ("window", "window")):
                yield (f"overlapping windows' contributions to grad_input are assigned, not added: the last "
                       f"{what} written wins (col2im needs +=)"), {"grad_input": _assigned_grad_input(p, inputs, order)}
    for field in ("dilation", "stride"):
        yield from _ignored(p, inputs, direction, field, _IGNORED[field])
    if w.ndim == 4 and p.kh == p.kw and p.kh > 1:
        yield ("the kernel is transposed (w[o, c, v, u] for w[o, c, u, v]): its rows and columns are "
               "read the wrong way round"), _ref(p, _with(inputs, w=np.ascontiguousarray(w.transpose(0, 1, 3, 2))),
                                                 direction)
    cg, taps = w.shape[1], math.prod(w.shape[2:])
    if cg > 1 and taps > 1:
        # an im2col whose patch columns run (taps, channels) against a weight flattened
        # (channels, taps), or the other way round: the GEMM pairs each patch value with another
        # weight of the same filter
        o, ks = w.shape[0], w.shape[2:]
        for eff in (w.reshape(o, *ks, cg).transpose(0, w.ndim - 1, *range(1, w.ndim - 1)),
                    w.transpose(0, *range(2, w.ndim), 1).reshape(w.shape)):
            got = _ref(p, _with(inputs, w=np.ascontiguousarray(eff)), direction)
            yield ("the patch matrix's columns and the flattened weight are in different orders (taps "
                   "then channels against channels then taps, as w.reshape(O, -1) is): each patch value "
                   "meets another weight of its filter"), {k: v for k, v in got.items() if k != "grad_weight"}
    if p.groups == 1 and p.c == p.o and p.c > 1:
        yield (f"the weight's first two axes are read the wrong way round (w[c, o] for w[o, c]): PyTorch's "
               f"weight is (out_channels, in_channels/groups, {'kh, kw' if w.ndim == 4 else 'k'})"),\
            _ref(p, _with(inputs, w=np.ascontiguousarray(np.swapaxes(w, 0, 1))), direction)


_IGNORED = {"dilation": ("the dilation is ignored: the kernel's taps read consecutive positions",
                         "the dilation is ignored: the gradients are those of taps on consecutive positions"),
            "stride": ("the stride is ignored in the indexing (output i reads from i + u, not i*stride + u), "
                       "though the output size is right",
                       "the stride is ignored in the indexing (output i taken to read from i + u, not "
                       "i*stride + u): the gradients are those of that forward")}
#: the same for a pooling window: its start ``vert_start = h`` where ``h * stride`` belongs
_POOL_STRIDE_IGNORED = ("the stride is ignored in the indexing: window (i, j) starts at (i, j), not (i*stride, "
                        "j*stride), though the output size is right",
                        "the backward ignores the stride: window (i, j) taken to start at (i, j), not (i*stride, "
                        "j*stride) (vert_start = h where h * stride belongs)")


def _ignored(p: Any, inputs: dict[str, np.ndarray], direction: str, field: str,
             what: tuple[str, str]) -> Iterator[tuple[str, Results]]:
    """``field`` (stride or dilation) ignored where the output size is right: the convolution
    with that field 1 gives the same outputs for its first ``OH x OW`` (and, backward, the
    gradients of that forward, ``dy`` put in those outputs)."""
    value = getattr(p, field)
    vals = value if isinstance(value, tuple) else (value,)
    if all(v == 1 for v in vals):
        return
    pads, padding = p.pads, p.padding
    if isinstance(padding, str):  # 'same': the padding of the dilated kernel, as numbers
        if pads[0::2] != pads[1::2]:
            return
        padding = pads[0] if len(pads) == 2 else (pads[0], pads[2])
    q = _replace(p, **{field: (1,) * len(vals) if isinstance(value, tuple) else 1}, padding=padding)
    if q is None:
        return
    crop = (Ellipsis, *(slice(0, s) for s in p.shapes()["y"][2:]))
    if direction == "forward":
        yield what[0], {"forward": _ref(q, inputs, "forward")["forward"][crop]}
        return
    dy = np.zeros(q.shapes()["dy"])
    dy[crop] = inputs["dy"]
    yield what[1], _ref(q, _with(inputs, dy=dy), "backward")


def _assigned_grad_input(p: Any, inputs: dict[str, np.ndarray], order: str) -> np.ndarray:
    """conv2d's grad_input with each contribution assigned (``=``) into the padded buffer, one
    kernel tap at a time (``order='tap'``, a col2im over taps) or one output window at a time
    (``'window'``, raster order): what a col2im without ``+=`` returns."""
    dy, w = np.asarray(inputs["dy"], np.float64), np.asarray(inputs["w"], np.float64)
    pt, pb, pl, pr = p.pads
    (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
    cg, og = p.c // p.groups, p.o // p.groups
    dxp = np.zeros((p.n, p.c, p.h + pt + pb, p.w + pl + pr))
    for gi in range(p.groups):
        ci, oi = slice(gi * cg, (gi + 1) * cg), slice(gi * og, (gi + 1) * og)
        # contribution of output (i, j) through tap (u, v): (n, c, u, v, i, j)
        part = np.einsum("nohw,ocuv->ncuvhw", dy[:, oi], w[oi])
        if order == "tap":
            for u in range(p.kh):
                for v in range(p.kw):
                    dxp[:, ci, u * dh:u * dh + sh * (oh - 1) + 1:sh, v * dw:v * dw + sw * (ow - 1) + 1:sw] = part[:, :, u, v]
        else:
            for i in range(oh):
                for j in range(ow):
                    dxp[:, ci, i * sh:i * sh + dh * (p.kh - 1) + 1:dh, j * sw:j * sw + dw * (p.kw - 1) + 1:dw] = part[..., i, j]
    return dxp[:, :, pt:pt + p.h, pl:pl + p.w]


def _pool_padding_suspect(p: Any, inputs: dict[str, np.ndarray], direction: str) -> Iterator[tuple[str, Results]]:
    """The padding taken as zeros that take part (a max of zeros; an average over them)."""
    ph, pw = p.padding
    if not (ph or pw) or p.ceil_mode:
        return
    q = _replace(p, h=p.h + 2 * ph, w=p.w + 2 * pw, padding=(0, 0))
    if q is None or q.out_hw != p.out_hw:
        return
    xp = np.pad(np.asarray(inputs["x"], np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    got = _ref(q, _with(inputs, x=xp), direction)
    if direction == "backward":
        got["grad_input"] = got["grad_input"][:, :, ph:ph + p.h, pw:pw + p.w]
    what = ("the padding takes part as zeros: max pooling pads with -inf, so the padding never wins"
            if p.op == "max_pool2d" else "the padding takes part as zeros and the divisor counts it")
    yield what, got


def _max_pool_suspects(p: Any, inputs: dict[str, np.ndarray], direction: str) -> Iterator[tuple[str, Results]]:
    yield from _pool_padding_suspect(p, inputs, direction)
    yield from _ignored(p, inputs, direction, "stride", _POOL_STRIDE_IGNORED)
    if direction != "backward":
        return
    spec = get_op(p.op)
    x = np.asarray(inputs["x"], np.float64)
    dy = np.asarray(inputs["dy"], np.float64).reshape(p.n * p.c, *p.out_hw)
    every, last, put, wput = (np.zeros((p.n * p.c, p.h, p.w)) for _ in range(4))
    nc = np.arange(p.n * p.c)
    for i, j, rows, cols, win, am in spec._windows(p, x):
        if win is None:
            continue
        r_am, c_am = np.asarray(rows)[am // len(cols)], np.asarray(cols)[am % len(cols)]
        put[nc, r_am, c_am] = dy[:, i, j]
        ri, ci = np.ix_(rows, cols)
        wput[:, ri, ci] = 0.0
        wput[nc, r_am, c_am] = dy[:, i, j]
        top = win == np.nanmax(win, axis=1, keepdims=True)
        for k in range(win.shape[1]):
            r, c = rows[k // len(cols)], cols[k % len(cols)]
            every[:, r, c] += np.where(top[:, k], dy[:, i, j], 0.0)
        k_last = win.shape[1] - 1 - np.argmax(top[:, ::-1], axis=1)
        last[nc, np.asarray(rows)[k_last // len(cols)], np.asarray(cols)[k_last % len(cols)]] += dy[:, i, j]
    shape = (p.n, p.c, p.h, p.w)
    yield ("the gradient goes to every tied maximum of a window: PyTorch gives it to one, the first "
           "in window order"), {"grad_input": every.reshape(shape)}
    yield ("the gradient goes to the last of tied maxima: PyTorch gives it to the first in window "
           "order (a strict > when scanning)"), {"grad_input": last.reshape(shape)}
    yield ("the gradient is assigned (=) at each window's maximum, not added (+=): where overlapping "
           "windows share a maximum, only the last window's gradient is left"), {"grad_input": put.reshape(shape)}
    yield ("each window's gradient is assigned (=) over the whole window (a mask times dy), not added: "
           "a later overlapping window overwrites what an earlier one put there"), {"grad_input": wput.reshape(shape)}


def _avg_pool_suspects(p: Any, inputs: dict[str, np.ndarray], direction: str) -> Iterator[tuple[str, Results]]:
    if p.divisor_override is None:
        if any(p.padding):
            q = _replace(p, count_include_pad=not p.count_include_pad)
            if q is not None:
                yield (f"the divisor {'leaves out' if p.count_include_pad else 'counts'} the padding: the case "
                       f"has count_include_pad={p.count_include_pad}"), _ref(q, inputs, direction)
        q = _replace(p, divisor_override=p.kh * p.kw)
        if q is not None:
            yield (f"every window is divided by kh*kw = {p.kh * p.kw}: a window clipped at the edge is "
                   "divided by the elements it covers (count_include_pad decides whether padding counts)"),\
                _ref(q, inputs, direction)
    yield from _pool_padding_suspect(p, inputs, direction)
    yield from _ignored(p, inputs, direction, "stride", _POOL_STRIDE_IGNORED)


SUSPECTS: dict[str, Suspect] = {"conv2d": _conv_suspects, "conv1d": _conv_suspects,
                                "max_pool2d": _max_pool_suspects, "avg_pool2d": _avg_pool_suspects}


# --- patterns: where the result is wrong ----------------------------------------------------

def _scales(p: Any) -> list[tuple[str, int]]:
    """The factors a mean-for-a-sum mistake (or the reverse) divides or multiplies by."""
    y = p.shapes()["y"]
    window = p.k if p.op == "conv1d" else p.kh * p.kw
    return [("N times the output positions per channel", y[0] * math.prod(y[2:])),
            ("the output positions per channel", math.prod(y[2:])), ("N, the batch size", y[0]),
            ("the window size" if p.op.endswith("pool2d") else "the kernel's taps", window)]


def _scale_cause(p: OpParams, g: np.ndarray, exp: np.ndarray, tol: np.ndarray) -> str | None:
    """The whole result off by one constant factor (a mean for a sum, a sign)."""
    ee = float(np.sum(exp * exp))
    if ee == 0 or not np.isfinite(g).all():
        return None
    c = float(np.sum(g * exp)) / ee
    if c == 0 or not (np.abs(g - c * exp) <= tol * max(1.0, abs(c))).all():
        return None
    if not _far(c * exp, exp, tol):  # c is 1 to within the bound: no scaling to speak of
        return None
    if abs(c + 1) < 1e-3:
        return "every element has the wrong sign"
    for name, k in _scales(p):
        if k > 1 and abs(c * k - 1) < 1e-3:
            return f"every element is 1/{k} of the reference ({k} = {name}): a mean where it is a sum"
        if k > 1 and abs(c / k - 1) < 1e-3:
            return f"every element is {k} times the reference ({k} = {name}): a sum where it is a mean"
    return f"every element is {c:.6g} times the reference"


def _window_reaches_padding(p: Any) -> np.ndarray | None:
    """Per output position (spatial axes), whether its window meets the padding."""
    if p.op in ("conv2d", "conv1d"):
        if not any(p.pads):
            return None
        q = _replace(p, n=1, c=p.c // p.groups, o=1, groups=1, bias=False)
        spec = get_op(p.op)
        sh = q.shapes()
        full = math.prod(sh["w"])
        cover = spec.reference_forward(q, np.ones(sh["x"]), np.ones(sh["w"]))[0, 0]
        return cover < full
    if p.op in ("max_pool2d", "avg_pool2d"):
        if not any(p.padding):
            return None
        oh, ow = p.out_hw
        ph, pw = p.padding
        (sh, sw), (dh, dw) = p.stride, p.dil
        rows = np.array([any(not 0 <= i * sh - ph + u * dh < p.h for u in range(p.kh)) for i in range(oh)])
        cols = np.array([any(not 0 <= j * sw - pw + v * dw < p.w for v in range(p.kw)) for j in range(ow)])
        return rows[:, None] | cols[None, :]
    return None


def _reads(p: Any) -> np.ndarray | None:
    """Per input position (spatial axes), how many (output, tap) pairs read it (convolutions)."""
    if p.op not in ("conv2d", "conv1d"):
        return None
    q = _replace(p, n=1, c=1, o=1, groups=1, bias=False)
    sh = q.shapes()
    return get_op(p.op).reference_backward(q, np.ones(sh["dy"]), np.zeros(sh["x"]), np.ones(sh["w"]))[0][0, 0]


def _where_cause(p: OpParams, vdir: str, bad: np.ndarray) -> str | None:
    """Named patterns of the wrong elements: a proper part of the result, told by position."""
    if not bad.any() or bad.all():
        return None
    if vdir in ("forward", "grad_input") and bad.shape[0] > 1:
        samples = np.nonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0]
        if len(samples) < bad.shape[0]:
            which = ", ".join(str(int(s)) for s in samples[:5]) + (", ..." if len(samples) > 5 else "")
            return f"only sample(s) {which} of the batch are wrong, the others are right"
    spatial = bad.reshape(*bad.shape[:2], -1).any(axis=(0, 1)).reshape(bad.shape[2:])
    if vdir == "forward":
        edge = _window_reaches_padding(p)
        if edge is not None and edge.any() and not edge.all() and not (spatial & ~edge).any():
            return ("only outputs whose window reaches into the padding are wrong: check how the "
                    "input is padded (amount, sides, the value padded with)")
    if vdir == "grad_input":
        reads = _reads(p)
        if reads is not None:
            shared = reads > 1
            if shared.any() and not shared.all() and not (spatial & ~shared).any():
                return ("only input positions that more than one window reads are wrong: their "
                        "contributions must be added (+=), not assigned (col2im)")
            unread = reads == 0
            if unread.any() and not (spatial & ~unread).any():
                return ("only input positions that no window reads are wrong (the stride or "
                        "dilation skips them): their gradient is 0")
    return None


def _telling(alt: np.ndarray | None, g: np.ndarray, exp: np.ndarray, tol: np.ndarray, eps: float = 0.0) -> bool:
    """``g`` matches ``alt`` everywhere, and ``alt`` is told apart from the reference (a mistake
    that leaves this result as it is, like a transposed kernel for ``grad_weight``, names nothing;
    neither does an all-zero suspect: that is said as such)."""
    return (alt is not None and alt.shape == g.shape and bool(alt.any())
            and bool((np.abs(g - alt) <= tol + ROUNDING * eps * np.abs(alt)).all()) and _far(alt, exp, tol))


def _far(alt: np.ndarray, exp: np.ndarray, tol: np.ndarray) -> bool:
    """``alt`` differs from the reference by far more than the tolerance somewhere: a result
    within the tolerance of both must not be read as the mistake (a real mistake misses the
    reference by thousands of bounds, rounding and noise by a few)."""
    return not bool((np.abs(exp - alt) <= DISTINCT * tol).all())


def suspect_results(p: OpParams, inputs: dict[str, np.ndarray], direction: str) -> list[tuple[str, Results]]:
    """Every suspect's recomputed results for one call (``direction`` on ``inputs``): what
    :func:`value_cause` compares each failed value direction of that call with, computed once for
    all of them. Empty above :data:`MAX_ELEMENTS`, and where a suspect cannot be computed."""
    if _elements(p) > MAX_ELEMENTS or p.op not in SUSPECTS:
        return []
    try:
        return list(SUSPECTS[p.op](p, inputs, direction))
    except Exception:  # a diagnosis never takes a check down
        return []


def value_cause(p: OpParams, inputs: dict[str, np.ndarray], direction: str, vdir: str, got: Any,
                exp: np.ndarray, bnd: np.ndarray,
                suspects: list[tuple[str, Results]] | None = None) -> str | None:
    """The likely cause of a failed value check, or None.

    Parameters
    ----------
    p, inputs, direction :
        The case, the inputs the implementation was given and the contract direction
        (``forward`` or ``backward``).
    vdir : str
        The value direction that failed (``forward``, ``grad_input``, ...).
    got, exp : array
        The implementation's result and the reference, of the same shape.
    bnd : array
        The check's elementwise bound on ``|got - exp|`` (for the exact tier, the direct
        method's bound: a suspect's recomputation may round where the exact fill did not).
    suspects : list, optional
        :func:`suspect_results` of this call, when the caller has them (several value directions
        of one backward failed); computed here otherwise.
    """
    try:
        g = np.asarray(got, np.float64)
        if g.shape != exp.shape:
            return None
        tol = SLACK * np.broadcast_to(bnd, exp.shape)
        if exp.any() and not g.any():
            return "it is all zeros: never written, or returned before it is filled"
        if suspects is None:
            suspects = suspect_results(p, inputs, direction)
        # every mistake that gives this result is named (at batch 2, "sample 0 left out" and
        # "only the last sample" are one result)
        dt = np.asarray(got).dtype
        eps = float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0
        named = [what for what, alt in suspects if _telling(alt.get(vdir), g, exp, tol, eps)]
        if named:
            return ", or ".join(dict.fromkeys(named))
        scale = _scale_cause(p, g, exp, tol)
        if scale:
            return scale
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(g - exp) <= tol)
        return _where_cause(p, vdir, bad)
    except Exception:  # a diagnosis never takes a check down
        return None
