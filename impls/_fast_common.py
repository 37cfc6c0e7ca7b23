"""Shared by the fast NumPy families: accumulating GEMM into a preallocated output, and the
geometry of the shifted-view (implicit GEMM) formulation of a strided, dilated, padded conv2d."""
from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass

import numpy as np

from convbench.ops.conv2d import Conv2dParams

try:  # BLAS with beta: accumulate in place instead of matmul into a temporary and add
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - scipy is a dependency; NumPy alone still works
    _blas = None

__all__ = ["pool", "workers", "split_k_gemms", "zero_border", "single_thread_blas", "gemm", "strided_gemm", "scratch", "Geometry", "geometry", "phase_ranges",
           "to_phases", "from_phases"]


_CONTROLLER = None


def _controller():
    """threadpoolctl's controller of the loaded thread pools, made once (None without it)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            return None
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def single_thread_blas():
    """Context: BLAS on one thread. OpenBLAS splits a GEMM with a small output and a long inner
    dimension (a weight gradient: ``(C, rows) @ (rows, O)``) across threads so badly that two
    threads ran it 5-20x slower than one on this machine."""
    ctl = _controller()
    if ctl is None:  # pragma: no cover - threadpoolctl is a dependency
        import contextlib

        return contextlib.nullcontext()
    return ctl.limit(limits=1, user_api="blas")


_POOL = None


def pool():
    """The shared executor of the fast families' Python worker threads (made on first use).
    NumPy's ufuncs and BLAS through ctypes release the GIL, so two threads run two cores."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
    return _POOL


def split_k_gemms(jobs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """``c = a @ b`` for each job, the long inner dimension split in two halves run on two Python
    threads with one-thread BLAS each (ctypes drops the GIL), then added. OpenBLAS's own threading
    of a small-output, long-``K`` GEMM (a weight gradient) was several times slower than this.
    A sum split in two is still a sum of the same products: exact on small integers."""
    if all(c.size >= 32768 for _, _, c in jobs) or min(a.shape[1] for a, _, _ in jobs) < 4096:
        # a big enough output is threaded well by BLAS itself (measured: faster than the split)
        for a, b, c in jobs:
            strided_gemm(a, b, c)
        return
    with single_thread_blas():
        parts = [np.empty_like(c) for _, _, c in jobs]

        def half(i: int, lo: int, hi: int, out: np.ndarray) -> None:
            a, b, _ = jobs[i]
            strided_gemm(a[:, lo:hi], b[lo:hi], out)

        futs = []
        for i, (a, _, c) in enumerate(jobs):
            k = a.shape[1] // 2
            futs.append(pool().submit(half, i, 0, k, c))
            futs.append(pool().submit(half, i, k, a.shape[1], parts[i]))
        for f in futs:
            f.result()
        for (_, _, c), extra in zip(jobs, parts):
            c += extra


def workers() -> int:
    """Threads the element-wise work may use: as many as the BLAS pool has now, so that
    ``--threads N`` (threadpoolctl) bounds this code as it bounds BLAS."""
    ctl = _controller()
    blas = [c for c in ctl.lib_controllers if c.user_api == "blas"] if ctl is not None else []
    return max(1, min(c.num_threads for c in blas)) if blas else 1


def zero_border(img: np.ndarray, rows: slice, cols: slice) -> None:
    """Zero every element of ``img[..., H, W]`` outside ``img[..., rows, cols]`` (the padding of a
    phase image whose inside a copy is about to fill), instead of zeroing the whole buffer first."""
    r0, r1 = rows.start, max(rows.stop, rows.start)
    c0, c1 = cols.start, max(cols.stop, cols.start)
    img[..., :r0, :] = 0
    img[..., r1:, :] = 0
    img[..., r0:r1, :c0] = 0
    img[..., r0:r1, c1:] = 0


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
    computed and thrown away: the price of a contiguous GEMM operand.
    """

    hq: int
    wq: int
    rows: int          # n*Hq*Wq
    m: int             # rows the GEMMs cover: up to the last real output
    extra: int         # zero rows after the last image, so every tap's slice is in bounds
    phases: tuple[tuple[int, int], ...]
    taps: tuple[tuple[int, int, int, int], ...]   # (u, v, phase index, row offset)


@functools.lru_cache(maxsize=512)
def geometry(p: Conv2dParams) -> Geometry:
    """The :class:`Geometry` of ``p``, computed once per parameter set (it is immutable): building
    it took ~30 us a call, a fifth of a batch-1 layer's whole forward at 1x1 pixels."""
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


def phase_ranges(p: Conv2dParams, a: int, b: int) -> tuple[slice, slice, slice, slice]:
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
        iq, jq, rs, cs = phase_ranges(p, a, b)
        view = out[k, :, :g.rows].reshape(groups, p.n, g.hq, g.wq, cg)
        view[:, :, iq, jq, :] = xg[:, :, :, rs, cs].transpose(1, 0, 3, 4, 2)
    return out


def from_phases(p: Conv2dParams, g: Geometry, ph: np.ndarray, groups: int) -> np.ndarray:
    """The adjoint of :func:`to_phases`: phases -> NCHW, padding dropped."""
    cg = p.c // groups
    covered = len(g.phases) == p.stride[0] * p.stride[1]
    dx = (np.empty if covered else np.zeros)((p.n, groups, cg, p.h, p.w), ph.dtype)
    for k, (a, b) in enumerate(g.phases):
        iq, jq, rs, cs = phase_ranges(p, a, b)
        view = ph[k, :, :g.rows].reshape(groups, p.n, g.hq, g.wq, cg)
        dx[:, :, :, rs, cs] = view[:, :, iq, jq, :].transpose(1, 0, 4, 2, 3)
    return dx.reshape(p.n, p.c, p.h, p.w)


def log2(n: int) -> float:
    return math.log2(max(n, 2))


# --- strided BLAS: any 2-D view with one unit stride, beta, in place ---------------------------

_SGEMM = _DGEMM = None


def _numpy_blas():
    """NumPy's own OpenBLAS (64-bit ints), where it ships one: on these tall-skinny conv shapes
    it ran 1.3-2x faster than the OpenBLAS behind scipy.linalg (same kernel name, newer build)."""
    import ctypes
    import glob
    import os

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas64_*"))
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    ip = ctypes.POINTER(ctypes.c_int64)
    fns = []
    for name, real in (("scipy_sgemm_64_", ctypes.c_float), ("scipy_dgemm_64_", ctypes.c_double)):
        fn = getattr(lib, name, None)
        if fn is None:
            return None
        fn.restype = None
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ip, ip, ip, ctypes.POINTER(real), ctypes.c_void_p,
                       ip, ctypes.c_void_p, ip, ctypes.POINTER(real), ctypes.c_void_p, ip,
                       ctypes.c_size_t, ctypes.c_size_t]
        fns.append((fn, real, ctypes.c_int64))
    return fns


