"""Shared by the fast NumPy families: accumulating GEMM into a preallocated output, and the
geometry of the shifted-view (implicit GEMM) formulation of a strided, dilated, padded conv2d."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convbench.ops.conv2d import Conv2dParams

try:  # BLAS with beta: accumulate in place instead of matmul into a temporary and add
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - scipy is a dependency; NumPy alone still works
    _blas = None

__all__ = ["single_thread_blas", "gemm", "Geometry", "geometry", "to_phases", "from_phases", "waste"]


_CONTROLLER = None


def single_thread_blas():
    """Context: BLAS on one thread. OpenBLAS splits a GEMM with a small output and a long inner
    dimension (a weight gradient: ``(C, rows) @ (rows, O)``) across threads so badly that two
    threads ran it 5-20x slower than one on this machine."""
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        return _CONTROLLER.limit(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        import contextlib

        return contextlib.nullcontext()


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool) -> None:
    """``c = a @ b`` or ``c += a @ b`` for C-contiguous 2-D arrays, without a temporary.

    ``a`` (m, k), ``b`` (k, n), ``c`` (m, n), one dtype. A C-contiguous matrix is the transpose of
    a Fortran-contiguous one, so ``c^T = b^T a^T`` goes to BLAS ``?gemm`` with ``beta=1`` on the
    caller's memory (``overwrite_c``): no copy, no temporary.
    """
    if not accumulate:
        np.matmul(a, b, out=c)
        return
    if _blas is not None and c.flags.c_contiguous and a.flags.c_contiguous and b.flags.c_contiguous:
        fn = _blas.sgemm if c.dtype == np.float32 else _blas.dgemm
        r = fn(1.0, b.T, a.T, 1.0, c.T, overwrite_c=1)
        if r.ctypes.data != c.ctypes.data:  # f2py copied: keep the result anyway
            c[...] = r.T
        return
    c += np.matmul(a, b)


@dataclass(frozen=True)
class Geometry:
    """Shifted-view layout of a conv2d: the padded input split into stride phases, each flattened.

    Phase ``(a, b)`` holds padded rows ``a, a+sh, ...`` and columns ``b, b+sw, ...`` as a
    ``(Hq, Wq)`` image; images of the batch follow each other, so the flattened phase is
    ``(n*Hq*Wq + extra, channels)``. Kernel tap ``(u, v)`` then reads, for *all* outputs at once,
    the contiguous rows ``off .. off+m`` of one phase: output ``(n, i, j)`` lives at row
    ``n*Hq*Wq + i*Wq + j`` and its tap at ``+ off``. Rows with ``j >= OW`` or ``i >= OH`` are
    computed and thrown away: the price of a contiguous GEMM operand (``waste``).
    """

    hq: int
    wq: int
    rows: int          # n*Hq*Wq
    m: int             # rows the GEMMs cover: up to the last real output
    extra: int         # zero rows after the last image, so every tap's slice is in bounds
    phases: tuple[tuple[int, int], ...]
    taps: tuple[tuple[int, int, int, int], ...]   # (u, v, phase index, row offset)


def geometry(p: Conv2dParams) -> Geometry:
    (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
    pt, pb, pl, pr = p.pads
    hp, wp = p.h + pt + pb, p.w + pl + pr
    hq, wq = -(-hp // sh), -(-wp // sw)
    phases: list[tuple[int, int]] = []
    taps = []
    for u in range(p.kh):
        for v in range(p.kw):
            ph = ((u * dh) % sh, (v * dw) % sw)
            if ph not in phases:
                phases.append(ph)
            off = (u * dh // sh) * wq + (v * dw // sw)
            taps.append((u, v, phases.index(ph), off))
    rows = p.n * hq * wq
    m = (p.n - 1) * hq * wq + (oh - 1) * wq + ow
    extra = max(0, max(t[3] for t in taps) + m - rows)
    return Geometry(hq, wq, rows, m, extra, tuple(phases), tuple(taps))


def _phase_ranges(p: Conv2dParams, a: int, b: int) -> tuple[slice, slice, slice, slice]:
    """Phase-image slices holding real input, and the input slices they hold."""
    (sh, sw) = p.stride
    pt, _, pl, _ = p.pads
    i0, i1 = -(-(pt - a) // sh), -(-(pt + p.h - a) // sh)
    j0, j1 = -(-(pl - b) // sw), -(-(pl + p.w - b) // sw)
    i0, j0 = max(i0, 0), max(j0, 0)
    r0, c0 = a + sh * i0 - pt, b + sw * j0 - pl
    return slice(i0, max(i1, i0)), slice(j0, max(j1, j0)), slice(r0, p.h, sh), slice(c0, p.w, sw)


def to_phases(p: Conv2dParams, g: Geometry, x: np.ndarray, groups: int) -> np.ndarray:
    """NCHW ``x`` -> zero-padded channels-last phases ``(phases, groups, rows+extra, C/groups)``."""
    cg = p.c // groups
    out = np.zeros((len(g.phases), groups, g.rows + g.extra, cg), x.dtype)
    xg = x.reshape(p.n, groups, cg, p.h, p.w)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = _phase_ranges(p, a, b)
        view = out[k, :, :g.rows].reshape(groups, p.n, g.hq, g.wq, cg)
        view[:, :, iq, jq, :] = xg[:, :, :, rs, cs].transpose(1, 0, 3, 4, 2)
    return out


def from_phases(p: Conv2dParams, g: Geometry, ph: np.ndarray, groups: int) -> np.ndarray:
    """The adjoint of :func:`to_phases`: phases -> NCHW, padding dropped."""
    cg = p.c // groups
    covered = len(g.phases) == p.stride[0] * p.stride[1]
    dx = (np.empty if covered else np.zeros)((p.n, groups, cg, p.h, p.w), ph.dtype)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = _phase_ranges(p, a, b)
        view = ph[k, :, :g.rows].reshape(groups, p.n, g.hq, g.wq, cg)
        dx[:, :, :, rs, cs] = view[:, :, iq, jq, :].transpose(1, 0, 4, 2, 3)
    return dx.reshape(p.n, p.c, p.h, p.w)


def waste(p: Conv2dParams) -> float:
    """Fraction of GEMM rows computed beyond the real outputs."""
    g = geometry(p)
    oh, ow = p.out_hw
    return g.m / (p.n * oh * ow) - 1.0


def log2(n: int) -> float:
    return math.log2(max(n, 2))
