"""conv2d as implicit GEMM: channel-major stride phases, one GEMM per kernel row over a shifted window.

One module, past the project's 500 lines on purpose: forward, both gradients and the choice of
layout are one algorithm over one data layout (the stride phases, the padded row buffers and the
tap order that keeps every GEMM operand contiguous); split, each part would import the others'
private geometry back. The parts every fast algorithm shares live in ``impls/_fast_common.py``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from impls._fast_common import (from_phases, gemm, geometry, pool, scratch, single_thread_blas,
                                split_k_gemms, strided_gemm, to_phases)
from impls._taps import cn_phases, from_cn_phases, narrow, narrow_grad_weight, tap_columns, to_nchw
from impls._unpadded import backward_unpadded, forward_unpadded

__all__ = ["ShiftGemmConv2d", "grad_weight", "full_k", "forward_gemms", "forward_layout", "images_per_chunk"]

_MIN_HW = 100   # 1x1 per image on NCHW from this many pixels; below, one batched GEMM (measured)
_COMPACT = 1.4   # padded-width columns per real output above which windows are compacted
#: phase-buffer bytes per chunk of images in the forward (measured on an AMD EPYC VM, 32 MiB L3:
#: ResNet-50's 3x3 layers at batch 8 ran 3-21 % faster in chunks of 2-4 MB than whole, the
#: stride-2 128-channel layer most, and 8-35 % faster than in chunks of 1 MB)
_CHUNK_BYTES = 4 << 20
#: the same for the unpadded stride-2 layout's two channels-last row buffers (as large as the
#: input): at 4 MiB ResNet-50's two such layers at batch 8 ran 5 % and 16 % slower, and the
#: 128-channel one 5 % slower whole (``suites/shift_gemm_layouts.py --chunk-mib`` at commit 261a89d)
_UNPADDED_CHUNK_BYTES = 8 << 20
_TAP_C = 64   # input channels per group from which each tap is a GEMM of its own (measured)
_FULL_K = 4   # output positions per output channel up to which all taps form one GEMM (measured)
_UNPADDED = True   # stride-2 3x3 pad-1 layers of even size: even and odd rows, no padding (measured)


def grad_weight(p: Conv2dParams, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad_weight`` alone (used by winograd's backward): one GEMM per kernel row."""
    if _fast(p, x.dtype):
        return _backward_gemm(p, dy, x, None)[1]
    return _backward(p, dy, x, None)[1]


