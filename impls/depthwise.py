"""Depthwise conv2d (one input channel per group): shifted sums of products over each channel's planes.

A depthwise layer has no GEMM worth the name (its inner dimension is ``kh*kw``), so this family
does what the hardware can do with NumPy alone: the image planes are zero-padded and split into
their stride phases once, channel by channel (a channel's planes of every image one after the
other), and the kernel taps that share a column offset are summed in one ``np.einsum`` call, a
fused multiply-add per tap over contiguous windows of those planes, for a cache-sized block of
channels at a time. See docs/fast-algorithms.md ("depthwise").
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from impls._fast_common import Geometry, geometry, phase_ranges, pool, scratch, workers, zero_border

__all__ = ["DepthwiseConv2d", "is_depthwise", "plane_geometry", "geometry_cells", "phase_taps", "blocks",
           "channel_blocks"]

#: elements of one array a block of the passes touches (a window, its output): 64 Ki float32
#: values, 256 KiB, so that a block's operands stay in the 512 KiB L2 of the AMD EPYC VM
_BLOCK_ELEMS = 1 << 16
#: positions per block from which one ``einsum`` sums all the taps of a phase (below, its outer
#: loops cost more than the passes it saves)
_FUSED_RUN = 4096
#: elements of work (outputs x taps) from which the blocks are shared with a second thread
_THREADED_WORK = 1 << 20

_Block = tuple[int, int, int, int]   # channels [c0, c1), positions [m0, m1) of their grids


def is_depthwise(p: Conv2dParams) -> bool:
    """One input channel per group (``groups == in_channels``), any depth multiplier."""
    return p.groups == p.c


@functools.lru_cache(maxsize=256)
def plane_geometry(p: Conv2dParams) -> Geometry:
    """The shifted-view geometry of every ``(image, channel)`` plane taken as an image of its own:
    each phase holds ``Hq*Wq`` cells per plane, and tap ``(u, v)`` of output ``(i, j)`` sits at
    offset ``off`` from position ``i*Wq + j`` of its phase.

    With stride 1 the planes share their padding: a plane is ``H + gr`` rows of ``W + gc``
    cells, its data at rows ``gr..`` and columns ``gc..``, where ``gr`` is the larger of the top
    and bottom padding (and at least ``OH - H``), ``gc`` likewise. A tap that reads past a row's
    right end reads the next row's leading zeros, one past a plane's last row the next plane's
    top rows (or the zeros after the last plane): 64 cells a plane instead of 81 at 7x7, 225
    instead of 256 at 14x14. Strided layers keep the padded phases of
    :func:`impls._fast_common.geometry`."""
    if p.stride != (1, 1):
        return geometry(dataclasses.replace(p, n=p.n * p.c, c=1, o=1, groups=1))
    (dh, dw), (oh, ow) = p.dilation, p.out_hw
    pt, _, pl, _ = p.pads
    gr, gc = _gaps(p)
    hq, wq = p.h + gr, p.w + gc
    taps = tuple((u, v, 0, (u * dh + gr - pt) * wq + v * dw + gc - pl) for u in range(p.kh) for v in range(p.kw))
    rows = p.n * p.c * hq * wq
    m = rows - hq * wq + (oh - 1) * wq + ow
    return Geometry(hq, wq, rows, m, max(0, max(t[3] for t in taps) + m - rows), ((0, 0),), taps)


def _gaps(p: Conv2dParams) -> tuple[int, int]:
    """Zero rows and columns between the planes of a stride-1 layer (:func:`plane_geometry`)."""
    oh, ow = p.out_hw
    pt, pb, pl, pr = p.pads
    return max(pt, pb, oh - p.h), max(pl, pr, ow - p.w)


def _ranges(p: Conv2dParams, a: int, b: int) -> tuple[slice, slice, slice, slice]:
    """Phase-image slices holding real input, and the input slices they hold."""
    if p.stride != (1, 1):
        return phase_ranges(p, a, b)
    gr, gc = _gaps(p)
    return slice(gr, gr + p.h), slice(gc, gc + p.w), slice(0, p.h), slice(0, p.w)


def geometry_cells(p: Conv2dParams) -> int:
    """Positions of one plane's output grid that every tap's pass covers (``Hq*Wq``)."""
    g = plane_geometry(p)
    return g.hq * g.wq


@dataclasses.dataclass(frozen=True)
class _Taps:
    """The kernel taps that read one phase: a rectangle of ``rows x cols`` taps, tap
    ``taps[i*cols + j]`` (index ``u*kw + v``) reading the phase at offset
    ``start + i*row + j*col`` from its output's position (``row`` a whole number of grid rows)."""

    phase: int
    start: int
    rows: int
    row: int
    cols: int
    col: int
    taps: tuple[int, ...]


