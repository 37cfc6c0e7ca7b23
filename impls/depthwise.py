"""Depthwise conv2d (one input channel per group): shifted multiply-adds over each image plane.

A depthwise layer has no GEMM worth the name (its inner dimension is ``kh*kw``), so this family
does what the hardware can do with NumPy alone: every ``(image, channel)`` plane is zero-padded
and split into its stride phases once, and each kernel tap is one element-wise multiply-add of a
contiguous window of those planes by the tap's weight, for a cache-sized block of planes at a
time. See docs/fast-algorithms.md ("depthwise").
"""
from __future__ import annotations

import dataclasses

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from impls._fast_common import Geometry, geometry, phase_ranges, pool, scratch, workers, zero_border

__all__ = ["DepthwiseConv2d", "is_depthwise", "plane_geometry", "geometry_cells", "block_planes"]

#: bytes of the planes one block of the element-wise passes touches (source window, output,
#: product): within the 512 KiB L2 of the AMD EPYC VM (blocks of 128 KiB-2 MiB measured; 128 KiB lost)
_BLOCK_BYTES = 512 << 10
#: elements of work (outputs x taps) from which the blocks are shared with a second thread
_THREADED_WORK = 1 << 20


def is_depthwise(p: Conv2dParams) -> bool:
    """One input channel per group (``groups == in_channels``), any depth multiplier."""
    return p.groups == p.c


def plane_geometry(p: Conv2dParams) -> Geometry:
    """The shifted-view geometry of every ``(image, channel)`` plane taken as an image of its own:
    plane ``r`` occupies ``[r*L, (r+1)*L)`` of each phase, ``L = Hq*Wq``, and tap ``(u, v)`` of
    output ``(i, j)`` sits at offset ``off`` from position ``i*Wq + j`` of its phase."""
    return geometry(dataclasses.replace(p, n=p.n * p.c, c=1, o=1, groups=1))


def geometry_cells(p: Conv2dParams) -> int:
    """Positions of one plane's output grid that every tap's pass covers (``Hq*Wq``)."""
    g = plane_geometry(p)
    return g.hq * g.wq


