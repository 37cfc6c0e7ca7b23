"""conv2d by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016) for 3x3 stride-1 layers."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convbench.ops.conv2d import Conv2dParams
from convbench.registry import Implementation, register
from impls.shift_gemm import grad_weight as _direct_grad_weight

__all__ = ["WinogradConv2d", "winograd_valid", "G_MATRIX", "GROWTH"]

#: the filter transform G of F(2, 3); B^T and A^T are applied as the additions they are
G_MATRIX = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
#: elementwise error growth of F(2x2, 3x3) against 9 for the direct 3x3 sum (see docs/fast-algorithms.md):
#: sum of |A^T| (|G| 1 |G|^T  .  |B^T| 1 |B|) |A| over one output
GROWTH = 64.0


def _rows(d: np.ndarray, axis: int, out: np.ndarray) -> None:
    """``B^T d`` along ``axis`` (length 4) into ``out`` (same layout, axis first)."""
    t = [np.take(d, i, axis=axis) for i in range(4)]
    np.subtract(t[0], t[2], out=out[0])
    np.add(t[1], t[2], out=out[1])
    np.subtract(t[2], t[1], out=out[2])
    np.subtract(t[1], t[3], out=out[3])


def winograd_valid(x: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """Unpadded ('valid') stride-1 3x3 cross-correlation of NCHW ``x`` by ``w``, via F(2x2, 3x3).

    Tiles of 4x4 inputs (overlapping by 2) give 2x2 outputs; per tile and channel pair the 9
    multiplications of a direct 3x3 become 16 of the transformed domain, but the channel sum moves
    into 16 GEMMs ``U[k] (O, C) @ V[k] (C, tiles)``: 2.25x fewer multiplications in total.
    """
    n, c, h, wd = x.shape
    o, cg = w.shape[:2]
    og = o // groups
    oh, ow = h - 2, wd - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    dt = x.dtype
    hh, ww = 2 * th + 2, 2 * tw + 2
    if (hh, ww) != (h, wd):
        xq = np.zeros((n, c, hh, ww), dt)
        xq[:, :, :h, :wd] = x
    else:
        xq = np.ascontiguousarray(x)
    s = xq.strides
    tiles = as_strided(xq, (n, c, th, tw, 4, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]), writeable=False)
    # V = B^T d B, laid out (4, 4, C, N, th, tw) so that each of the 16 is a (C, tiles) matrix
    t1 = np.empty((4, n, c, th, tw, 4), dt)
    _rows(tiles, 4, t1)
    v = np.empty((4, 4, c, n, th, tw), dt)
    for a in range(4):
        _rows(t1[a], 4, v[a].transpose(0, 2, 1, 3, 4))
    u = np.einsum("ai,ocij,bj->aboc", G_MATRIX.astype(dt), w, G_MATRIX.astype(dt))  # (4, 4, O, C/g)
    npix = n * th * tw
    m = np.empty((4, 4, o, npix), dt)
    vg = v.reshape(16, groups, cg, npix)
    ug = u.reshape(16, groups, og, cg)
    mg = m.reshape(16, groups, og, npix)
    for gi in range(groups):
        np.matmul(ug[:, gi], vg[:, gi], out=mg[:, gi])
    # Y = A^T M A: rows then columns, written straight into the interleaved output tiles
    r = np.empty((2, 4, o, npix), dt)
    np.add(m[0], m[1], out=r[0]); r[0] += m[2]
    np.subtract(m[1], m[2], out=r[1]); r[1] -= m[3]
    y = np.empty((n, o, th, 2, tw, 2), dt)
    for a in range(2):
        ra = r[a].reshape(4, o, n, th, tw)
        for b_, (i, j, k, sign) in enumerate(((0, 1, 2, 1.0), (1, 2, 3, -1.0))):
            dst = y[:, :, :, a, :, b_].transpose(1, 0, 2, 3)
            if sign > 0:
                np.add(ra[i], ra[j], out=dst); dst += ra[k]
            else:
                np.subtract(ra[i], ra[j], out=dst); dst -= ra[k]
    y = y.reshape(n, o, 2 * th, 2 * tw)
    return y if (2 * th, 2 * tw) == (oh, ow) else y[:, :, :oh, :ow]


def _padded(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    pt, pb, pl, pr = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))


@register(op="conv2d", name="winograd", backend="numpy", device="cpu", exact=False, algorithm="winograd",
          description="Winograd F(2x2,3x3): 16 transformed-domain GEMMs over 4x4 tiles; 3x3 stride-1 "
                      "dilation-1 only; grad_weight by direct per-tap GEMM")
class WinogradConv2d(Implementation):
    """Winograd F(2x2, 3x3) for 3x3, stride-1, undilated layers (any padding, groups).

    Forward: :func:`winograd_valid` on the padded input. ``grad_input`` is a full correlation of
    ``dy`` with the kernel rotated by 180 degrees and its channel axes swapped, so it is the same
    Winograd forward on ``dy`` padded by 2, cropped to the input. ``grad_weight`` is computed
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
        y = np.ascontiguousarray(winograd_valid(_padded(x, p.pads), w, p.groups))
        if b is not None:
            y += b[None, :, None, None]
        return y

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        G, cg, og = p.groups, p.c // p.groups, p.o // p.groups
        w_rot = w.reshape(G, og, cg, 3, 3)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4).reshape(p.c, og, 3, 3)
        dxp = winograd_valid(_padded(dy, (2, 2, 2, 2)), np.ascontiguousarray(w_rot), G)
        pt, _, pl, _ = p.pads
        dx = np.ascontiguousarray(dxp[:, :, pt:pt + p.h, pl:pl + p.w])
        dw = _direct_grad_weight(p, dy, x)
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return dx, dw, db
