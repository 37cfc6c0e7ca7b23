"""conv2d through real 2-D FFTs: pointwise products summed over channels in the frequency domain."""
from __future__ import annotations

import os

import numpy as np

from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from impls._numpy import crop, pad

try:
    import scipy.fft as _fft
    _WORKERS = {"workers": os.cpu_count() or 1}

    def _next_len(n: int) -> int:
        return _fft.next_fast_len(n, real=True)
except ImportError:  # pragma: no cover - scipy is a dependency; numpy.fft works alone
    import numpy.fft as _fft  # type: ignore[no-redef]
    _WORKERS = {}

    def _next_len(n: int) -> int:
        return n

__all__ = ["FftConv2d", "fft_size"]


def fft_size(p: Conv2dParams) -> tuple[int, int]:
    """Transform size: the padded input, rounded up to a fast length (no circular wrap reaches a kept output)."""
    pt, pb, pl, pr = p.pads
    return _next_len(p.h + pt + pb), _next_len(p.w + pl + pr)


def _dilated(p: Conv2dParams, w: np.ndarray) -> np.ndarray:
    """The kernel with ``dilation - 1`` zeros between taps: dilation is a sparser kernel."""
    dh, dw = p.dilation
    if (dh, dw) == (1, 1):
        return w
    out = np.zeros((*w.shape[:2], dh * (p.kh - 1) + 1, dw * (p.kw - 1) + 1), w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def _mix(a: np.ndarray, b: np.ndarray, groups: int, conj_b: bool, pattern: str) -> np.ndarray:
    """Per frequency, a channel-mixing complex matrix product, one per group.

    ``pattern`` ``'nc,oc->no'`` (forward), ``'no,oc->nc'`` (grad_input), ``'no,nc->oc'`` (grad_weight):
    operands ``(A0, A1, F...)`` are moved to frequency-major stacks so each frequency is one small
    complex GEMM (``np.matmul`` over the stack).
    """
    fshape = a.shape[2:]
    nf = int(np.prod(fshape))
    if conj_b:
        b = np.conj(b)
    outs = []
    for gi in range(groups):
        if pattern == "nc,oc->no":
            ca = a.shape[1] // groups
            ob = b.shape[0] // groups
            A = a[:, gi * ca:(gi + 1) * ca].reshape(a.shape[0], ca, nf).transpose(2, 0, 1)   # (F, N, C)
            B = b[gi * ob:(gi + 1) * ob].reshape(ob, ca, nf).transpose(2, 1, 0)               # (F, C, O)
        elif pattern == "no,oc->nc":
            oa = a.shape[1] // groups
            A = a[:, gi * oa:(gi + 1) * oa].reshape(a.shape[0], oa, nf).transpose(2, 0, 1)   # (F, N, O)
            B = b[gi * oa:(gi + 1) * oa].reshape(oa, b.shape[1], nf).transpose(2, 0, 1)       # (F, O, C)
        else:  # 'no,nc->oc': a = dY (N, O), b = X (N, C)
            oa = a.shape[1] // groups
            cb = b.shape[1] // groups
            A = a[:, gi * oa:(gi + 1) * oa].reshape(a.shape[0], oa, nf).transpose(2, 1, 0)   # (F, O, N)
            B = b[:, gi * cb:(gi + 1) * cb].reshape(b.shape[0], cb, nf).transpose(2, 0, 1)   # (F, N, C)
        outs.append(np.matmul(A, B))
    axis = 1 if pattern == "no,nc->oc" else 2
    r = np.concatenate(outs, axis=axis) if groups > 1 else outs[0]     # (F, rows, cols)
    return np.ascontiguousarray(r.transpose(1, 2, 0)).reshape(r.shape[1], r.shape[2], *fshape)


@register(op="conv2d", name="fft", backend="numpy", device="cpu", exact=False, algorithm="fft",
          description="real 2-D FFTs (scipy.fft, all cores), channel mixing as one complex GEMM per "
                      "frequency; stride by subsampling the stride-1 result, dilation by a zero-dilated kernel")
class FftConv2d(Implementation):
    """Convolution theorem: ``y = irfft2(sum_c rfft2(x_c) * conj(rfft2(w_oc)))``.

    The transform is the size of the padded input (rounded up to a fast length): a correlation
    computed circularly only wraps onto outputs past ``OH``/``OW`` of the stride-1 result, which
    are cropped. Cost is ``O(L log L)`` per channel plus ``N*C*O`` complex products per
    frequency, independent of the kernel size: it wins for large kernels.

    Stride is computed at stride 1 and subsampled, which wastes a factor ``sh*sw`` of the
    pointwise products and inverse transforms. Dilation zero-dilates the kernel (free: the kernel
    is padded to the transform size anyway).

    Backward is the adjoint, in the same frequency domain: ``grad_input = irfft2(sum_o DY_o *
    W_oc)`` with ``dy`` scattered at stride positions of a zero stride-1 grid (a full correlation
    with the flipped kernel, via FFT), and ``grad_weight = irfft2(sum_n conj(DY_no) * X_nc)``
    cropped to the (dilated) kernel's support.
    """

    def unsupported(self, p: Conv2dParams, dtype: str, direction: str) -> str | None:
        # a 1x1 kernel is a plain GEMM: transforming whole images to multiply by a constant per
        # channel only adds work (and, strided, a factor sh*sw of it)
        if p.kh == p.kw == 1:
            return "fft does not take 1x1 kernels (a GEMM with nothing to gain from transforms)"
        return super().unsupported(p, dtype, direction)

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        fh, fw = fft_size(p)
        xf = _fft.rfft2(pad(p, x), s=(fh, fw), **_WORKERS)
        wf = _fft.rfft2(_dilated(p, w), s=(fh, fw), **_WORKERS)
        yf = _mix(xf, wf, p.groups, True, "nc,oc->no")
        y1 = _fft.irfft2(yf, s=(fh, fw), **_WORKERS)
        oh, ow = p.out_hw
        (sh, sw) = p.stride
        y = np.ascontiguousarray(y1[:, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw], dtype=x.dtype)
        if b is not None:
            y += b[None, :, None, None]
        return y

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        fh, fw = fft_size(p)
        oh, ow = p.out_hw
        (sh, sw) = p.stride
        dy1 = np.zeros((p.n, p.o, fh, fw), dy.dtype)
        dy1[:, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw] = dy
        dyf = _fft.rfft2(dy1, **_WORKERS)
        wd = _dilated(p, w)
        wf = _fft.rfft2(wd, s=(fh, fw), **_WORKERS)
        xf = _fft.rfft2(pad(p, x), s=(fh, fw), **_WORKERS)
        dxf = _mix(dyf, wf, p.groups, False, "no,oc->nc")
        dxp = _fft.irfft2(dxf, s=(fh, fw), **_WORKERS)
        dx = np.ascontiguousarray(crop(p, dxp), dtype=x.dtype)
        dwf = _mix(np.conj(dyf), xf, p.groups, False, "no,nc->oc")
        dwfull = _fft.irfft2(dwf, s=(fh, fw), **_WORKERS)
        (dh, dwl) = p.dilation
        dw = np.ascontiguousarray(dwfull[:, :, :wd.shape[2]:dh, :wd.shape[3]:dwl], dtype=w.dtype)
        db = dy.sum(axis=(0, 2, 3)) if p.bias else None
        return dx, dw, db