@functools.lru_cache(maxsize=256)
def phase_taps(p: Conv2dParams) -> tuple[_Taps, ...]:
    """Per phase of :func:`plane_geometry`, its taps. Kernel rows ``u`` with ``u*dh`` in one
    residue mod ``sh`` are ``sh/gcd(dh, sh)`` apart, so their grid-row offsets ``u*dh // sh``
    are evenly spaced; columns likewise: every phase's taps form an evenly spaced rectangle."""
    g = plane_geometry(p)
    (sh, sw), (dh, dw) = p.stride, p.dilation
    off = {(u, v): o for u, v, _, o in g.taps}
    out = []
    for k, (pa, pb) in enumerate(g.phases):
        us = [u for u in range(p.kh) if u * dh % sh == pa]
        vs = [v for v in range(p.kw) if v * dw % sw == pb]
        start = off[us[0], vs[0]]
        row = off[us[1], vs[0]] - start if len(us) > 1 else 0
        col = off[us[0], vs[1]] - start if len(vs) > 1 else 0
        out.append(_Taps(k, start, len(us), row, len(vs), col, tuple(u * p.kw + v for u in us for v in vs)))
    return tuple(out)


def blocks(channels: int, span: int, elems: int) -> list[_Block]:
    """Blocks of at most ``elems`` grid positions: whole channels (``span`` positions each) while
    one fits, else one channel cut into equal runs of positions."""
    if span <= elems:
        return channel_blocks(channels, span, elems)
    parts = -(-span // elems)
    cuts = [span * i // parts for i in range(parts + 1)]
    return [(c, c + 1, a, b) for c in range(channels) for a, b in zip(cuts, cuts[1:])]


def channel_blocks(channels: int, span: int, elems: int) -> list[_Block]:
    """Blocks of whole channels (at least one), at most ``elems`` positions where one fits."""
    per = max(1, elems // span)
    return [(c, min(c + per, channels), 0, span) for c in range(0, channels, per)]


def _run_blocks(todo: list[_Block], work: int, fn) -> None:
    """``fn(block, tag)`` over the blocks, shared with a pool thread when there is enough work and
    more than one thread allowed (NumPy's einsum and ufunc loops release the GIL). The two halves
    write disjoint channels or positions; ``tag`` keeps their scratch apart."""
    if len(todo) > 1 and work >= _THREADED_WORK and workers() > 1:
        half = (len(todo) + 1) // 2

        def second() -> None:
            for blk in todo[half:]:
                fn(blk, "b")

        fut = pool().submit(second)
        try:
            for blk in todo[:half]:
                fn(blk, "a")
        finally:
            fut.result()
        return
    for blk in todo:
        fn(blk, "a")


def _window(flat: np.ndarray, start: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """A view of the 1-D contiguous ``flat`` from element ``start`` with ``shape`` and element
    ``strides`` (the windows of several taps, overlapping, no copy)."""
    it = flat.itemsize
    return np.ndarray(shape, flat.dtype, buffer=flat, offset=start * it, strides=tuple(st * it for st in strides))


def _tap_sum(dst: np.ndarray, terms: list[tuple[np.ndarray, int, _Taps, np.ndarray]], blk: _Block,
             span: int, tmp: np.ndarray) -> None:
    """``dst[c, m] = sum over terms (flat, start, taps, wts) of sum over i, j of
    flat[start + c*span + i*row + j*col + m] * wts[c, i, j]`` for the block's channels and
    positions. Runs of at least :data:`_FUSED_RUN` positions: one ``einsum`` per term over all its
    taps, iterated with the positions innermost (its fused multiply-add loop, one pass per tap);
    shorter runs: one ``einsum`` per column of taps (einsum's outer loops cost more there), the
    columns added in order. Either way a plain sum of products in a fixed order."""
    c0, c1, m0, m1 = blk
    nc, nm = c1 - c0, m1 - m0
    first = True
    for flat, start, t, wts in terms:
        base = start + c0 * span + m0
        if nm >= _FUSED_RUN:
            win = _window(flat, base, (nc, t.rows, t.cols, nm), (span, t.row, t.col, 1))
            np.einsum("cab,cabm->mc", wts[c0:c1], win, out=(dst if first else tmp).T, order="F")
            if not first:
                np.add(dst, tmp, out=dst)
            first = False
            continue
        for j in range(t.cols):
            win = _window(flat, base + j * t.col, (nc, t.rows, nm), (span, t.row, 1))
            np.einsum("ca,cam->cm", wts[c0:c1, :, j], win, out=dst if first else tmp)
            if not first:
                np.add(dst, tmp, out=dst)
            first = False


def _tail(g: Geometry) -> int:
    """Zeros after the last plane, so that every tap's window of a whole plane is in bounds."""
    return max(off for *_, off in g.taps)


def _planes(p: Conv2dParams, g: Geometry, x: np.ndarray, tag: str) -> np.ndarray:
    """NCHW ``x`` -> zero-padded stride phases of its planes, channel by channel:
    ``(phases, C*N*Hq*Wq + tail)``, plane ``(n, c)`` at ``(c*N + n)*Hq*Wq``. Copies whose inner
    runs are image rows (no transpose inside a plane)."""
    out = scratch(tag, (len(g.phases), g.rows + _tail(g)), x.dtype)
    out[:, g.rows:] = 0
    xs = x.transpose(1, 0, 2, 3)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = _ranges(p, a, b)
        img = out[k, :g.rows].reshape(p.c, p.n, g.hq, g.wq)
        zero_border(img, iq, jq)
        img[:, :, iq, jq] = xs[:, :, rs, cs]
    return out


def _tap_weights(p: Conv2dParams, w: np.ndarray, reverse: bool = False) -> list[np.ndarray]:
    """Per phase, ``(C, O/C, rows, cols)`` weights of its taps (both axes reversed for the adjoint,
    whose windows run backwards)."""
    wt = w.reshape(p.c, p.o // p.c, p.kh * p.kw)
    out = []
    for t in phase_taps(p):
        r = wt[:, :, list(t.taps)].reshape(p.c, p.o // p.c, t.rows, t.cols)
        out.append(r[:, :, ::-1, ::-1] if reverse else r)
    return out


def _work(p: Conv2dParams, g: Geometry) -> int:
    return p.n * p.o * g.hq * g.wq * len(g.taps)


def forward(p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """The forward (``y`` NCHW, fresh)."""
    g = plane_geometry(p)
    om, span = p.o // p.c, p.n * g.hq * g.wq
    oh, ow = p.out_hw
    ph = _planes(p, g, x, "dw_x")
    taps = phase_taps(p)
    wts = _tap_weights(p, w)
    ys = scratch("dw_y", (p.c, om, span), x.dtype)

    def block(blk: _Block, tag: str) -> None:
        c0, c1, m0, m1 = blk
        tmp = scratch(f"dw_tmp{tag}", (c1 - c0, m1 - m0), x.dtype)
        for j in range(om):
            terms = [(ph[t.phase], t.start, t, wt[:, j]) for t, wt in zip(taps, wts)]
            _tap_sum(ys[c0:c1, j, m0:m1], terms, blk, span, tmp)

    _run_blocks(blocks(p.c, span, _BLOCK_ELEMS), _work(p, g), block)
    src = ys.reshape(p.o, p.n, g.hq, g.wq)[:, :, :oh, :ow].transpose(1, 0, 2, 3)
    y = np.empty((p.n, p.o, oh, ow), x.dtype)
    if b is not None:
        np.add(src, b.reshape(-1, 1, 1), out=y)
    else:
        np.copyto(y, src)
    return y


def _dy_grid(p: Conv2dParams, g: Geometry, dy: np.ndarray) -> tuple[np.ndarray, int]:
    """``dY`` laid on each plane's ``(Hq, Wq)`` output grid, channel by channel as the input's
    planes, zeros past ``OH``/``OW``, after a zero margin of the largest tap offset:
    ``(O/C, margin + C*N*Hq*Wq)``, and the margin."""
    om = p.o // p.c
    oh, ow = p.out_hw
    margin = _tail(g)
    grid = scratch("dw_dy", (om, margin + g.rows), dy.dtype)
    grid[:, :margin] = 0
    view = grid[:, margin:].reshape(om, p.c, p.n, g.hq, g.wq)
    zero_border(view, slice(0, oh), slice(0, ow))
    view[:, :, :, :oh, :ow] = dy.reshape(p.n, p.c, om, oh, ow).transpose(2, 1, 0, 3, 4)
    return grid, margin


def _grad_weight(p: Conv2dParams, g: Geometry, ph: np.ndarray, dy: np.ndarray, grid: np.ndarray,
                 margin: int, finite: bool) -> np.ndarray:
    """``(O, 1, kh, kw)``: per channel and tap the dot product of ``dY`` with the window of ``x``
    the tap read, over every image at once (a channel's planes are contiguous). With every input
    value finite, over the whole grids (the thrown-away positions hold zeros in ``grid``: they add
    exact zeros), one ``einsum`` per group of taps; else per tap over the real outputs only, so
    that a NaN or inf only thrown-away outputs would read stays out, as in the oracle."""
    om, span = p.o // p.c, p.n * g.hq * g.wq
    oh, ow = p.out_hw
    taps = phase_taps(p)
    dwp = np.empty((p.c, om, p.kh * p.kw), dy.dtype)
    dyp = dy.reshape(p.n, p.c, om, oh, ow).transpose(1, 2, 0, 3, 4)

    def block(blk: _Block, tag: str) -> None:
        c0, c1, _, _ = blk
        for t in taps:
            win = _window(ph[t.phase], t.start + c0 * span, (c1 - c0, t.rows, t.cols, span), (span, t.row, t.col, 1))
            for j in range(om):
                if finite:
                    d = grid[j, margin + c0 * span:margin + c1 * span].reshape(c1 - c0, span)
                    for b in range(t.cols):   # a column at a time: 4-D views iterated slower
                        dwp[c0:c1, j, list(t.taps[b::t.cols])] = np.einsum("cm,cam->ca", d, win[:, :, b])
                    continue
                for i, tap in enumerate(t.taps):
                    src = win[:, i // t.cols, i % t.cols].reshape(c1 - c0, p.n, g.hq, g.wq)[:, :, :oh, :ow]
                    np.einsum("cnij,cnij->c", dyp[c0:c1, j], src, out=dwp[c0:c1, j, tap])

    _run_blocks(channel_blocks(p.c, span, _BLOCK_ELEMS), _work(p, g), block)
    return dwp.reshape(p.o, 1, p.kh, p.kw)


def _grad_input(p: Conv2dParams, g: Geometry, dy: np.ndarray, w: np.ndarray, grid: np.ndarray,
                margin: int) -> np.ndarray:
    """The adjoint, gathered from ``grid`` (:func:`_dy_grid`): phase ``k`` of the padded input
    gradient at position ``q`` is ``sum over its taps of grid[q - off] * w``, shifted sums like
    the forward's over the groups' windows taken backwards (the grid's zero rows and columns
    absorb the windows that run past a plane's edge). The phases are folded back to NCHW."""
    om, span = p.o // p.c, p.n * g.hq * g.wq
    taps = phase_taps(p)
    wts = _tap_weights(p, w, reverse=True)
    dph = scratch("dw_dx", (len(g.phases), p.c, span), dy.dtype)

    def block(blk: _Block, tag: str) -> None:
        c0, c1, m0, m1 = blk
        tmp = scratch(f"dw_tmp{tag}", (c1 - c0, m1 - m0), dy.dtype)
        for t, wt in zip(taps, wts):
            last = t.start + (t.rows - 1) * t.row + (t.cols - 1) * t.col
            terms = [(grid[j], margin - last, t, wt[:, j]) for j in range(om)]
            _tap_sum(dph[t.phase, c0:c1, m0:m1], terms, blk, span, tmp)

    _run_blocks(blocks(p.c, span, _BLOCK_ELEMS), _work(p, g), block)
    covered = len(g.phases) == p.stride[0] * p.stride[1]
    dx = (np.empty if covered else np.zeros)((p.n, p.c, p.h, p.w), dy.dtype)
    dxs = dx.transpose(1, 0, 2, 3)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = _ranges(p, a, b)
        dxs[:, :, rs, cs] = dph[k].reshape(p.c, p.n, g.hq, g.wq)[:, :, iq, jq]
    return dx
@register(op="conv2d", name="depthwise", backend="numpy", device="cpu", exact=True, algorithm="direct",
          description="depthwise conv2d (groups == in_channels): per image plane, zero-padded stride "
                      "phases and one contiguous element-wise multiply-add per kernel tap, in "
                      "cache-sized blocks of planes shared by two threads")
class DepthwiseConv2d(Implementation):
    """Depthwise conv2d by shifted multiply-adds over each ``(image, channel)`` plane.

    Every plane is copied once, zero-padded and split into its stride phases (``Hq x Wq`` each,
    planes one after the other, so NCHW needs no transpose). Output ``(i, j)`` of a plane is
    computed at position ``i*Wq + j`` of its grid, and kernel tap ``(u, v)`` reads, for all the
    outputs of a block of planes at once, one contiguous window of its phase shifted by the tap's
    offset: one ``multiply`` by the per-plane weight and one ``add`` per tap, over blocks of planes
    that stay in cache, shared by two threads on large layers. The columns past ``OW`` are cropped.

    Backward: ``grad_weight`` is one dot product per plane and tap over the real outputs (summed
    over the batch); ``grad_input`` gathers ``dY`` laid on the same grids into each phase of the
    padded input by the same shifted multiply-adds, then folds the phases back to NCHW. Any
    stride, dilation, padding and depth multiplier (``out_channels`` a multiple of
    ``in_channels``); every result is a plain sum of products, held to the exact tier.

    Parameters
    ----------
    None

    Notes
    -----
    Layers with more than one input channel per group are ``unsupported``: they are GEMMs
    (``shift_gemm``). See docs/fast-algorithms.md ("depthwise").
    """

    def unsupported(self, p: Conv2dParams, dtype: str, direction: str) -> str | None:
        base = super().unsupported(p, dtype, direction)
        if base is not None:
            return base
        if not is_depthwise(p):
            return (f"depthwise needs one input channel per group (groups == in_channels); "
                    f"got groups={p.groups}, in_channels={p.c}")
        return None

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return forward(p, x, w, b)

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        g = plane_geometry(p)
        grid, margin = _dy_grid(p, g, dy)
        finite = bool(np.isfinite(x).all())
        dw = _grad_weight(p, g, _planes(p, g, x, "dw_x"), dy, grid, margin, finite)
        dx = _grad_input(p, g, dy, w, grid, margin)
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return dx, dw, db