def _load_strided_gemm():
    """``?gemm`` callable through ctypes on views with a leading dimension (``np.matmul`` has no
    ``beta`` and f2py copies any non-contiguous view): NumPy's OpenBLAS where it has one, else the
    function pointers of scipy's Cython BLAS."""
    global _SGEMM, _DGEMM
    import ctypes

    try:
        fns = _numpy_blas()
    except OSError:  # pragma: no cover - library not loadable
        fns = None
    if fns is not None:
        _SGEMM, _DGEMM = fns
        return

    from scipy.linalg import cython_blas

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    ip = ctypes.POINTER(ctypes.c_int)
    fns = []
    for name, real in (("sgemm", ctypes.c_float), ("dgemm", ctypes.c_double)):
        cap = cython_blas.__pyx_capi__[name]
        ptr = api.PyCapsule_GetPointer(cap, api.PyCapsule_GetName(cap))
        proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ip, ip, ip,
                                 ctypes.POINTER(real), ctypes.c_void_p, ip, ctypes.c_void_p, ip,
                                 ctypes.POINTER(real), ctypes.c_void_p, ip)
        fns.append((proto(ptr), real, ctypes.c_int))
    _SGEMM, _DGEMM = fns


def _blas_operand(x: np.ndarray) -> tuple[bytes, int] | None:
    """(trans flag, leading dimension) of a row-major view as the column-major transpose BLAS sees."""
    isz = x.itemsize
    s0, s1 = x.strides
    if (s1 == isz or x.shape[1] == 1) and s0 % isz == 0 and s0 // isz >= max(1, x.shape[1]):
        return b"N", max(1, s0 // isz, x.shape[1])
    if (s0 == isz or x.shape[0] == 1) and s1 % isz == 0 and s1 // isz >= max(1, x.shape[0]):
        return b"T", max(1, s1 // isz, x.shape[0])
    return None


def strided_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float = 0.0) -> None:
    """``c = a @ b + beta*c`` in place, for float32/float64 2-D views with a unit stride each.

    ``a`` (m, k), ``b`` (k, n), ``c`` (m, n): views into larger buffers (a column window of a
    wide matrix, a transpose) go to BLAS as they are, through their leading dimension; no copy.
    Anything BLAS cannot take is handled by NumPy with the same result.
    """
    if c.dtype in (np.float32, np.float64) and a.dtype == b.dtype == c.dtype and min(c.shape) > 0 \
            and a.shape[1] > 0:
        if _SGEMM is None:
            try:
                _load_strided_gemm()
            except Exception:  # pragma: no cover - scipy without cython_blas
                pass
        ops = [_blas_operand(v) for v in (a, b)]
        cop = _blas_operand(c)
        if _SGEMM is not None and None not in ops and cop is not None and cop[0] == b"N":
            import ctypes

            fn, real, ci = _SGEMM if c.dtype == np.float32 else _DGEMM
            (ta, lda), (tb, ldb) = ops
            m, k = a.shape
            n = c.shape[1]
            ref = ctypes.byref
            # row-major C = A B is column-major C^T = B^T A^T
            args = [tb, ta, ref(ci(n)), ref(ci(m)), ref(ci(k)), ref(real(1.0)), b.ctypes.data, ref(ci(ldb)),
                    a.ctypes.data, ref(ci(lda)), ref(real(beta)), c.ctypes.data, ref(ci(cop[1]))]
            if ci is ctypes.c_int64:
                args += [1, 1]    # hidden Fortran lengths of the two flags
            fn(*args)
            return
    if beta:
        c += a @ b
    else:
        np.matmul(a, b, out=c)


_WORKSPACE = threading.local()


def scratch(tag: str, shape: tuple[int, ...], dtype, zero: bool = False) -> np.ndarray:
    """A reusable per-thread scratch array for ``tag`` (grown, never shrunk).

    Fresh multi-megabyte temporaries are mmap'd and unmapped by the allocator on every call, and
    the page faults of touching them again cost more than the convolution's copies (measured: a
    56x56 layer 57 ms with fresh buffers, 30 ms reusing them). Never return one to a caller."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    store = _WORKSPACE.__dict__
    buf = store.get(tag)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(max(nbytes, 1), np.uint8)
        store[tag] = buf
    out = buf[:nbytes].view(dtype).reshape(shape)
    if zero:
        out.fill(0)
    return out
