"""shift_gemm's 3x3 stride-2 layers with padding 1 on even images: one GEMM per tap on the
input's even and odd rows, channels-last and without padding, forward and backward."""
from __future__ import annotations

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from impls._fast_common import scratch, split_k_gemms, strided_gemm
from impls._taps import to_nchw

__all__ = ["forward_unpadded", "backward_unpadded"]


def _rows(p: Conv2dParams, x: np.ndarray, tag: str) -> np.ndarray:
    """NCHW ``x`` (even height and width) -> its even and odd rows channels-last, ``(2, W+1 +
    N*H/2*W, C)``: buffer ``a`` holds rows ``2i+a`` of every image as ``(N*H/2*W, C)`` after a
    margin of ``W+1`` zero pixels (copied an image at a time: NumPy's transposing copy ran faster
    on these than on the whole batch)."""
    oh, W = p.h // 2, p.w
    buf = scratch(tag, (2, W + 1 + p.n * oh * W, p.c), x.dtype)
    buf[:, :W + 1] = 0
    img = _row_images(p, buf)
    xr = x.reshape(p.n, p.c, oh, 2, W)
    for i in range(p.n):
        for a in range(2):
            img[a, i] = xr[i, :, :, a].transpose(1, 2, 0)
    return buf


def _row_images(p: Conv2dParams, buf: np.ndarray) -> np.ndarray:
    """:func:`_rows`' buffers past their margin as ``(2, N, H/2, W, C)``: ``[a, i, r]`` is row
    ``2r+a`` of image ``i``."""
    return buf[:, p.w + 1:].reshape(2, p.n, p.h // 2, p.w, p.c)


def _from_rows(p: Conv2dParams, buf: np.ndarray) -> np.ndarray:
    """The NCHW array whose :func:`_rows` ``buf`` is (an image at a time, as there)."""
    out = np.empty((p.n, p.c, p.h, p.w), buf.dtype)
    img = _row_images(p, buf)
    outr = out.reshape(p.n, p.c, p.h // 2, 2, p.w)
    for i in range(p.n):
        for a in range(2):
            outr[i, :, :, a] = img[a, i].transpose(2, 0, 1)
    return out


def _row_window(p: Conv2dParams, buf: np.ndarray, u: int, v: int) -> np.ndarray:
    """Tap ``(u, v)``'s ``(N*OH*OW, C)`` window of :func:`_rows`' buffers: output ``m`` (flat)
    reads input pixel ``2m + v - 1`` (``- W`` for ``u = 0``) of the odd rows (``u = 0, 2``) or the
    even rows (``u = 1``), so every window is the buffer's rows at stride 2 from one offset."""
    m = p.n * (p.h // 2) * (p.w // 2)
    off = p.w + 1 + v - 1 - (p.w if u == 0 else 0)
    return buf[0 if u == 1 else 1, off:off + 2 * m:2]


_FIRST_TAP = (1, 2)   # the tap :func:`_padding_order` runs first


def _padding_order(p: Conv2dParams, buf: np.ndarray, run, tag: str) -> None:
    """``run(taps)`` on the nine taps of :func:`_rows`' buffers in six groups, with the pixels
    the later taps must read as padding zeroed in between: ``[(1, 2)]`` (``_FIRST_TAP``), then
    for each kernel row ``u`` the pair ``[(u, 0), (u, 1)]`` (whose windows are adjacent pixels:
    ``2C`` contiguous values per output) and ``[(u, 2)]`` alone, in the order below.

    Only the top and left padding is ever read. Where a tap reads it (output row ``i = 0`` or
    column ``j = 0``) its window finds instead the last row of the image before it or the last
    column of the row before it (the margin, for the first image); those are zeroed once the taps
    that read them as data have run, and the odd rows' last column is copied aside and back for
    the one tap, ``(0, 2)``, that needs it as data after their last row became padding. The
    buffers are left changed."""
    oh, W = p.h // 2, p.w
    img = _row_images(p, buf)
    run([_FIRST_TAP])
    img[0, :, :, W - 1] = 0
    run([(1, 0), (1, 1)])
    run([(2, 2)])
    last = scratch(tag + "_col", (p.n, oh - 1, p.c), buf.dtype)
    np.copyto(last, img[1, :, :oh - 1, W - 1])
    img[1, :, :, W - 1] = 0
    run([(2, 0), (2, 1)])
    img[1, :, oh - 1] = 0
    run([(0, 0), (0, 1)])
    img[1, :, :oh - 1, W - 1] = last
    run([(0, 2)])


def forward_unpadded(p: Conv2dParams, x: np.ndarray, wtap: np.ndarray, b: np.ndarray | None,
                      out: np.ndarray | None) -> np.ndarray:
    """A 3x3 stride-2 padding-1 layer on an even image, one GEMM per tap on the input's even and
    odd rows, channels-last and without padding (:func:`_rows`).

    With ``OH, OW = H/2, W/2``, output ``(i, j)``'s tap ``(u, v)`` reads input pixel ``(2i+u-1,
    2j+v-1)``: row ``i-1`` of the odd rows for ``u = 0``, row ``i`` of the even rows for
    ``u = 1`` and of the odd rows for ``u = 2``; as ``W = 2*OW``, that pixel lies at flat index
    ``2*m + v - 1`` (``- W`` for ``u = 0``) of its buffer, ``m`` being the output's flat index,
    so every tap is the buffer's rows at stride 2 from offset ``-1``, ``0``, ``1``, ``-W-1``,
    ``-W`` or ``-W+1``: a GEMM operand as it is (leading dimension ``2C``), and the column phases
    are never copied apart. The padding the taps read is supplied by :func:`_padding_order`. No
    padding columns are multiplied and thrown away (5-15 % of the GEMMs at ResNet-50's sizes), no
    zero borders written, and the output is cropped to NCHW in whole images. Every output is the
    same sum of products as with padded phases (in another tap order)."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.h // 2, p.w // 2
    buf = _rows(p, x, "fphu")
    ys = scratch("fys", (G, og, p.n * oh * ow), x.dtype)

    def run(taps: list[tuple[int, int]]) -> None:
        for u, v in taps:
            win = _row_window(p, buf, u, v)
            for gi in range(G):
                strided_gemm(wtap[gi, 3 * u + v], win[:, gi * cg:(gi + 1) * cg].T, ys[gi],
                             beta=0.0 if (u, v) == _FIRST_TAP else 1.0)

    _padding_order(p, buf, run, "fphu")
    return to_nchw(ys.reshape(p.o, p.n, oh, ow).transpose(1, 0, 2, 3), b, out)


def backward_unpadded(p: Conv2dParams, dy: np.ndarray, x: np.ndarray, wtap: np.ndarray | None,
                      db: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`forward_unpadded`, on the same channels-last even and odd rows.

    ``grad_weight``: tap ``(u, v)`` of every filter is ``dY (O/g, M) @ window (M, C/g)``, the
    windows of ``x``'s row buffers read in :func:`_padding_order`, a pair ``(u, 0), (u, 1)`` as
    one GEMM (``window (M, 2C)``) when there is one group. ``grad_input``: tap ``(u, v)``
    adds ``dY^T @ W_uv`` into its window of two row buffers of ``dx`` (BLAS writes rows 2C apart
    through the leading dimension, ``beta=1``). The taps that would add into the padding (``u = 0``
    at output row 0, ``v = 0`` at column 0) add into the wrapped pixels instead, so they run on
    ``dY`` with that row or column zeroed: row 0 is zeroed (and saved) after the four taps that
    cover every pixel once (``beta=0``), column 0 after ``(0, 1)`` and ``(0, 2)``; ``(0, 0)``
    runs with both zero, and ``(1, 0)`` and ``(2, 0)`` with row 0 restored but column 0 zero.
    The row buffers are transposed back to NCHW an image at a time."""
    G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
    oh, ow = p.h // 2, p.w // 2
    m = p.n * oh * ow
    dys = scratch("bdysu", (G, og, m), dy.dtype)
    dys.reshape(p.o, p.n, oh, ow)[...] = dy.transpose(1, 0, 2, 3)
    buf = _rows(p, x, "bphu")
    dwt = scratch("bdwtu", (G, 3, og, 3 * cg), dy.dtype)   # kernel row u: (O/g, (v, C/g))

    def weights(taps: list[tuple[int, int]]) -> None:
        u = taps[0][0]
        if taps == [(u, 0), (u, 1)] and G == 1:
            # the two taps read adjacent pixels: one GEMM with a (O, 2C) output, long enough for
            # BLAS's own threads, into both taps' columns of dwt (with a GEMM per tap the whole
            # backward of layer2.0.conv2 took 1.15-1.20x the time)
            win = _row_window(p, buf, u, 0)
            pair = np.lib.stride_tricks.as_strided(win, (m, 2 * p.c), win.strides)
            split_k_gemms([(dys[0], pair, dwt[0, u, :, :2 * cg])])
            return
        jobs = []
        for u, v in taps:
            win = _row_window(p, buf, u, v)
            jobs += [(dys[gi], win[:, gi * cg:(gi + 1) * cg], dwt[gi, u, :, v * cg:(v + 1) * cg]) for gi in range(G)]
        split_k_gemms(jobs)

    _padding_order(p, buf, weights, "bphu")
    dw = np.array(dwt.reshape(G, 3, og, 3, cg).transpose(0, 2, 4, 1, 3), order="C").reshape(p.o, cg, 3, 3)
    if wtap is None:
        return None, dw, db
    dbuf = scratch("bdxu", buf.shape, dy.dtype)
    dv = dys.reshape(G, og, p.n, oh, ow)

    def scatter(taps: list[tuple[int, int]], beta: float) -> None:
        for u, v in taps:
            win = _row_window(p, dbuf, u, v)
            for gi in range(G):
                strided_gemm(dys[gi].T, wtap[gi, 3 * u + v], win[:, gi * cg:(gi + 1) * cg], beta)

    scatter([(1, 1), (1, 2), (2, 1), (2, 2)], 0.0)   # every pixel of both buffers written once
    row0 = scratch("bdysu_row", (G, og, p.n, ow), dy.dtype)
    np.copyto(row0, dv[:, :, :, 0])
    dv[:, :, :, 0] = 0
    scatter([(0, 1), (0, 2)], 1.0)
    dv[..., 0] = 0
    scatter([(0, 0)], 1.0)
    dv[:, :, :, 0, 1:] = row0[..., 1:]
    scatter([(1, 0), (2, 0)], 1.0)
    return _from_rows(p, dbuf), dw, db
