"""shift_gemm's channel-major stride phases and tap columns, and the weight gradient of narrow
layers (few input channels, as a network's stem) over tap columns an image at a time."""
from __future__ import annotations

import dataclasses

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from impls._fast_common import (geometry, phase_ranges, pool, scratch, single_thread_blas,
                                strided_gemm, workers, zero_border)

__all__ = ["cn_phases", "from_cn_phases", "to_nchw", "tap_columns", "narrow", "narrow_grad_weight"]

#: per-row GEMM width ``kw*C/g`` below which :func:`narrow` layers take their weight gradient
#: from tap columns: ResNet-50's stem (7x7, 3 channels: 21 columns) ran its ``grad_weight`` in
#: 42-48 ms this way against 68-79 ms with a GEMM per kernel row, one thread (torch_cpu: 33-42),
#: AMD EPYC VM, 2026-12-03; docs/fast-algorithms.md
_NARROW_COLS = 32
#: output pixels per image from which they do: on 32x32 images (CIFAR's first layer) the two ways
#: ran within 15 % of each other, the per-row GEMMs ahead at two threads (same VM and date)
_NARROW_MIN_PIXELS = 4096


def cn_phases(p: Conv2dParams, g, x: np.ndarray, tag: str) -> np.ndarray:
    """NCHW ``x`` -> zero-padded channel-major phases ``(phases, C, rows+extra)``: copies whose
    inner runs are whole image rows, far cheaper than a channels-last transpose."""
    out = scratch(tag, (len(g.phases), p.c, g.rows + g.extra), x.dtype)
    out[:, :, g.rows:] = 0
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = phase_ranges(p, a, b)
        img = out[k, :, :g.rows].reshape(p.c, p.n, g.hq, g.wq)
        zero_border(img, iq, jq)
        img[:, :, iq, jq] = x[:, :, rs, cs].transpose(1, 0, 2, 3)
    return out


def from_cn_phases(p: Conv2dParams, g, ph: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`cn_phases`: phases -> NCHW, padding dropped."""
    covered = len(g.phases) == p.stride[0] * p.stride[1]
    dx = (np.empty if covered else np.zeros)((p.n, p.c, p.h, p.w), ph.dtype)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = phase_ranges(p, a, b)
        dx[:, :, rs, cs] = ph[k, :, :g.rows].reshape(p.c, p.n, g.hq, g.wq)[:, :, iq, jq].transpose(1, 0, 2, 3)
    return dx


def to_nchw(src: np.ndarray, b: np.ndarray | None, out: np.ndarray | None) -> np.ndarray:
    """The ``(N, O, OH, OW)`` view ``src`` of a channel-major result copied into ``out`` (fresh
    when None), with the bias added on the way."""
    y = np.empty(src.shape, src.dtype) if out is None else out
    if b is not None:
        np.add(src, b.reshape(-1, 1, 1), out=y)
    else:
        np.copyto(y, src)
    return y


def tap_columns(p: Conv2dParams, g, ph: np.ndarray, tag: str) -> np.ndarray:
    """``(C, kh*kw, N*OH*OW)``: every tap's window of the phases, only the real outputs' columns.

    Row ``(c, t)`` matches the filters' own layout ``w.reshape(O, C/g*kh*kw)``, so the weights go
    to BLAS as they are. Each output row is a contiguous run of ``OW`` phase values, copied as one
    opaque item (NumPy moves short float runs element by element)."""
    oh, ow = p.out_hw
    isz = ph.itemsize
    cols = scratch(tag, (p.c, p.kh * p.kw, p.n * oh * ow), ph.dtype)
    item = np.dtype((np.void, ow * isz))
    for t, (_, _, k, off) in enumerate(g.taps):
        # np.ndarray on the buffer directly: as_strided cost ~10 us a tap (its array interface)
        src = np.ndarray((p.c, p.n, oh, 1), item, ph, k * ph.strides[0] + off * ph.strides[2],
                         (ph.strides[1], g.hq * g.wq * isz, g.wq * isz, isz))
        np.copyto(cols[:, t].reshape(p.c, p.n, oh, ow).view(item), src)
    return cols


def narrow(p: Conv2dParams) -> bool:
    """Whether ``p`` is narrow: a kernel row of the filters spans fewer than ``_NARROW_COLS``
    input values (``kw*C/g``; a 7x7 stem on 3 channels: 21), with more than one tap, on images
    of ``_NARROW_MIN_PIXELS`` outputs or more. A GEMM per kernel row then has a result only that
    wide and a long inner dimension, which BLAS runs far below its peak."""
    oh, ow = p.out_hw
    return p.kw * (p.c // p.groups) < _NARROW_COLS and p.kh * p.kw > 1 and oh * ow >= _NARROW_MIN_PIXELS


def narrow_grad_weight(p: Conv2dParams, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad_weight`` ``(O, C/g, kh, kw)`` as ``sum_n dY_n (O/g, OH*OW) @ cols_n^T``: per image,
    its tap columns (:func:`tap_columns`, ``C/g*kh*kw`` rows, only the real outputs) and one GEMM
    per group, with NCHW ``dY_n`` read as it is (no transpose of ``dY``). The images are dealt to
    :func:`~impls._fast_common.workers` threads in turn, each with one-thread BLAS and a result of
    its own, added at the end; an image's columns stay in cache for its GEMM. A sum of the same
    products: exact on small integers."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.out_hw
    q = dataclasses.replace(p, n=1)
    g = geometry(q)
    cols_per = cg * p.kh * p.kw

    def run(images: range, acc: np.ndarray) -> None:
        for t, i in enumerate(images):
            cols = tap_columns(q, g, cn_phases(q, g, x[i:i + 1], "nwph"), "nwcols").reshape(G, cols_per, oh * ow)
            d = dy[i].reshape(G, og, oh * ow)
            for gi in range(G):
                strided_gemm(d[gi], cols[gi].T, acc[gi], beta=1.0 if t else 0.0)

    k = max(1, min(workers(), p.n))
    accs = [np.empty((G, og, cols_per), dy.dtype) for _ in range(k)]
    if k == 1:
        run(range(p.n), accs[0])
    else:
        with single_thread_blas():
            futs = [pool().submit(run, range(j, p.n, k), accs[j]) for j in range(k)]
            for f in futs:
                f.result()
    dw = accs[0]
    for extra in accs[1:]:
        dw += extra
    return dw.reshape(p.o, cg, p.kh, p.kw)
