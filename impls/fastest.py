"""conv2d that runs, per case and direction, whichever NumPy algorithm is fastest on this machine.

Like cuDNN's benchmark mode: the choice comes from this machine's crossover data (bench records),
else from timing the candidates on first use (autotune, opt-in), else from a cost model.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from convbench.ops import get_op
from convbench.ops.conv2d import Conv2dParams
from convbench.protocol import Implementation, register
from convbench.registry import availability, get_impl
from convbench.verify.tolerance import BOUNDS, register_bound
from impls import _crossover
from impls.depthwise import geometry_cells
from impls.shift_gemm import forward_layout

__all__ = ["FastestConv2d", "CANDIDATES", "crossover_path", "cost_model"]

#: the NumPy algorithms it chooses among, looked up in the registry at call time
CANDIDATES = ("shift_gemm", "im2col", "stride_tricks", "fft", "winograd", "depthwise")

# Cost-model constants: only their ratios matter to a choice. GEMM throughput with inner
# dimension K is PEAK*K/(K+_K_HALF): on the AMD EPYC VM without AVX-512 (OpenBLAS's Haswell
# kernel, one thread, 2026-12-03) GEMMs of ResNet-50's shapes ran at 65 GFLOP/s with K=64, 70 with
# K=128, 63-77 with K=384-2304, and the stem's per-row GEMMs (K=21, 100k columns) at 58: about
# half the rate near K=8 (the fit of 48 made on an earlier VM ranked the stem's forward, K=21,
# behind im2col, which ran it 1.2-1.4x slower); FFTs and complex channel mixing run well below
# GEMM peak; copies at _BW bytes/s.
_PEAK = 60e9
_K_HALF = 8.0
_FFT_RATE = 3e9
_CGEMM_EFF = 0.5
_BW = 8e9
_EINSUM_PENALTY = 1.5
# Winograd's transforms: element-wise NumPy passes (each reads two operands and writes one) over
# the input and output phases. impls/winograd.py makes about 24; 16 is what its measured times
# fit on the AMD EPYC VM (2026-12-03, one thread: ResNet-50's 128-channel 28x28 3x3 layer at
# 0.80x torch_cpu's time forward against shift_gemm's 1.26x, the 64-channel 56x56 one at 1.16x
# against 1.24x, where shift_gemm's smaller copies keep it ahead at two threads)
_WINOGRAD_PASSES = 16
# float32 element-wise operations per second of NumPy's in-cache passes (one core, AMD EPYC VM,
# blocks of 512 KiB: an add 0.12 ns an element, a multiply by a broadcast weight 0.27)
_ELEM_RATE = 3.4e9
# depthwise: taps x positions per second of einsum's fused multiply-add loop (same VM, 2026-12-03:
# 0.16-0.18 ns per tap and position in cache)
_TAP_RATE = 6e9


def _gemm_s(flops: float, k: int) -> float:
    return flops / (_PEAK * k / (k + _K_HALF))


def cost_model(name: str, p: Conv2dParams, dtype: str, direction: str) -> float:
    """Predicted seconds of candidate ``name`` on ``p`` (a ranking, not a forecast)."""
    item = np.dtype(dtype).itemsize
    oh, ow = p.out_hw
    cg, og = p.c // p.groups, p.o // p.groups
    nx, ny = p.n * p.c * p.h * p.w, p.n * p.o * oh * ow
    conv = 2.0 * p.macs
    passes = 1 if direction == "forward" else 2
    k2 = p.kh * p.kw
    if name == "shift_gemm":
        # the layout its forward takes (impls/shift_gemm.py): the copies it makes and the inner
        # dimension of its GEMMs
        lay = forward_layout(p)
        copies = {"gemm_per_image": ny, "taps": nx + 3 * ny, "taps_unpadded": nx + 2 * ny,
                  "tap_columns": k2 * p.c * p.n * oh * ow + nx + 2 * ny}.get(lay, p.kw * nx + 3 * ny)
        # per-tap GEMMs (K = C/g >= 64) ran as fast as per-row ones (K = kw*C/g) with NumPy's BLAS
        s = _gemm_s(conv, cg * (k2 if lay == "tap_columns" else p.kw)) + copies * item / _BW
        if cg == 1 and p.groups > 1:
            s = conv * 4 / _BW * item   # broadcast multiply-adds: memory bound
        return passes * s
    if name in ("im2col", "stride_tricks"):
        patch = p.n * oh * ow * p.c * k2
        s = _gemm_s(conv, cg * k2) + (3 * patch + nx + ny) * item / _BW
        s *= passes * (1 + (direction != "forward"))   # col2im / adjoint views: one more pass each
        return s * (_EINSUM_PENALTY if name == "stride_tricks" else 1.0)
    if name == "depthwise":
        # impls/depthwise.py: one fused multiply-add per tap over each plane's phase grid (outputs
        # over the padded width) and, on short runs, an add per further column of taps; the
        # planes' copy in, the crop out; backward: grad_input the same sums, grad_weight one dot
        # product per tap over the whole grid
        grid = p.n * p.o * geometry_cells(p)
        s = k2 * grid / _TAP_RATE + (p.kw - 1) * grid / _ELEM_RATE + (nx + ny) * item / _BW
        if direction != "forward":
            s += 2 * k2 * grid / _TAP_RATE + (p.kw - 1) * grid / _ELEM_RATE + (nx + ny) * item / _BW
        return s
    if name == "winograd":
        # 16 GEMMs (O/g, C/g) @ (C/g, N*Hq*Wq) over tile grids one row and column larger than the
        # output's, the transforms' passes, the phase copies in and out (with the layout of
        # impls/winograd.py these ranked ResNet-50's four 3x3 stride-1 layers as measured on
        # 2026-11-22 within 0.3 of the measured time ratio to shift_gemm)
        span = p.n * (-(-oh // 2) + 1) * (-(-ow // 2) + 1)
        s = (_gemm_s(2.0 * 16 * span * p.o * cg, cg)
             + (_WINOGRAD_PASSES * 3 * span * (p.c + p.o) + 2 * (nx + ny)) * item / _BW)
        if direction != "forward":
            s = s + cost_model("shift_gemm", p, dtype, "forward")   # grad_weight is direct
        return s
    if name == "fft":
        pt, pb, pl, pr = p.pads
        ell = (p.h + pt + pb) * (p.w + pl + pr)
        transforms = (p.n * p.c + p.o * cg + p.n * p.o) * 2.5 * ell * math.log2(max(ell, 2))
        mix = 8.0 * p.n * p.c * og * ell / 2
        return passes * (transforms / _FFT_RATE + mix / (_PEAK * _CGEMM_EFF)
                         + 4 * (p.n * p.c + p.n * p.o) * ell * item / _BW)
    raise ValueError(f"cost_model: unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")


def crossover_path() -> Path | None:
    """This machine's crossover file (:func:`impls._crossover.crossover_path`): where ``convbench
    bench`` keeps every time it measures. ``$CONVBENCH_CROSSOVER`` overrides it (``off``: none)."""
    return _crossover.crossover_path()


def _key(p: Conv2dParams, dtype: str, direction: str) -> tuple[str, str, str]:
    return (p.descriptor, dtype, direction)


def _add_lines(table: dict[tuple[str, str, str], dict[str, float]], lines: list[bytes]) -> None:
    """Median time per (case, dtype, direction) and candidate from bench records, into ``table``:
    a later line replaces an earlier one, so that a candidate whose code changed is judged by
    what it does now."""
    for line in lines:
        try:
            r = json.loads(line)
            if r.get("status") != "ok" or r.get("impl") not in CANDIDATES or r.get("op", "conv2d") != "conv2d":
                continue
            p = Conv2dParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in r["params"].items()})
            t = float(r["t_median_s"])
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # a foreign or damaged line says nothing about speed
        table.setdefault(_key(p, r["dtype"], r["direction"]), {})[r["impl"]] = t


@register(op="conv2d", name="fastest", backend="numpy", device="cpu", exact=False, algorithm="any",
          deterministic=True,
          description="per case and direction, the fastest of shift_gemm/im2col/stride_tricks/fft/winograd/depthwise "
                      "by this machine's crossover records, autotuning (CONVBENCH_AUTOTUNE=1) or a cost model")
class FastestConv2d(Implementation):
    """Auto-selecting conv2d: the fastest NumPy candidate for each (case, dtype, direction).

    Parameters
    ----------
    autotune : bool, optional
        Time every supported candidate on first use of a case (cached in memory), as
        ``torch.backends.cudnn.benchmark`` does. Default: ``$CONVBENCH_AUTOTUNE`` is ``1``.
    crossover : str or Path, optional
        Bench records (JSON lines) to choose from. Default: :func:`crossover_path`.

    Notes
    -----
    Sources, in order: the crossover records (lowest ``t_median_s`` among candidates that
    support the case), autotuning when enabled, the :func:`cost_model`. :meth:`choice` names the
    pick (the bench layer records it); :meth:`why` says which source decided. Every time a bench
    run measures goes to this machine's crossover file through :meth:`bench_listener`, so the
    bench runner times ``fastest`` after the other implementations on each case: it then chooses
    from what the run has just measured.
    """

    #: the bench runner's record-listener hook: a run's ``ok`` records go to the crossover file
    bench_listener = staticmethod(_crossover.bench_listener)

    def __init__(self, autotune: bool | None = None, crossover: str | Path | None = None) -> None:
        self.autotune = os.environ.get("CONVBENCH_AUTOTUNE", "") in ("1", "true", "yes") if autotune is None else autotune
        # the file (None: this machine's, found on first use; False: none)
        self._crossover: Path | bool | None = Path(crossover) if crossover is not None else None
        self._table: dict[tuple[str, str, str], dict[str, float]] = {}
        self._read: tuple[int, int, int] | None = None   # (device, inode, bytes taken) of the file
        self._chosen: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._methods: dict[tuple[Any, ...], Any] = {}

    def candidates(self, p: Conv2dParams, dtype: str, direction: str) -> list[str]:
        """Registered, available candidates that support this case."""
        out = []
        for name in CANDIDATES:
            try:
                impl = get_impl(name)
            except ValueError:
                continue
            if availability(impl) is None and impl.unsupported(p, dtype, direction) is None:
                out.append(name)
        return out

    def unsupported(self, p: Conv2dParams, dtype: str, direction: str) -> str | None:
        base = super().unsupported(p, dtype, direction)
        if base is None and not self.candidates(p, dtype, direction):
            return f"no candidate ({', '.join(CANDIDATES)}) supports this case"
        return base

    def _records(self) -> dict[tuple[str, str, str], dict[str, float]]:
        """The crossover table. The file only grows (a bench in this process adds to it as it
        goes), so only what was appended since the last look is parsed; a file replaced
        (compacted) or shrunk is read again whole. Choices already made stand."""
        if self._crossover is None:
            try:
                self._crossover = crossover_path() or False
            except Exception:  # no fingerprint, no file: the other sources remain
                self._crossover = False
        try:
            st = self._crossover.stat() if self._crossover else None
        except OSError:
            st = None
        if st is None:
            self._table, self._read = {}, None
            return self._table
        dev, ino, taken = self._read or (None, None, 0)
        if (dev, ino) != (st.st_dev, st.st_ino) or st.st_size < taken:
            self._table, taken = {}, 0
        if st.st_size > taken:
            try:
                with open(self._crossover, "rb") as f:
                    f.seek(taken)
                    data = f.read()
            except OSError:
                return self._table
            end = data.rfind(b"\n") + 1
            # a last line still being written is parsed now and again once it is whole
            _add_lines(self._table, data.splitlines())
            taken += end
        self._read = (st.st_dev, st.st_ino, taken)
        return self._table

    def _decide(self, p: Conv2dParams, dtype: str, direction: str) -> tuple[str, str]:
        key = _key(p, dtype, direction)
        with self._lock:
            hit = self._chosen.get(key)
        if hit is not None:
            return hit
        cands = self.candidates(p, dtype, direction)
        if not cands:
            raise ValueError(f"fastest: no candidate supports {p.descriptor} {dtype} {direction}")
        measured = {k: v for k, v in self._records().get(key, {}).items() if k in cands}
        if measured:
            res = (min(measured, key=measured.__getitem__), "crossover")
        elif self.autotune and len(cands) > 1:
            res = (self._tune(p, dtype, direction, cands), "autotune")
        else:
            res = (min(cands, key=lambda c: cost_model(c, p, dtype, direction)), "cost model")
        with self._lock:
            self._chosen[key] = res
        return res

    def _tune(self, p: Conv2dParams, dtype: str, direction: str, cands: list[str], reps: int = 3) -> str:
        """Time each candidate (one warm-up, best of ``reps``); skip those the model rules out."""
        est = {c: cost_model(c, p, dtype, direction) for c in cands}
        best_est = min(est.values())
        inputs = get_op("conv2d").make_inputs(p, dtype)
        times: dict[str, float] = {}
        for c in sorted(cands, key=est.__getitem__):
            if est[c] > 20 * best_est:  # hopeless on the model's word: not worth seconds of timing
                continue
            impl = get_impl(c)
            args = ((inputs["x"], inputs["w"], inputs.get("b")) if direction == "forward"
                    else (inputs["dy"], inputs["x"], inputs["w"]))
            fn = impl.forward if direction == "forward" else impl.backward
            t0 = time.perf_counter()
            fn(p, *args)  # warm-up, and a first estimate
            first = time.perf_counter() - t0
            if times and first > 3 * min(times.values()):
                times[c] = first
                continue
            # the minimum: a candidate's best run is what it can do; noise only adds time
            samples = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn(p, *args)
                samples.append(time.perf_counter() - t0)
            times[c] = min(samples)
        return min(times, key=times.__getitem__)

    def choice(self, p: Conv2dParams, dtype: str, direction: str) -> str:
        """The candidate that runs this case (``shift_gemm``, ``winograd``, ...)."""
        return self._decide(p, dtype, direction)[0]

    def why(self, p: Conv2dParams, dtype: str, direction: str) -> str:
        """What decided the choice: ``crossover``, ``autotune`` or ``cost model``."""
        return self._decide(p, dtype, direction)[1]

    def _bound(self, p: Conv2dParams, dtype: np.dtype, direction: str) -> Any:
        """The chosen candidate's method, cached per call signature: looking the choice up again
        (descriptor string, registry) cost ~10 us a call, 10-25 % of a 0.1 ms layer at batch 1."""
        key = (p, dtype, direction)
        fn = self._methods.get(key)
        if fn is None:
            impl = get_impl(self.choice(p, dtype.name, direction))
            fn = self._methods[key] = impl.forward if direction == "forward" else impl.backward
        return fn

    def forward(self, p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return self._bound(p, x.dtype, "forward")(p, x, w, b)

    def backward(self, p: Conv2dParams, dy: np.ndarray, x: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self._bound(p, dy.dtype, "backward")(p, dy, x, w)


def _any_bound(p: Any, direction: str, dtype: str, mag: np.ndarray) -> np.ndarray:
    """Error model of ``fastest``: the loosest of the families it may run."""
    return np.maximum.reduce([BOUNDS[a](p, direction, dtype, mag) for a in ("direct", "fft", "winograd")])


register_bound("any", _any_bound)
