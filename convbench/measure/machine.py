"""The machine: a fingerprint of what decides speed, and its measured peaks.

Peaks are measured, not looked up: a large GEMM per dtype (what the BLAS really delivers on this
machine with these threads) and a large memory copy (the bandwidth a memory-bound kernel can hope
for); where torch sees a CUDA device, the same two on the GPU. Results carry "% of peak" and
arithmetic intensity against these numbers, a CUDA implementation's against the GPU's. The peaks
are cached per fingerprint, so a changed BLAS, thread count, library version, GPU or TF32 setting
is measured afresh.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from convbench.measure.hostload import OTHERS_HEAVY_PCT, load_mark, load_since

__all__ = ["CONTENDED_RETRY_S", "fingerprint", "here_worker", "peaks", "measure_peaks", "gemm_peak", "gpu_peaks", "device_peak", "peak_gemm_calls",
           "describe", "machine_record", "cache_dir"]

#: seconds after a contended measurement from which the next call measures the peaks again
CONTENDED_RETRY_S = 300
_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "GOTO_", "BLIS_", "VECLIB_", "KMP_", "CUDA_VISIBLE")
#: fingerprint keys that identify a machine configuration (the cache key and the record's id)
_ID_KEYS = ("cpu", "cores_logical", "cores_physical", "blas", "numpy", "torch", "python",
            "torch_threads", "env", "gpu", "hostname")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the vector extensions that decide which BLAS kernel can run (a generic model name, "AMD EPYC",
#: hides whether the CPU has AVX-512)
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "asimd", "sve")


def _cpu_isa() -> str | None:
    """``family F model M; <vector extensions>`` from /proc/cpuinfo (None where it is not there)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:  # the first processor's block is enough
                        break
                    continue
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        return None
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    isa = " ".join(x for x in _ISA_FLAGS if x in flags)
    ident = (f"family {fields['cpu family']} model {fields['model']}"
             if "cpu family" in fields and "model" in fields else "")
    text = "; ".join(x for x in (ident, isa) if x)
    return text or None


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    try:  # load every BLAS an implementation may use, so the list is the same in every process
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture")
    return [{k: i.get(k) for k in keep if i.get(k) is not None} for i in threadpool_info()]


def _torch_info() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"torch": None}
    info: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                            "torch_interop_threads": torch.get_num_interop_threads(), "gpu": None}
    try:
        info["torch_blas"] = torch.backends.mkldnn.is_available() and "mkldnn" or None
    except Exception:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
        info["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    return info


def _fingerprint_key() -> str:
    """What a process's fingerprint follows from without importing anything: the host and its boot,
    the interpreter, the installed versions of the libraries it reads, the thread and BLAS
    environment and the cores this process may use. Equal keys, equal fingerprints."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = None
    versions = {}
    for dist in ("numpy", "scipy", "torch", "threadpoolctl"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    key = {"host": socket.gethostname(), "boot": boot, "python": sys.executable, "version": sys.version,
           "versions": versions, "usable": usable, "code": Path(__file__).stat().st_mtime_ns,
           "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)}}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint() -> dict[str, Any]:
    """What decides speed here: CPU, cores, BLAS and its kernel, versions, threads, GPU, environment.

    Reading torch's part takes importing torch, seconds for a command that may need none of it
    (checking a NumPy function): a process that has not imported torch reuses the fingerprint an
    earlier process made under the same key (:func:`_fingerprint_key`: host and boot, interpreter,
    library versions, thread environment, usable cores), cached beside the peaks.

    Returns
    -------
    dict
        ``id`` (a short stable hash of the identifying fields), ``hostname``, ``cpu``,
        ``cores_logical``, ``cores_physical``, ``blas`` (threadpoolctl's pools: library, kernel
        ``architecture``, ``num_threads``), ``numpy``, ``torch``, ``torch_threads``, ``python``,
        ``env`` (``OPENBLAS_*``, ``OMP_*``, ``MKL_*``, ... variables), ``gpu`` and TF32 settings.
    """
    if "torch" in sys.modules:   # torch's part costs nothing more: read it all here
        return _fingerprint()
    path = cache_dir() / f"fingerprint-{_fingerprint_key()}.json"
    cached = _read_cached(path, "id")
    if cached is not None:
        return cached
    fp = _fingerprint()
    _write_cached(path, fp)   # unwritable: torch's import again next time, nothing else
    return fp


def _read_cached(path: Path, key: str) -> dict[str, Any] | None:
    """The JSON object cached at ``path`` when it holds ``key``, else None (missing, torn, other)."""
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return cached if isinstance(cached, dict) and cached.get(key) else None


def _write_cached(path: Path, obj: dict[str, Any]) -> None:
    """Cache ``obj`` at ``path`` atomically (a rename); an unwritable cache is not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(obj, indent=1))
        tmp.replace(path)
    except OSError:
        pass


