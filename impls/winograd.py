"""conv2d by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016) for 3x3 stride-1 layers."""
from __future__ import annotations

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from impls._fast_common import pool, scratch, strided_gemm, workers
from impls.shift_gemm import grad_weight as _direct_grad_weight

__all__ = ["WinogradConv2d", "winograd_valid", "G_MATRIX", "GROWTH"]

#: the filter transform G of F(2, 3); B^T and A^T are applied as the additions they are
G_MATRIX = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
#: ``kron(G, G)``: the 16 transformed taps of a flattened 3x3 filter
_KRON = np.kron(G_MATRIX, G_MATRIX)
#: elements per span of the transforms: a span's operands stay in the L2 cache
_CHUNK = 1 << 14
#: transforms at least this long are split between the worker threads
_PARALLEL = 1 << 18
#: elementwise error growth of F(2x2, 3x3) against 9 for the direct 3x3 sum (see docs/fast-algorithms.md):
#: sum of |A^T| (|G| 1 |G|^T  .  |B^T| 1 |B|) |A| over one output
GROWTH = 64.0


def _chunked(length: int, fn) -> None:
    """``fn(lo, hi)`` over cache-sized spans of ``0..length``, split between the workers."""
    k = max(1, -(-length // _CHUNK))
    step = -(-length // k)
    spans = [(i, min(length, i + step)) for i in range(0, length, step)]
    # the second worker pays off only on long transforms: BLAS threads still spinning after the
    # GEMM hold the other core for a while (measured: 2 workers slower below ~2^18 elements)
    nw = min(workers(), len(spans)) if length >= _PARALLEL else 1
    if nw <= 1:
        for lo, hi in spans:
            fn(lo, hi)
        return
    per = -(-len(spans) // nw)
    parts = [spans[i:i + per] for i in range(0, len(spans), per)]
    futs = [pool().submit(lambda part=part: [fn(lo, hi) for lo, hi in part]) for part in parts[1:]]
    for lo, hi in parts[0]:
        fn(lo, hi)
    for f in futs:
        f.result()


def filter_transform(w: np.ndarray) -> np.ndarray:
    """``U = G w G^T`` of every 3x3 filter as ``(16, O, C/g)``: one GEMM by ``kron(G, G)``."""
    o, cg = w.shape[:2]
    dt = w.dtype
    u = np.empty((16, o * cg), dt)
    k = _KRON.astype(dt)                                  # (16, 9)
    wr = np.ascontiguousarray(w).reshape(o * cg, 9)
    if dt in (np.float32, np.float64):
        strided_gemm(k, wr.T, u)                          # transposed view: no copy
    else:
        np.matmul(k, wr.T, out=u)
    return u.reshape(16, o, cg)


def winograd_valid(x: np.ndarray, w: np.ndarray, groups: int,
                   pads: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Stride-1 3x3 cross-correlation of NCHW ``x`` by ``w`` via F(2x2, 3x3), ``x`` padded by ``pads``
    (top, bottom, left, right; a negative pad crops). Returns NCHW.

    Tiles of 4x4 inputs (overlapping by 2) give 2x2 outputs; per tile and channel pair the 9
    multiplications of a direct 3x3 become 16 of the transformed domain, and the channel sum moves
    into 16 GEMMs ``U[k] (O, C) @ V[k] (C, tiles)``: 2.25x fewer multiplications in total.

    Layout: the padded input is split into its four (row, column) parity phases, channel-major
    ``(C, N, Hq, Wq)`` with ``Hq, Wq`` = tiles + 1. Element ``(r, s)`` of every tile is then one
    contiguous flat slice of phase ``(r % 2, s % 2)`` at offset ``(r // 2) * Wq + s // 2`` (the
    shifted-view trick of ``shift_gemm``; the last tile row and column of each image are computed
    and thrown away), so both transforms are long 1-D NumPy operations, done in cache-sized spans
    on the worker threads, and each ``V[k]`` is a ``(C, N*Hq*Wq)`` matrix for BLAS.
    """
    n, c, h, wd = x.shape
    o, cg = w.shape[:2]
    og = o // groups
    pt, pb, pl, pr = pads
    oh, ow = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    hq, wq = th + 1, tw + 1
    dt = x.dtype
    S = n * hq * wq           # flat positions of one channel
    L = c * S
    X = scratch("wino.x", (2, 2, L + wq + 1), dt, zero=True)
    for a in range(2):
        i0 = max(0, -(-(pt - a) // 2))
        r0 = 2 * i0 + a - pt
        for b in range(2):
            j0 = max(0, -(-(pl - b) // 2))
            c0 = 2 * j0 + b - pl
            src = x[:, :, r0::2, c0::2]
            nh, nw = min(src.shape[2], hq - i0), min(src.shape[3], wq - j0)
            if nh > 0 and nw > 0:
                ph = X[a, b, :L].reshape(c, n, hq, wq)
                ph[:, :, i0:i0 + nh, j0:j0 + nw] = src[:, :, :nh, :nw].transpose(1, 0, 2, 3)
    V = scratch("wino.v", (4, 4, L), dt)

    def input_transform(lo: int, hi: int) -> None:
        # B^T d B: rows first (phase r % 2, offset (r // 2) * wq), for both column parities and one
        # extra position, then columns (offset s // 2) straight into V
        m = hi - lo
        t = np.empty((4, 2, m + 1), dt)
        for sc in range(2):
            d0, d1 = X[0, sc, lo:hi + 1], X[1, sc, lo:hi + 1]
            d2, d3 = X[0, sc, lo + wq:hi + wq + 1], X[1, sc, lo + wq:hi + wq + 1]
            np.subtract(d0, d2, out=t[0, sc])
            np.add(d1, d2, out=t[1, sc])
            np.subtract(d2, d1, out=t[2, sc])
            np.subtract(d1, d3, out=t[3, sc])
        for ra in range(4):
            e0, e1, e2, e3 = t[ra, 0, :m], t[ra, 1, :m], t[ra, 0, 1:], t[ra, 1, 1:]
            v = V[ra]
            np.subtract(e0, e2, out=v[0, lo:hi])
            np.add(e1, e2, out=v[1, lo:hi])
            np.subtract(e2, e1, out=v[2, lo:hi])
            np.subtract(e1, e3, out=v[3, lo:hi])

    _chunked(L, input_transform)
    U = filter_transform(w)                                  # (16, O, C/g)
    M = scratch("wino.m", (16, o, S), dt)
    Vk = V.reshape(16, c, S)
    if groups == 1:
        np.matmul(U, Vk, out=M)
    elif cg == 1 and og == 1:                                # depthwise: a scaling per channel
        np.multiply(U, Vk, out=M)
    else:
        np.matmul(U.reshape(16, groups, og, cg), Vk.reshape(16, groups, cg, S), out=M.reshape(16, groups, og, S))
    Mf = M.reshape(4, 4, o * S)
    Y = scratch("wino.y", (2, 2, o * S), dt)

    def output_transform(lo: int, hi: int) -> None:
        # A^T M A: rows, then columns into the four output parity phases
        r = np.empty((2, 4, hi - lo), dt)
        for cb in range(4):
            m0, m1, m2, m3 = (Mf[i, cb, lo:hi] for i in range(4))
            np.add(m0, m1, out=r[0, cb])
            r[0, cb] += m2
            np.subtract(m1, m2, out=r[1, cb])
            r[1, cb] -= m3
        for ra in range(2):
            y0, y1 = Y[ra, 0, lo:hi], Y[ra, 1, lo:hi]
            np.add(r[ra, 0], r[ra, 1], out=y0)
            y0 += r[ra, 2]
            np.subtract(r[ra, 1], r[ra, 2], out=y1)
            y1 -= r[ra, 3]

    _chunked(o * S, output_transform)
    y = np.empty((n, o, oh, ow), dt)
    for a in range(2):
        for b in range(2):
            dst = y[:, :, a::2, b::2]
            dst[...] = Y[a, b].reshape(o, n, hq, wq).transpose(1, 0, 2, 3)[:, :, :dst.shape[2], :dst.shape[3]]
    return y


@register(op="conv2d", name="winograd", backend="numpy", device="cpu", exact=False, algorithm="winograd",
          description="Winograd F(2x2,3x3): 16 transformed-domain GEMMs over 4x4 tiles; 3x3 stride-1 "
                      "dilation-1 only; grad_weight by direct per-tap GEMM")
class WinogradConv2d(Implementation):
    """Winograd F(2x2, 3x3) for 3x3, stride-1, undilated layers (any padding, groups).

    Forward: :func:`winograd_valid` with the layer's padding. ``grad_input`` is a full correlation
    of ``dy`` with the kernel rotated by 180 degrees and its channel axes swapped, so it is the same
    Winograd forward on ``dy`` padded by ``2 - pad`` on each side (cropped where a pad exceeds 2). ``grad_weight`` is computed
    directly (one GEMM per tap, as in ``shift_gemm``): a 3x3 correlation of two image-sized
    operands has no F(2x2, 3x3) form, and its accuracy is then that of a direct method.
    """

    def unsupported(self, p: Conv2dParams, dtype: str, direction: str) -> str | None:
        if (p.kh, p.kw) != (3, 3):
            return f"winograd F(2x2,3x3) needs a 3x3 kernel, got {p.kh}x{p.kw}"
        if p.stride != (1, 1):
            return f"winograd F(2x2,3x3) needs stride 1, got stride={p.stride}"
        if p.dilation != (1, 1):
            return f"winograd F(2x2,3x3) needs dilation 1, got dilation={p.dilation}"
        return super().unsupported(p, dtype, direction)

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        y = winograd_valid(x, w, p.groups, p.pads)
        if b is not None:
            y += b[None, :, None, None]
        return y

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        w_rot = w.reshape(G, og, cg, 3, 3)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4).reshape(p.c, og, 3, 3)
        dx = winograd_valid(dy, np.ascontiguousarray(w_rot), G, tuple(2 - q for q in p.pads))
        dw = _direct_grad_weight(p, dy, x)
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return dx, dw, db