def block_planes(plane: int, itemsize: int) -> int:
    """Planes per block: a source window, an output and a product of ``plane`` elements each
    within :data:`_BLOCK_BYTES` (at least one plane)."""
    return max(1, _BLOCK_BYTES // (3 * plane * itemsize))


def _blocks(planes: int, per: int) -> list[tuple[int, int]]:
    return [(s, min(s + per, planes)) for s in range(0, planes, per)]


def _run_blocks(blocks: list[tuple[int, int]], work: int, fn) -> None:
    """``fn(start, stop, tag)`` over the blocks, shared with a pool thread when there is enough
    work and more than one thread allowed (NumPy's ufunc loops release the GIL). The two halves
    write disjoint planes; ``tag`` keeps their scratch apart."""
    if len(blocks) > 1 and work >= _THREADED_WORK and workers() > 1:
        half = (len(blocks) + 1) // 2

        def second() -> None:
            for s, e in blocks[half:]:
                fn(s, e, "b")

        fut = pool().submit(second)
        try:
            for s, e in blocks[:half]:
                fn(s, e, "a")
        finally:
            fut.result()
        return
    for s, e in blocks:
        fn(s, e, "a")


def _tail(g: Geometry) -> int:
    """Zeros after the last plane, so that every tap's window of a whole plane is in bounds."""
    return max(off for *_, off in g.taps)


def _planes(p: Conv2dParams, g: Geometry, x: np.ndarray, tag: str) -> np.ndarray:
    """NCHW ``x`` -> zero-padded stride phases of its planes, ``(phases, N*C*L + extra)``: copies
    whose inner runs are image rows (plane by plane, no transpose)."""
    nc = p.n * p.c
    out = scratch(tag, (len(g.phases), g.rows + _tail(g)), x.dtype)
    out[:, g.rows:] = 0
    xs = x.reshape(nc, p.h, p.w)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = phase_ranges(p, a, b)
        img = out[k, :g.rows].reshape(nc, g.hq, g.wq)
        zero_border(img, iq, jq)
        img[:, iq, jq] = xs[:, rs, cs]
    return out


def _taps_weights(p: Conv2dParams, w: np.ndarray) -> np.ndarray:
    """``(N*C, O/C, kh*kw)`` weights of each plane's filters (the batch repeats the channels')."""
    om = p.o // p.c
    wt = w.reshape(p.c, om, p.kh * p.kw)
    return np.ascontiguousarray(np.broadcast_to(wt, (p.n, p.c, om, p.kh * p.kw))).reshape(p.n * p.c, om, -1)


def _shifted_sum(dst: np.ndarray, src: np.ndarray, plane: int, s: int, e: int,
                 taps: list[tuple[int, int]], wt: np.ndarray, tmp: np.ndarray) -> None:
    """``dst (e-s, plane) = sum over taps (t, off) of src[r*plane + off : ...] * wt[r, t]`` for
    planes ``r`` of ``[s, e)``: a contiguous window per tap, weights broadcast per plane, added in
    tap order (a plain sum of products). ``src`` is a flat phase; ``dst`` may be strided."""
    for i, (t, off) in enumerate(taps):
        win = src[s * plane + off:e * plane + off].reshape(e - s, plane)
        col = wt[s:e, t:t + 1]
        if i == 0:
            np.multiply(win, col, out=dst)
        else:
            np.multiply(win, col, out=tmp)
            dst += tmp


def forward(p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """The forward (``y`` NCHW, fresh)."""
    g = plane_geometry(p)
    nc, om, plane = p.n * p.c, p.o // p.c, g.hq * g.wq
    oh, ow = p.out_hw
    ph = _planes(p, g, x, "dw_x")
    wt = _taps_weights(p, w)
    ys = scratch("dw_y", (nc, om, plane), x.dtype)
    by_phase = [[(t, off) for t, (_, _, k, off) in enumerate(g.taps) if k == kk] for kk in range(len(g.phases))]

    def block(s: int, e: int, tag: str) -> None:
        tmp = scratch(f"dw_tmp{tag}", (e - s, plane), x.dtype)
        for j in range(om):
            first = True
            for k, taps in enumerate(by_phase):
                if not taps:
                    continue
                if first:
                    _shifted_sum(ys[s:e, j], ph[k], plane, s, e, taps, wt[:, j], tmp)
                    first = False
                else:
                    part = scratch(f"dw_part{tag}", (e - s, plane), x.dtype)
                    _shifted_sum(part, ph[k], plane, s, e, taps, wt[:, j], tmp)
                    ys[s:e, j] += part

    _run_blocks(_blocks(nc, block_planes(plane, x.itemsize)), nc * om * plane * len(g.taps), block)
    src = ys.reshape(p.n, p.o, g.hq, g.wq)[:, :, :oh, :ow]
    y = np.empty((p.n, p.o, oh, ow), x.dtype)
    if b is not None:
        np.add(src, b.reshape(-1, 1, 1), out=y)
    else:
        np.copyto(y, src)
    return y


def _dy_grid(p: Conv2dParams, g: Geometry, dy: np.ndarray) -> tuple[np.ndarray, int]:
    """``dY`` laid on each plane's ``(Hq, Wq)`` output grid, zeros past ``OH``/``OW``, after a zero
    margin of the largest tap offset: ``(O/C, margin + N*C*L)``, and the margin."""
    nc, om, plane = p.n * p.c, p.o // p.c, g.hq * g.wq
    oh, ow = p.out_hw
    margin = _tail(g)
    grid = scratch("dw_dy", (om, margin + nc * plane), dy.dtype)
    grid[:, :margin] = 0
    view = grid[:, margin:].reshape(om, nc, g.hq, g.wq)
    zero_border(view, slice(0, oh), slice(0, ow))
    view[:, :, :oh, :ow] = dy.reshape(nc, om, oh, ow).transpose(1, 0, 2, 3)
    return grid, margin


def _grad_weight(p: Conv2dParams, g: Geometry, ph: np.ndarray, dy: np.ndarray, grid: np.ndarray,
                 margin: int, finite: bool) -> np.ndarray:
    """``(O, 1, kh, kw)``: per plane and tap the dot product of ``dY`` with the window of ``x`` the
    tap read, summed over the batch. With every input value finite, over the whole grid (the
    thrown-away positions hold zeros in ``grid``: they add exact zeros; contiguous dot products
    took 0.4-0.9x the time of the real outputs' 3-D views on MobileNetV2's depthwise layers at
    batch 8, the most at 14x14); else over the real outputs only,
    so that a NaN or inf only thrown-away outputs would read stays out, as in the oracle."""
    nc, om, plane = p.n * p.c, p.o // p.c, g.hq * g.wq
    oh, ow = p.out_hw
    dyp = dy.reshape(nc, om, oh, ow)
    dwp = np.empty((nc, om, len(g.taps)), dy.dtype)

    def block(s: int, e: int, tag: str) -> None:
        for t, (_, _, k, off) in enumerate(g.taps):
            src = ph[k, s * plane + off:e * plane + off].reshape(e - s, plane)
            for j in range(om):
                if finite:
                    d = grid[j, margin + s * plane:margin + e * plane].reshape(e - s, plane)
                    np.einsum("rl,rl->r", d, src, out=dwp[s:e, j, t])
                else:
                    np.einsum("rij,rij->r", dyp[s:e, j], src.reshape(e - s, g.hq, g.wq)[:, :oh, :ow],
                              out=dwp[s:e, j, t])

    _run_blocks(_blocks(nc, block_planes(plane, dy.itemsize)), nc * om * plane * len(g.taps), block)
    return dwp.reshape(p.n, p.o, len(g.taps)).sum(axis=0).reshape(p.o, 1, p.kh, p.kw)


def _grad_input(p: Conv2dParams, g: Geometry, dy: np.ndarray, w: np.ndarray, grid: np.ndarray,
                margin: int) -> np.ndarray:
    """The adjoint, gathered from ``grid`` (:func:`_dy_grid`): phase ``k`` of the padded input
    gradient at position ``q`` is ``sum over its taps of grid[q - off] * w``, a shifted
    multiply-add like the forward's (the grid's zero rows and columns absorb the windows that run
    past a plane's edge). The phases are folded back to NCHW."""
    nc, om, plane = p.n * p.c, p.o // p.c, g.hq * g.wq
    wt = _taps_weights(p, w)
    dph = scratch("dw_dx", (len(g.phases), nc, plane), dy.dtype)
    by_phase = [[(t, margin - off) for t, (_, _, k, off) in enumerate(g.taps) if k == kk]
                for kk in range(len(g.phases))]

    def block(s: int, e: int, tag: str) -> None:
        tmp = scratch(f"dw_tmp{tag}", (e - s, plane), dy.dtype)
        for k, taps in enumerate(by_phase):
            for j in range(om):
                if j == 0:
                    _shifted_sum(dph[k, s:e], grid[j], plane, s, e, taps, wt[:, j], tmp)
                else:
                    part = scratch(f"dw_part{tag}", (e - s, plane), dy.dtype)
                    _shifted_sum(part, grid[j], plane, s, e, taps, wt[:, j], tmp)
                    dph[k, s:e] += part

    _run_blocks(_blocks(nc, block_planes(plane, dy.itemsize)), nc * om * plane * len(g.taps), block)
    covered = len(g.phases) == p.stride[0] * p.stride[1]
    dx = (np.empty if covered else np.zeros)((nc, p.h, p.w), dy.dtype)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = phase_ranges(p, a, b)
        dx[:, rs, cs] = dph[k].reshape(nc, g.hq, g.wq)[:, iq, jq]
    return dx.reshape(p.n, p.c, p.h, p.w)


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