def _backward(p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
              w: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(grad_input or None when ``w`` is None, grad_weight, grad_bias)."""
    g = geometry(p)
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    if cg == 1 and G > 1:
        ph = to_phases(p, g, x, 1)[:, 0]
        dys = np.zeros((g.rows, G, og), dy.dtype)
        dys.reshape(p.n, g.hq, g.wq, G, og)[:, :oh, :ow] = dy.reshape(p.n, G, og, oh, ow).transpose(0, 3, 4, 1, 2)
        dwt = np.empty((p.kh, p.kw, G, og), dy.dtype)
        wt = None if w is None else w.reshape(G, og, p.kh, p.kw).transpose(2, 3, 0, 1)
        dph = None if w is None else np.zeros_like(ph)
        d = dys[:g.m]
        for u, v, k, off in g.taps:
            dwt[u, v] = np.einsum("rg,rgo->go", ph[k, off:off + g.m], d)
            if dph is not None:
                dph[k, off:off + g.m] += np.einsum("rgo,go->rg", d, wt[u, v])
        dx = None if dph is None else from_phases(p, g, dph[:, None], 1)
        dw = np.ascontiguousarray(dwt.transpose(2, 3, 0, 1)).reshape(p.o, 1, p.kh, p.kw)
        db = dys.sum(axis=0).reshape(p.o) if p.bias else None
        return dx, dw, db
    ph = to_phases(p, g, x, G)
    dys = np.zeros((G, g.rows, og), dy.dtype)
    dys.reshape(G, p.n, g.hq, g.wq, og)[:, :, :oh, :ow] = dy.reshape(p.n, G, og, oh, ow).transpose(1, 0, 3, 4, 2)
    dwt = np.empty((G, p.kh, p.kw, cg, og), dy.dtype)
    wtt = None if w is None else np.ascontiguousarray(w.reshape(G, og, cg, p.kh, p.kw).transpose(0, 3, 4, 1, 2))
    dph = None if w is None else np.zeros_like(ph)
    with single_thread_blas():
        for gi in range(G):
            for u, v, k, off in g.taps:
                np.dot(ph[k, gi, off:off + g.m].T, dys[gi, :g.m], out=dwt[gi, u, v])
    for gi in range(G):
        for u, v, k, off in g.taps:
            if dph is not None:
                gemm(dys[gi, :g.m], wtt[gi, u, v], dph[k, gi, off:off + g.m], accumulate=True)
    dx = None if dph is None else from_phases(p, g, dph, G)
    dw = np.ascontiguousarray(dwt.transpose(0, 4, 3, 1, 2)).reshape(p.o, cg, p.kh, p.kw)
    db = dys.sum(axis=1).reshape(p.o) if p.bias else None
    return dx, dw, db


def _row_operands(p: Conv2dParams, g, ph: np.ndarray, tag: str) -> list[tuple[np.ndarray, int]]:
    """Per kernel row ``u``: (buffer ``(G, cg*kw, L)`` with rows ``(ci, v)``, column offset).

    The ``kw`` taps of a kernel row differ only by a column shift of the phase image, so one
    buffer per row phase holds them stacked along the inner dimension; kernel row ``u`` is then
    the column window ``[off_u, off_u + m)`` of it: ``kh`` GEMMs with ``K = kw*C/g`` instead of
    ``kh*kw`` with ``K = C/g``, for ``kw`` copies of the input."""
    (sh, sw), (dh, dw) = p.stride, p.dilation
    G, cg = p.groups, p.c // p.groups
    bufs: dict[int, np.ndarray] = {}
    out = []
    for u in range(p.kh):
        a, ru = (u * dh) % sh, (u * dh) // sh
        if a not in bufs:
            us = [uu for uu in range(p.kh) if (uu * dh) % sh == a]
            width = max((uu * dh // sh) * g.wq for uu in us) + g.m
            ks = [g.phases.index((a, (v * dw) % sw)) for v in range(p.kw)]
            cvs = [(v * dw) // sw for v in range(p.kw)]
            if p.kw == 1 and cvs[0] == 0:
                bufs[a] = ph[ks[0]].reshape(G, cg, -1)
            else:
                buf = scratch(f"{tag}{a}", (G, cg, p.kw, width), ph.dtype)
                for v in range(p.kw):
                    buf[:, :, v] = ph[ks[v], :, cvs[v]:cvs[v] + width].reshape(G, cg, width)
                bufs[a] = buf.reshape(G, p.kw * cg, width)
        out.append((bufs[a], ru * g.wq))
    return out


def _compact(p: Conv2dParams, g, buf: np.ndarray, off: int, tag: str) -> np.ndarray:
    """Kernel-row window ``buf[:, :, off:off+m]`` with only the real outputs' columns kept:
    ``(G, K, n*OH*OW)`` contiguous."""
    oh, ow = p.out_hw
    G, K = buf.shape[:2]
    s0, s1, s2 = buf.strides
    src = np.lib.stride_tricks.as_strided(buf[:, :, off:], (G, K, p.n, oh, ow),
                                          (s0, s1, g.hq * g.wq * s2, g.wq * s2, s2), writeable=False)
    out = scratch(tag, (G, K, p.n * oh * ow), buf.dtype)
    out.reshape(G, K, p.n, oh, ow)[...] = src
    return out


def _gemm_per_image(p: Conv2dParams) -> bool:
    """Unpadded 1x1 stride-1 layers of ``_MIN_HW`` pixels or more: one GEMM per image on NCHW."""
    return (p.kh, p.kw, p.stride, p.pads, p.groups) == (1, 1, (1, 1), (0, 0, 0, 0), 1) and p.h * p.w >= _MIN_HW


def full_k(p: Conv2dParams) -> bool:
    """Whether the layer runs as one GEMM with inner dimension ``kh*kw*C/g`` over compacted tap
    columns (:func:`~impls._taps.tap_columns`) instead of a GEMM per kernel row: where the outputs are few
    next to the filters (small images, many channels), moving the weights into per-row order
    and the per-row copies cost more than copying every tap's window (0.69x forward, 0.52x
    backward on ResNet-50's 512-channel 3x3 layers at batch 8), but not with many outputs per
    filter (49 at 128 channels 28x28: 1.25x), and 3-11 % was lost between 6 and 7 at batch 1,
    hence 4. Timed by ``suites/shift_gemm_layouts.py`` at commit 261a89d; docs/fast-algorithms.md."""
    oh, ow = p.out_hw
    return p.n * oh * ow <= _FULL_K * p.o


def _forward_full_k(p: Conv2dParams, g, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                    out: np.ndarray | None) -> np.ndarray:
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    cols = tap_columns(p, g, cn_phases(p, g, x, "fph"), "fcols")
    ys = scratch("fys", (G, og, p.n * oh * ow), x.dtype)
    np.matmul(np.ascontiguousarray(w).reshape(G, og, cg * p.kh * p.kw), cols.reshape(G, -1, p.n * oh * ow), out=ys)
    src = ys.reshape(p.o, p.n, oh, ow).transpose(1, 0, 2, 3)
    return to_nchw(src, b, out)


def images_per_chunk(p: Conv2dParams, g, itemsize: int) -> int:
    """Images per chunk of the forward's per-tap and per-row layouts: the batch cut into as few
    equal chunks as keep each chunk's phase buffers within ``_CHUNK_BYTES``
    (``_UNPADDED_CHUNK_BYTES`` for the unpadded layout's row buffers), so that the phases (and the
    per-row layout's stacked copies), written once and read by every GEMM, stay in cache (a
    stride-2 layer's four phases of 128 channels at 56x56 and batch 8 are 14 MB)."""
    budget, per_image = _CHUNK_BYTES, len(g.phases) * p.c * g.hq * g.wq * itemsize
    if _unpadded(p):   # the even and odd rows of the input, no padding
        budget, per_image = _UNPADDED_CHUNK_BYTES, p.c * p.h * p.w * itemsize
    elif not _per_tap(p, g):   # the per-row layout adds kw stacked copies of each row phase
        per_image += p.stride[0] * p.kw * p.c * g.hq * g.wq * itemsize
    chunks = max(1, -(-p.n * per_image // budget))
    return -(-p.n // chunks)


def _chunks(p: Conv2dParams, g, itemsize: int) -> list[tuple[int, int]]:
    """``[(first, stop), ...]`` image ranges the per-tap and per-row forward runs one at a time."""
    per = images_per_chunk(p, g, itemsize)
    return [(i, min(p.n, i + per)) for i in range(0, p.n, per)]


def forward_gemms(p: Conv2dParams, dtype: str = "float32") -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of every GEMM the float32/float64 forward runs on ``p``, in order (empty for
    depthwise layers, which use no GEMM): what the forward would cost with no copy at all, for
    ceiling measurements (the GEMMs-alone figures of docs/results.md). The layout of each chunk of images is
    :func:`forward_layout`'s, which the forward follows."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    layout = forward_layout(p)
    if layout in ("depthwise", "gemm_per_image", "tap_columns"):
        chunks = [p]
    else:
        chunks = [dataclasses.replace(p, n=j - i) for i, j in _chunks(p, geometry(p), np.dtype(dtype).itemsize)]
    out: list[tuple[int, int, int]] = []
    for q in chunks:
        layout = forward_layout(q)   # a short last chunk may take another layout than the rest
        if layout == "gemm_per_image":
            out += [(q.o, q.c, q.h * q.w)] * q.n
        elif layout == "tap_columns":
            out += [(og, cg * q.kh * q.kw, q.n * oh * ow)] * G
        elif layout == "taps":
            out += [(og, cg, geometry(q).m)] * (G * q.kh * q.kw)
        elif layout == "taps_unpadded":
            out += [(og, cg, q.n * oh * ow)] * (G * q.kh * q.kw)
        elif layout == "rows":
            gq = geometry(q)
            cols = q.n * oh * ow if gq.rows > _COMPACT * q.n * oh * ow else gq.m
            out += [(og, cg * q.kw, cols)] * (G * q.kh)
    return out


def _per_tap(p: Conv2dParams, g) -> bool:
    """Whether the forward runs one GEMM per tap straight on the phases (wide enough layers whose
    windows need no compaction) rather than one per kernel row over ``kw`` stacked copies."""
    oh, ow = p.out_hw
    return p.c // p.groups >= _TAP_C and g.rows <= _COMPACT * p.n * oh * ow


def _unpadded(p: Conv2dParams) -> bool:
    """Whether the per-tap forward runs on the even and odd input rows with no padding
    (:func:`~impls._unpadded.forward_unpadded`): 3x3 kernels at stride 2 with padding 1 on even images, wide
    enough for a GEMM per tap."""
    return (_UNPADDED and (p.kh, p.kw, p.stride, p.dilation, p.pads) == (3, 3, (2, 2), (1, 1), (1, 1, 1, 1))
            and p.h % 2 == 0 and p.w % 2 == 0 and p.c // p.groups >= _TAP_C)


def forward_layout(p: Conv2dParams) -> str:
    """How the float32/float64 forward multiplies ``p``: ``"gemm_per_image"`` (unpadded 1x1),
    ``"tap_columns"`` (:func:`full_k`), ``"taps_unpadded"`` (a GEMM per tap on the even and
    odd input rows with no padding, :func:`~impls._unpadded.forward_unpadded`), ``"taps"`` (a GEMM per tap on the padded phases)
    or ``"rows"`` (a GEMM per kernel row over stacked copies); ``"depthwise"`` uses no GEMM."""
    if not _fast(p, np.float32):
        return "depthwise"
    if _gemm_per_image(p):
        return "gemm_per_image"
    if full_k(p):
        return "tap_columns"
    if _unpadded(p):
        return "taps_unpadded"
    return "taps" if _per_tap(p, geometry(p)) else "rows"


def _tap_weights(p: Conv2dParams, w: np.ndarray) -> np.ndarray:
    """``(G, kh*kw, O/g, C/g)``: tap ``t`` of every filter as a GEMM operand."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    wt = scratch("fwtap", (G, p.kh * p.kw, og, cg), w.dtype)
    np.copyto(wt, w.reshape(G, og, cg, p.kh * p.kw).transpose(0, 3, 1, 2))
    return wt


def _row_weights(p: Conv2dParams, w: np.ndarray) -> np.ndarray:
    """``(G, kh, O/g, C/g*kw)``: kernel row ``u`` of every filter as a GEMM operand, columns
    ``(c, v)``. Copied with each kernel row's ``kw`` values as one opaque item: NumPy moved
    3-float runs element by element at half the speed (10 ms for a 512x512x3x3 kernel)."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    item = np.dtype((np.void, p.kw * w.itemsize))
    wt = scratch("fwt", (G, p.kh, og, cg * p.kw), w.dtype)
    src = np.ascontiguousarray(w).view(item).reshape(G, og, cg, p.kh)
    np.copyto(wt.view(item).reshape(G, p.kh, og, cg), src.transpose(0, 3, 1, 2))
    return wt


def _forward(p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
             out: np.ndarray | None = None, chunk: bool = True, wts: dict | None = None) -> np.ndarray:
    """The float forward; ``wts`` carries the weights in GEMM order from one chunk of images to
    the next (made once per call: 0.2 ms a chunk for a 128x128x3x3 kernel)."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    if _gemm_per_image(p):
        # 1x1: already a GEMM per image on NCHW as it is, no layout change at all
        y = np.empty((p.n, p.o, oh, ow), x.dtype) if out is None else out
        np.matmul(w.reshape(p.o, p.c), x.reshape(p.n, p.c, p.h * p.w), out=y.reshape(p.n, p.o, oh * ow))
        if b is not None:
            y += b.reshape(p.o, 1, 1)
        return y
    g = geometry(p)
    if full_k(p):
        return _forward_full_k(p, g, x, w, b, out)
    chunks = _chunks(p, g, x.itemsize) if chunk else [(0, p.n)]
    if len(chunks) > 1:
        # a few images at a time when the phases are large: they stay in cache, while small
        # images keep the whole batch for long GEMMs
        y = np.empty((p.n, p.o) + p.out_hw, x.dtype) if out is None else out
        wts = {}
        for i, j in chunks:
            _forward(dataclasses.replace(p, n=j - i), x[i:j], w, b, out=y[i:j], chunk=False, wts=wts)
        return y
    wts = {} if wts is None else wts
    if "tap" not in wts and (_unpadded(p) or _per_tap(p, g)):
        wts["tap"] = _tap_weights(p, w)
    if _unpadded(p):
        return forward_unpadded(p, x, wts["tap"], b, out)
    ph = cn_phases(p, g, x, "fph")
    if _per_tap(p, g):
        # enough channels for a GEMM per tap: each reads its shifted window of the phases as it
        # is, no kw copies of the input at all (K = C/g instead of kw*C/g)
        wtap = wts["tap"]
        ys = scratch("fys", (G, og, g.rows), x.dtype)
        for gi in range(G):
            for t, (_, _, k, off) in enumerate(g.taps):
                strided_gemm(wtap[gi, t], ph[k, gi * cg:(gi + 1) * cg, off:off + g.m], ys[gi, :, :g.m],
                             beta=1.0 if t else 0.0)
        src = ys.reshape(p.o, p.n, g.hq, g.wq)[:, :, :oh, :ow].transpose(1, 0, 2, 3)
        return to_nchw(src, b, out)
    rows = _row_operands(p, g, ph, "frow")
    wt = wts.get("row")
    if wt is None:
        wt = wts["row"] = _row_weights(p, w)
    if g.rows > _COMPACT * p.n * oh * ow:
        # small images: most of the padded-width columns would be thrown away (65 % extra flops
        # at 7x7), so copy each kernel row's window down to the real outputs first
        ys = scratch("fys", (G, og, p.n * oh * ow), x.dtype)
        for u, (buf, off) in enumerate(rows):
            cmp = _compact(p, g, buf, off, "fcmp")
            for gi in range(G):
                strided_gemm(wt[gi, u], cmp[gi], ys[gi], beta=1.0 if u else 0.0)
        src = ys.reshape(p.o, p.n, oh, ow).transpose(1, 0, 2, 3)
    else:
        ys = scratch("fys", (G, og, g.rows), x.dtype)
        for gi in range(G):
            for u, (buf, off) in enumerate(rows):
                strided_gemm(wt[gi, u], buf[gi, :, off:off + g.m], ys[gi, :, :g.m], beta=1.0 if u else 0.0)
        src = ys.reshape(p.o, p.n, g.hq, g.wq)[:, :, :oh, :ow].transpose(1, 0, 2, 3)
    return to_nchw(src, b, out)


def _transposed_params(p: Conv2dParams) -> Conv2dParams | None:
    """For stride 1, grad_input is a forward conv of ``dy`` with the flipped kernel: its params,
    or None where that needs negative or asymmetric padding."""
    if p.stride != (1, 1):
        return None
    pt, pb, pl, pr = p.pads
    (dh, dw) = p.dilation
    ph_, pw_ = dh * (p.kh - 1) - pt, dw * (p.kw - 1) - pl
    if pt != pb or pl != pr or ph_ < 0 or pw_ < 0:
        return None
    oh, ow = p.out_hw
    return Conv2dParams(n=p.n, c=p.o, h=oh, w=ow, o=p.c, kh=p.kh, kw=p.kw, stride=(1, 1),
                        padding=(ph_, pw_), dilation=p.dilation, groups=p.groups, bias=False)


def _backward_gemm(p: Conv2dParams, dy: np.ndarray, x: np.ndarray, w: np.ndarray | None
                   ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    db = dy.sum(axis=(0, 2, 3)) if p.bias else None
    if (p.kh, p.kw, p.stride, p.pads, G) == (1, 1, (1, 1), (0, 0, 0, 0), 1) and w is not None:
        # 1x1: per image dW += dy[n] @ x[n]^T and dx[n] = W^T @ dy[n] on NCHW as it is
        hw = p.h * p.w
        d3, x3 = dy.reshape(p.n, p.o, hw), x.reshape(p.n, p.c, hw)
        dw = _sum_gemms([(d3[i], x3[i].T) for i in range(p.n)], (p.o, p.c), dy.dtype)
        dx = np.matmul(w.reshape(p.o, p.c).T, d3).reshape(p.n, p.c, p.h, p.w)
        return dx, dw.reshape(p.o, p.c, 1, 1), db
    g = geometry(p)
    if full_k(p):
        return _backward_full_k(p, g, dy, x, w, db)
    if _unpadded(p):
        return backward_unpadded(p, dy, x, None if w is None else _tap_weights(p, w), db)
    dys = None
    if narrow(p):
        # a few input channels (the stem): a GEMM per kernel row would be only kw*C/g wide
        dw = narrow_grad_weight(p, dy, x)
    else:
        dys = _padded_dy(p, g, dy)
        dw = _row_grad_weight(p, g, cn_phases(p, g, x, "bph"), dys)
    if w is None:
        return None, dw, db
    pt = _transposed_params(p)
    if pt is not None:
        wf = w.reshape(G, og, cg, p.kh, p.kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        dx = _forward(pt, np.ascontiguousarray(dy), np.ascontiguousarray(wf).reshape(p.c, og, p.kh, p.kw), None)
        return dx, dw, db
    if dys is None:
        dys = _padded_dy(p, g, dy)
    wtt = np.ascontiguousarray(w.reshape(G, og, cg, p.kh, p.kw).transpose(0, 3, 4, 2, 1))
    dph = scratch("bdph", (len(g.phases), p.c, g.rows + g.extra), dy.dtype, zero=True)
    if cg < 64 and p.kw > 1:
        # few input channels (the stem): one GEMM per kernel row with ``kw*C`` output rows, then
        # ``kw`` shifted adds, instead of ``kw`` GEMMs with only ``C`` output rows each
        t = scratch("bt", (p.kw * cg, g.m), dy.dtype)
        wr = wtt.reshape(G, p.kh, p.kw * cg, og)
        for gi in range(G):
            for u in range(p.kh):
                strided_gemm(wr[gi, u], dys[gi, :, :g.m], t)
                for v in range(p.kw):
                    _, _, k, off = g.taps[u * p.kw + v]
                    dph[k, gi * cg:(gi + 1) * cg, off:off + g.m] += t[v * cg:(v + 1) * cg]
        return from_cn_phases(p, g, dph), dw, db
    for gi in range(G):
        for u, v, k, off in g.taps:
            strided_gemm(wtt[gi, u, v], dys[gi, :, :g.m], dph[k, gi * cg:(gi + 1) * cg, off:off + g.m], beta=1.0)
    return from_cn_phases(p, g, dph), dw, db


def _padded_dy(p: Conv2dParams, g, dy: np.ndarray) -> np.ndarray:
    """``dY`` channel-major over the phase grid, ``(G, O/g, rows)``, zeros where no output is."""
    oh, ow = p.out_hw
    dys = scratch("bdys", (p.groups, p.o // p.groups, g.rows), dy.dtype, zero=True)
    dys.reshape(p.o, p.n, g.hq, g.wq)[:, :, :oh, :ow] = dy.transpose(1, 0, 2, 3)
    return dys


def _row_grad_weight(p: Conv2dParams, g, ph: np.ndarray, dys: np.ndarray) -> np.ndarray:
    """``grad_weight`` as one GEMM ``dY @ window^T`` per kernel row over :func:`_row_operands`."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    dwt = scratch("bdwt", (G, p.kh, og, cg * p.kw), dys.dtype)
    rows = _row_operands(p, g, ph, "brow")
    # dY @ window^T: its (O, C*kw) result needs only kernel rows moved to reach (O, C, kh, kw);
    # the transposed product ran a little faster but then cost a 20 ms channel transpose (and one
    # GEMM per tap straight on the phases, as the forward does, ran 1.4-1.6x slower here: nine
    # small outputs instead of three)
    split_k_gemms([(dys[gi, :, :g.m], buf[gi, :, off:off + g.m].T, dwt[gi, u])
                    for gi in range(G) for u, (buf, off) in enumerate(rows)])
    # a copy always: with one kernel row the transpose is already contiguous, and
    # ascontiguousarray would hand the scratch buffer itself to the caller (the next backward
    # call overwrote that grad_weight: found by the results_kept check)
    return np.array(dwt.reshape(G, p.kh, og, cg, p.kw).transpose(0, 2, 3, 1, 4), order="C").reshape(
        p.o, cg, p.kh, p.kw)


def _backward_full_k(p: Conv2dParams, g, dy: np.ndarray, x: np.ndarray, w: np.ndarray | None,
                     db: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`_forward_full_k`: ``dW = dY @ cols^T`` lands in the filters' own layout;
    ``dcols = W^T @ dY`` is added back tap by tap into zero phases (col2im) and folded to NCHW."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    P, T = p.n * oh * ow, p.kh * p.kw
    cols = tap_columns(p, g, cn_phases(p, g, x, "bph"), "bcols").reshape(G, cg * T, P)
    dys = scratch("bdys", (G, og, P), dy.dtype)
    dys.reshape(p.o, p.n, oh, ow)[...] = dy.transpose(1, 0, 2, 3)
    dw = np.empty((p.o, cg, p.kh, p.kw), dy.dtype)
    dwg = dw.reshape(G, og, cg * T)
    split_k_gemms([(dys[gi], cols[gi].T, dwg[gi]) for gi in range(G)])
    if w is None:
        return None, dw, db
    dcols = scratch("bdcols", (G, cg * T, P), dy.dtype)
    wg = np.ascontiguousarray(w).reshape(G, og, cg * T)
    for gi in range(G):
        strided_gemm(wg[gi].T, dys[gi], dcols[gi])
    dcols = dcols.reshape(p.c, T, p.n, oh, ow)
    dph = scratch("bdph", (len(g.phases), p.c, g.rows + g.extra), dy.dtype, zero=True)
    isz = dph.itemsize
    for t, (_, _, k, off) in enumerate(g.taps):
        dst = np.lib.stride_tricks.as_strided(dph[k, :, off:], (p.c, p.n, oh, ow),
                                              (dph.strides[1], g.hq * g.wq * isz, g.wq * isz, isz))
        dst += dcols[:, t]
    return from_cn_phases(p, g, dph), dw, db


def _sum_gemms(pairs: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int], dtype) -> np.ndarray:
    """``sum a @ b`` over ``pairs``: two halves on two Python threads with one-thread BLAS each
    when the output is small (OpenBLAS threads a small output badly), else in turn with BLAS
    threads, accumulating in place (``beta=1``). Exact on small integers: a sum of products."""
    out = np.empty(shape, dtype)
    if out.size >= 32768 or len(pairs) < 2:
        for i, (a, b) in enumerate(pairs):
            strided_gemm(a, b, out, beta=1.0 if i else 0.0)
        return out
    other = np.empty(shape, dtype)
    half = len(pairs) // 2

    def run(chunk: list[tuple[np.ndarray, np.ndarray]], acc: np.ndarray) -> None:
        for i, (a, b) in enumerate(chunk):
            strided_gemm(a, b, acc, beta=1.0 if i else 0.0)

    with single_thread_blas():
        futs = [pool().submit(run, pairs[:half], out), pool().submit(run, pairs[half:], other)]
        for f in futs:
            f.result()
    out += other
    return out


def _fast(p: Conv2dParams, dtype) -> bool:
    return not (p.c // p.groups == 1 and p.groups > 1) and np.dtype(dtype) in (np.float32, np.float64)


@register(op="conv2d", name="shift_gemm", backend="numpy", device="cpu", exact=True, algorithm="direct",
          description="implicit GEMM on channel-major stride phases: one BLAS GEMM per tap (wide layers) or "
                      "per kernel row of stacked taps (narrow) on shifted windows, accumulated in place "
                      "(beta=1); one GEMM over compacted tap columns where outputs are few")
class ShiftGemmConv2d(Implementation):
    """Implicit GEMM: ``kh`` GEMMs over shifted windows of a ``kw``-tap buffer, no patch matrix.

    The padded input is copied to channel-major ``(C, N*Hq*Wq)`` stride phases (one phase for
    stride 1). The ``kw`` taps of a kernel row differ by a column shift, so one buffer per row phase
    stacks them along the inner dimension (``kw`` copies of the input); kernel row ``u`` is one
    column window of it, so the forward is ``kh`` GEMMs ``W_u (O/g, C/g*kw) @ window`` accumulated
    by BLAS itself (``beta=1``) through their leading dimension, no further copy; layers with 64 or
    more channels per group skip the stacked copies and run one GEMM per tap on the phases. Outputs are
    computed over the full phase width and the columns past ``OW`` cropped (small images compact the
    windows first). 3x3 stride-2 layers with padding 1 on even images use the input's even and
    odd rows, channels-last without padding, each tap a window of rows at stride 2 that BLAS reads
    as it is; the few padding values their taps read are supplied by zeroing rows and columns
    between taps (:func:`~impls._unpadded.forward_unpadded`). Where outputs are few next to the filters (:func:`full_k`), every
    tap's window is compacted into tap columns instead and one GEMM takes the filters in their own layout.
    Unpadded 1x1 stride-1 layers are a GEMM per image on NCHW as given.

    Backward reuses the buffers: ``grad_weight`` is one GEMM ``dY @ window^T`` per kernel row;
    ``grad_input`` is the forward on ``dY`` with the flipped kernel for stride 1, else scattered into
    shifted windows of a zero phase buffer and folded back to NCHW. ``dY`` is laid out with zeros at
    the thrown-away positions, so they contribute nothing. The unpadded stride-2 layers run their
    backward on the forward's even and odd rows too (:func:`~impls._unpadded.backward_unpadded`).

    Depthwise layers (one input channel per group) and dtypes other than float32/float64 use the
    channels-last per-tap code with broadcast multiply-adds. Every output is a plain sum of
    products, so small-integer inputs give bit-exact results. See docs/fast-algorithms.md.
    """

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        if _fast(p, x.dtype):
            return _forward(p, x, w, b)
        g = geometry(p)
        G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        oh, ow = p.out_hw
        if cg == 1 and G > 1:
            ph = to_phases(p, g, x, 1)[:, 0]                                     # (phases, R, C)
            wt = w.reshape(G, og, p.kh, p.kw).transpose(2, 3, 0, 1)              # (kh, kw, G, og)
            ys = np.empty((g.rows, G, og), x.dtype)
            tmp = np.empty((g.m, G, og), x.dtype)
            for t, (u, v, k, off) in enumerate(g.taps):
                np.multiply(ph[k, off:off + g.m, :, None], wt[u, v], out=tmp if t else ys[:g.m])
                if t:
                    ys[:g.m] += tmp
            src = ys.reshape(p.n, g.hq, g.wq, G, og)[:, :oh, :ow].transpose(0, 3, 4, 1, 2)
        else:
            ph = to_phases(p, g, x, G)                                           # (phases, G, R, cg)
            wt = np.ascontiguousarray(w.reshape(G, og, cg, p.kh, p.kw).transpose(0, 3, 4, 2, 1))
            ys = np.empty((G, g.rows, og), x.dtype)
            for gi in range(G):
                for t, (u, v, k, off) in enumerate(g.taps):
                    gemm(ph[k, gi, off:off + g.m], wt[gi, u, v], ys[gi, :g.m], accumulate=t > 0)
            src = ys.reshape(G, p.n, g.hq, g.wq, og)[:, :, :oh, :ow].transpose(1, 0, 4, 2, 3)
        y = np.empty((p.n, G, og, oh, ow), x.dtype)
        if b is not None:
            np.add(src, b.reshape(G, og, 1, 1), out=y)
        else:
            np.copyto(y, src)
        return y.reshape(p.n, p.o, oh, ow)

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dx, dw, db = (_backward_gemm if _fast(p, x.dtype) else _backward)(p, dy, x, w)
        assert dx is not None
        return dx, dw, db
