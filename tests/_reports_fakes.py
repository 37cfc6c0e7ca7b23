"""Fake bench and check records for the report tests: realistic shapes, no timer, no implementation.

Times follow a simple model per implementation (fixed overhead + FLOPs / rate, a rate that halves
once im2col's patch matrix outgrows a 4 MiB cache), with log-normal noise on the samples, so
scaling exponents, cliffs, crossovers and speedups have known answers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from convbench.ops.conv2d import Conv2dParams

MACHINES = {
    "alpha": {"id": "a1a1a1a1a1a1", "hostname": "alpha", "cpu": "Fake CPU 2 cores", "blas": "openblas 0.3 Haswell",
              "peak_gflops": {"float32": 100.0, "float64": 50.0}, "peak_gbps": 20.0},
    "beta": {"id": "b2b2b2b2b2b2", "hostname": "beta", "cpu": "Fake CPU 16 cores", "blas": "mkl 2024 avx512",
             "peak_gflops": {"float32": 800.0, "float64": 400.0}, "peak_gbps": 80.0},
}
# name: (backend, overhead seconds, GFLOP/s on alpha)
IMPLS = {"naive": ("numpy", 1e-5, 0.02), "im2col": ("numpy", 5e-5, 8.0),
         "stride_tricks": ("numpy", 8e-5, 4.0), "torch_cpu": ("torch", 2e-5, 30.0)}

QUICK = [
    ("cifar.conv1", dict(n=8, c=3, h=32, w=32, o=32, kh=3, kw=3, padding=1)),
    ("cifar.conv2", dict(n=8, c=32, h=16, w=16, o=64, kh=3, kw=3, padding=1)),
    ("lenet.conv1", dict(n=8, c=1, h=32, w=32, o=6, kh=5, kw=5)),
    ("resnet.3x3.c64.28", dict(n=4, c=64, h=28, w=28, o=64, kh=3, kw=3, padding=1)),
    ("resnet.1x1.c256.14", dict(n=4, c=256, h=14, w=14, o=64, kh=1, kw=1)),
    ("resnet.stem.7x7.s2", dict(n=1, c=3, h=112, w=112, o=64, kh=7, kw=7, stride=2, padding=3)),
]


def scaling_cases(dims: tuple[str, ...] = ("hw", "c")) -> list[tuple[str, dict[str, Any]]]:
    out = []
    if "hw" in dims:
        out += [(f"scale.hw.{s}", dict(n=2, c=16, h=s, w=s, o=16, kh=3, kw=3, padding=1)) for s in (8, 16, 32, 64, 128)]
    if "c" in dims:
        out += [(f"scale.c.{c}", dict(n=2, c=c, h=16, w=16, o=c, kh=3, kw=3, padding=1)) for c in (4, 8, 16, 32, 64)]
    return out


def model_time(impl: str, p: Conv2dParams, direction: str, machine: str) -> float:
    _, overhead, rate = IMPLS[impl]
    rate *= 1.0 if machine == "alpha" else 4.0
    if impl == "im2col":
        oh, ow = p.out_hw
        if p.n * oh * ow * p.c * p.kh * p.kw * 4 > 4 * 2**20:
            rate /= 2
    return overhead + p.flops(direction) / (rate * 1e9)


def bench_records(machines: tuple[str, ...] = ("alpha",), impls: tuple[str, ...] = tuple(IMPLS),
                  cases: list[tuple[str, dict[str, Any]]] | None = None, directions=("forward", "backward"),
                  samples: int = 7, noise: float = 0.03, seed: int = 0, slowdown: dict[str, float] | None = None,
                  run_id: str = "run1") -> list[dict[str, Any]]:
    """Bench records (DESIGN.md fields) for every machine x impl x case x direction.

    ``slowdown`` multiplies the model time of the named implementations (a planted regression).
    torch_cuda appears as skipped ("CUDA not available"); naive is skipped on the largest case as
    over budget, so tables show both kinds of status.
    """
    rng = np.random.default_rng(seed)
    cases = QUICK if cases is None else cases
    out = []
    for m in machines:
        for impl in (*impls, "torch_cuda"):
            for cid, kw in cases:
                p = Conv2dParams(**kw)
                for d in directions:
                    rec = {"schema": 1, "run_id": run_id, "time": f"2026-01-01T00:00:{len(out) % 60:02d}",
                           "machine": MACHINES[m], "op": "conv2d", "direction": d, "impl": impl,
                           "backend": IMPLS.get(impl, ("torch",))[0], "device": "cuda" if impl == "torch_cuda" else "cpu",
                           "case": cid, "descriptor": p.descriptor, "params": _params(p), "dtype": "float32",
                           "flops": p.flops(d), "bytes_min": p.bytes_min(d, 4), "count": 1, "threads": 2}
                    if impl == "torch_cuda":
                        out.append({**rec, "status": "skipped", "reason": "CUDA not available"})
                        continue
                    if impl == "naive" and cid == "resnet.3x3.c64.28":
                        out.append({**rec, "status": "skipped", "reason": "predicted 812 s > budget 30 s"})
                        continue
                    t = model_time(impl, p, d, m) * (slowdown or {}).get(impl, 1.0)
                    s = t * rng.lognormal(0.0, noise, size=samples)
                    q1, q3 = np.percentile(s, [25, 75])
                    oh, ow = p.out_hw
                    ws = p.n * oh * ow * p.c * p.kh * p.kw * 4 if impl == "im2col" else 0
                    out.append({**rec, "status": "ok", "reason": None, "t_median_s": float(np.median(s)),
                                "t_min_s": float(s.min()), "t_iqr_s": float(q3 - q1), "samples": s.tolist(),
                                "peak_mem_bytes": int(p.bytes_min(d, 4) * 0.5 + ws), "workspace_bytes": ws})
    return out


def check_records(impls: tuple[str, ...] = tuple(IMPLS), bad: str | None = None) -> list[dict[str, Any]]:
    """Check records over the quick cases; ``bad`` gets one failed grad_weight check."""
    out = []
    for impl in impls:
        for cid, _ in QUICK:
            for d in ("forward", "grad_input", "grad_weight", "grad_bias"):
                fail = impl == bad and d == "grad_weight" and cid == "cifar.conv2"
                out.append({"impl": impl, "op": "conv2d", "case": cid, "direction": d, "check": "random_values",
                            "status": "failed" if fail else "passed", "max_abs_err": 3.0 if fail else 1e-6,
                            "err_ratio": 40.0 if fail else 0.05, "tolerance": 1e-4,
                            "message": ("grad_weight: 4 of 4 elements exceed the bound; likely cause: grad_weight "
                                        "is flipped; first bad: [0, 1, 2, 0]: expected 1, got 4") if fail else "",
                            "repro": f"convbench check --impl {impl} --case {cid}"})
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _params(p: Conv2dParams) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in p.asdict().items()}