def _fingerprint() -> dict[str, Any]:
    try:
        import psutil

        logical, physical = psutil.cpu_count(), psutil.cpu_count(logical=False)
    except ImportError:
        logical, physical = os.cpu_count(), None
    fp: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_isa": _cpu_isa(),  # informational: not part of the id (old records keep their machine)
        "arch": platform.machine(),
        "cores_logical": logical,
        "cores_physical": physical,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    fp.update(_torch_info())  # torch first: its own OpenMP pool then shows in threadpoolctl's list
    fp["blas"] = _blas()
    # the environment last: threadpoolctl's first look at the pools sets KMP_DUPLICATE_LIB_OK, so
    # read before it, the first fingerprint of a process differed from every later one (and the
    # peaks cache and crossover file of one machine were split between two ids)
    fp["env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)}
    fp["id"] = _hash(fp)
    return fp


def _hash(fp: dict[str, Any]) -> str:
    ident = {k: fp.get(k) for k in _ID_KEYS}
    # the pools threadpoolctl lists depend on which libraries this process happens to have
    # loaded (scipy brings a second OpenBLAS): identify by the distinct libraries, not the list
    ident["blas"] = sorted({json.dumps(b, sort_keys=True) for b in fp.get("blas") or []})
    if fp.get("gpu"):  # cuDNN's TF32 setting decides the GPU's float32 peak (no key without a GPU:
        ident["tf32_cudnn"] = fp.get("tf32_cudnn")  # the ids of CPU-only machines stay as they were)
    key = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """``$CONVBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/convbench``, else ``~/.cache/convbench``."""
    env = os.environ.get("CONVBENCH_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convbench"


def _best_of(fn: Any, seconds: float, min_reps: int = 3) -> float:
    """Shortest time of repeated calls: a peak is what the machine can do, so the best run is it."""
    fn()  # warm-up: thread pools start, pages get touched
    best, t_end, reps = float("inf"), time.perf_counter() + seconds, 0
    while reps < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def _copy_gbps(nbytes: int, seconds: float) -> float:
    src = np.ones(nbytes // 8, np.float64)
    dst = np.empty_like(src)
    t = _best_of(lambda: np.copyto(dst, src), seconds)
    return 2 * src.nbytes / t / 1e9  # a copy reads and writes every byte


def peak_gemm_calls(dtype: str = "float32", n: int = 1024) -> dict[str, Any]:
    """The calls a GEMM peak is measured with, by library: an ``n``-cubed ``dtype`` matmul in NumPy
    and, where torch is installed, in torch (the same values); the faster is the peak. For
    timing other work next to the peak itself."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    calls: dict[str, Any] = {"numpy": lambda: np.matmul(a, b, out=c)}
    try:
        import torch
    except ImportError:
        return calls
    # torch's own (64-byte aligned) allocations, as torch code would have them
    ta, tb = torch.from_numpy(a).clone(), torch.from_numpy(b).clone()
    tc = torch.empty(n, n, dtype=getattr(torch, dtype))
    calls["torch"] = lambda: torch.matmul(ta, tb, out=tc)
    return calls


def _gemm_sizes() -> tuple[int, ...]:
    """The GEMM sizes a peak is the best of: 1024^3 (~17 ms at 130 GFLOP/s) and, with more than four
    cores to run on, 2048^3 too: on a 16-core VM the 1024^3 GEMM ran at 1.2 TFLOP/s and
    torch_cpu's convolutions at up to 144 % of that, a size likely too small for 16 threads."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return (1024,) if cores <= 4 else (1024, 2048)


def gemm_peak(dtype: str = "float32", n: int | None = None, seconds: float = 0.4) -> dict[str, Any]:
    """One dtype's GEMM peak measured now (no cache), GFLOP/s: ``numpy`` and ``torch`` (None
    without torch), best of the calls of :func:`peak_gemm_calls` over ``seconds`` (torch half
    of it) at size ``n`` (default: each of :func:`_gemm_sizes`, the best kept), ``peak``, the
    faster of the two libraries, and ``n``, the size that gave it."""
    best: dict[str, Any] = {"numpy": 0.0, "torch": None, "peak": 0.0, "n": None}
    for size in ((n,) if n else _gemm_sizes()):
        calls = peak_gemm_calls(dtype, size)
        ng = 2 * size ** 3 / _best_of(calls["numpy"], seconds) / 1e9
        tg = 2 * size ** 3 / _best_of(calls["torch"], seconds / 2) / 1e9 if "torch" in calls else None
        best["numpy"] = max(best["numpy"], ng)
        if tg is not None:
            best["torch"] = max(best["torch"] or 0.0, tg)
        # the machine's peak is the best GEMM any library here reaches: % of peak then never
        # exceeds 100% because one library's GEMM is slower than another's
        if max(ng, tg or 0.0) > best["peak"]:
            best["peak"], best["n"] = max(ng, tg or 0.0), size
    return best


def _cuda_best_of(fn: Any, seconds: float, min_reps: int = 3) -> float:
    """:func:`_best_of` on the GPU: each call timed by CUDA events around it, seconds."""
    import torch

    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best, t_end, reps = float("inf"), time.perf_counter() + seconds, 0
    while reps < min_reps or time.perf_counter() < t_end:
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
        reps += 1
    return best


def gpu_peaks(n: int = 4096, seconds: float = 0.3, copy_bytes: int = 1 << 30) -> dict[str, Any]:
    """The GPU's peaks measured now, or ``{}`` where torch sees no CUDA device.

    GEMM: an ``n``-cubed ``torch.matmul`` per dtype on device 0, best of repeated calls timed with
    CUDA events. float32 is measured in the arithmetic convolutions may use: where cuDNN may round
    to TF32 (``torch.backends.cudnn.allow_tf32``, True by default), the matmul runs with TF32 too,
    since a TF32 convolution's ceiling is the TF32 rate, not plain float32's (on an H200, ~400
    against ~50 TFLOP/s). Copy: a device-to-device copy of ``copy_bytes``, read + write.

    Returns
    -------
    dict
        ``gpu_peak_gflops`` {dtype: GFLOP/s}, ``gpu_float32_math`` ("tf32" or "float32"),
        ``gpu_peak_gbps``, ``gpu_gemm_n``; empty without a CUDA device.
    """
    try:
        import torch
    except ImportError:
        return {}
    if not torch.cuda.is_available():
        return {}
    tf32 = bool(torch.backends.cudnn.allow_tf32)
    old = torch.backends.cuda.matmul.allow_tf32
    out: dict[str, Any] = {"gpu_peak_gflops": {}, "gpu_float32_math": "tf32" if tf32 else "float32", "gpu_gemm_n": n}
    try:
        for dt in ("float32", "float64"):
            torch.backends.cuda.matmul.allow_tf32 = tf32 and dt == "float32"
            gen = torch.Generator(device="cuda").manual_seed(0)
            a = torch.randn(n, n, device="cuda", dtype=getattr(torch, dt), generator=gen)
            b, c = torch.randn_like(a), torch.empty_like(a)
            t = _cuda_best_of(lambda: torch.matmul(a, b, out=c), seconds / 2)
            out["gpu_peak_gflops"][dt] = round(2 * n ** 3 / t / 1e9, 2)
            del a, b, c
        src = torch.ones(copy_bytes // 4, device="cuda")
        dst = torch.empty_like(src)
        out["gpu_peak_gbps"] = round(2 * copy_bytes / _cuda_best_of(lambda: dst.copy_(src), seconds / 2) / 1e9, 2)
        del src, dst
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
        torch.cuda.empty_cache()
    return out


def measure_peaks(gemm_n: int | None = None, seconds: float = 0.4, copy_bytes: int = 256 << 20) -> dict[str, Any]:
    """Measure the peaks now (no cache): GEMM GFLOP/s per dtype with NumPy and torch, copy GB/s,
    and the GPU's (:func:`gpu_peaks`) where there is one."""
    out: dict[str, Any] = {"peak_gflops": {}, "torch_gflops": {}, "gemm_n": gemm_n, "copy_bytes": copy_bytes}
    out["numpy_gflops"] = {}
    mark = load_mark()
    for dt in ("float32", "float64"):
        g = gemm_peak(dt, gemm_n, seconds)
        out["numpy_gflops"][dt] = round(g["numpy"], 2)
        out["torch_gflops"][dt] = None if g["torch"] is None else round(g["torch"], 2)
        out["peak_gflops"][dt] = round(g["peak"], 2)
        if dt == "float32":
            out["gemm_n"] = g["n"]  # the size that gave float32's peak
    out["peak_gbps"] = round(_copy_gbps(copy_bytes, seconds), 2)
    others = load_since(mark)["others_pct"]
    out.update(gpu_peaks())
    out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out["measured_unix"] = time.time()
    out["others_pct"] = others
    out["contended"] = others is not None and others > OTHERS_HEAVY_PCT
    return out


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A new measurement of the peaks with the old one's higher figures kept: a peak is what the
    machine can do, and a contended measurement only ever reads low."""
    out = dict(new)
    for key in ("peak_gflops", "numpy_gflops", "torch_gflops", "gpu_peak_gflops"):
        a, b = old.get(key) or {}, new.get(key) or {}
        if isinstance(a, dict) and isinstance(b, dict) and (a or b):
            out[key] = {dt: max((v for v in (a.get(dt), b.get(dt)) if isinstance(v, (int, float))), default=None)
                        for dt in {**a, **b}}
    for key in ("peak_gbps", "gpu_peak_gbps"):
        vals = [v for v in (old.get(key), new.get(key)) if isinstance(v, (int, float))]
        if vals:
            out[key] = max(vals)
    return out


def peaks(fp: dict[str, Any] | None = None, *, refresh: bool = False) -> dict[str, Any]:
    """Measured peaks of this machine, cached per fingerprint (``peaks-<id>.json``).

    Parameters
    ----------
    fp : dict, optional
        The fingerprint (computed when omitted); its ``id`` names the cache file.
    refresh : bool
        Measure again even when cached.

    A measurement during which other processes (or the hypervisor) took more than
    :data:`~convbench.measure.hostload.OTHERS_HEAVY_PCT` % of the machine's CPU time read the peaks low, and every % of peak
    after it high: it is cached marked ``contended`` and measured again by the first call at
    least :data:`CONTENDED_RETRY_S` seconds later, the higher figures of the two kept.

    Returns
    -------
    dict
        ``peak_gflops`` {dtype: GFLOP/s of the faster 1024^3 GEMM, NumPy's or torch's},
        ``numpy_gflops`` and ``torch_gflops`` (each library's), ``peak_gbps`` (memory copy, read +
        write), ``measured_at``, ``others_pct`` (the CPU time others took meanwhile, %) and
        ``contended``; with a CUDA device also :func:`gpu_peaks`'s keys.
    """
    fp = fp or fingerprint()
    path = cache_dir() / f"peaks-{fp['id']}.json"
    cached = _read_cached(path, "peak_gflops")
    # a cache written before the load was looked at (no ``others_pct``) counts as contended
    suspect = cached is not None and (cached.get("contended") or "others_pct" not in cached)
    if cached is not None and not refresh:
        at = cached.get("measured_unix")
        if not (suspect and time.time() - (at if isinstance(at, (int, float)) else 0.0) >= CONTENDED_RETRY_S):
            return cached
    out = measure_peaks()
    if suspect:
        out = _merged(cached, out)
    _write_cached(path, out)   # unwritable: a re-measurement next time, nothing else
    return out


def here_worker() -> str:
    """The ``worker`` of a record made by the command's own process (``HOST/main``): the local
    pool's processes are ``HOST/local-N``, a cluster's workers go by their own names."""
    return f"{socket.gethostname()}/main"


def machine_record(fp: dict[str, Any], pk: dict[str, Any]) -> dict[str, Any]:
    """The small dict every bench record carries as ``machine`` (the GPU's peaks only where measured)."""
    blas = next((b for b in fp.get("blas", []) if b.get("user_api") == "blas"), {})
    blas_s = " ".join(str(x) for x in (blas.get("internal_api"), blas.get("version"),
                                       blas.get("architecture"), f"{blas.get('num_threads')}t" if blas else None) if x)
    cpu = fp.get("cpu")
    if cpu and fp.get("cpu_isa"):
        cpu = f"{cpu} ({fp['cpu_isa']})"
    return {"id": fp["id"], "hostname": fp.get("hostname"), "cpu": cpu, "blas": blas_s or None,
            "gpu": fp.get("gpu"), "peak_gflops": pk.get("peak_gflops"), "peak_gbps": pk.get("peak_gbps"),
            **{k: pk[k] for k in ("gpu_peak_gflops", "gpu_peak_gbps", "gpu_float32_math") if pk.get(k) is not None}}


def device_peak(machine: dict[str, Any], device: str | None, dtype: str) -> float | None:
    """GFLOP/s that ``% of peak`` divides by for an implementation on ``device``: the CPU's GEMM
    peak for "cpu", the GPU's for "cuda" (None where not measured), None for other devices."""
    key = {"cpu": "peak_gflops", "cuda": "gpu_peak_gflops"}.get(device or "cpu")
    peaks = machine.get(key) if key else None
    return (peaks.get(dtype) or None) if isinstance(peaks, dict) else None


def describe(fp: dict[str, Any], pk: dict[str, Any] | None = None) -> str:
    """A few readable lines: the fingerprint and the peaks."""
    lines = [f"machine {fp['id']}  {fp.get('hostname')}",
             f"  cpu      {fp.get('cpu')} ({fp.get('arch')}), {fp.get('cores_logical')} logical / "
             f"{fp.get('cores_physical')} physical cores" + (f"; {fp['cpu_isa']}" if fp.get("cpu_isa") else ""),
             f"  python   {fp.get('python')}  numpy {fp.get('numpy')}  torch {fp.get('torch')} "
             f"({fp.get('torch_threads')} threads)"]
    for b in fp.get("blas", []):
        lines.append(f"  pool     {b.get('user_api')}: {b.get('internal_api')} {b.get('version') or ''} "
                     f"{b.get('architecture') or ''}, {b.get('num_threads')} threads ({Path(b.get('prefix', '')).name})")
    if fp.get("gpu"):
        lines.append(f"  gpu      {fp['gpu']}  CUDA {fp.get('cuda')}  TF32 matmul={fp.get('tf32_matmul')} "
                     f"cudnn={fp.get('tf32_cudnn')}")
    else:
        lines.append("  gpu      none")
    env = fp.get("env") or {}
    lines.append("  env      " + (" ".join(f"{k}={v}" for k, v in env.items()) or "(no OPENBLAS_/OMP_/MKL_ variables)"))
    if pk:
        g, t, n = pk.get("peak_gflops", {}), pk.get("torch_gflops", {}), pk.get("numpy_gflops", {})
        lines.append("  peak     GEMM " + ", ".join(
            f"{dt} {g.get(dt)} GFLOP/s (numpy {n.get(dt)}, torch {t.get(dt)})" for dt in ("float32", "float64")))
        lines.append(f"  peak     memory copy {pk.get('peak_gbps')} GB/s  (measured {pk.get('measured_at')})")
        if pk.get("contended"):
            lines.append(f"  peak     measured while other processes took {pk.get('others_pct')} % of the CPU: "
                         f"these peaks read low (so % of peak high); measured again after "
                         f"{CONTENDED_RETRY_S // 60} minutes, or now with `convbench machine --refresh`")
        if pk.get("gpu_peak_gflops"):
            gg = pk["gpu_peak_gflops"]
            tf32 = pk.get("gpu_float32_math") == "tf32"
            lines.append("  peak     GPU GEMM " + ", ".join(
                f"{dt} {gg.get(dt)} GFLOP/s" + (" (TF32)" if tf32 and dt == "float32" else "")
                for dt in ("float32", "float64")) + f", device copy {pk.get('gpu_peak_gbps')} GB/s")
    return "\n".join(lines)
