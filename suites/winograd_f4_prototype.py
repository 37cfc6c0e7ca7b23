"""Prototype of Winograd F(4x4, 3x3) in NumPy, timed against shift_gemm and F(2x2, 3x3).

Not a registered implementation: a measured design note (docs/fast-algorithms.md, winograd).
6x6 input tiles overlapping by 2 give 4x4 outputs: 36 GEMMs ``U[k] (O, C) @ V[k] (C, tiles)``,
4x fewer multiplications than a direct 3x3. Tiles are gathered compactly into ``(6, 6, C, tiles)``
(no thrown-away tile row or column), and both transforms are BLAS GEMMs by the 6x6 ``B^T`` and
4x6 ``A^T`` over the whole stack. Forward only, groups 1, stride 1, symmetric padding.

Usage::

    .venv/bin/python suites/winograd_f4_prototype.py [--batch 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from impls._fast_common import scratch, strided_gemm  # noqa: E402

__all__ = ["winograd_f4", "main"]

#: Lavin & Gray 2016, interpolation points 0, 1, -1, 2, -2 and infinity
BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], float)


def winograd_f4(x: np.ndarray, w: np.ndarray, pad: int = 1, parts: dict[str, float] | None = None) -> np.ndarray:
    """3x3 stride-1 cross-correlation of NCHW ``x`` by ``w`` (O, C, 3, 3), zero-padded by ``pad``;
    ``parts`` (when given) accumulates the seconds of each stage."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    dt = x.dtype
    oh, ow = h + 2 * pad - 2, wd + 2 * pad - 2
    th, tw = -(-oh // 4), -(-ow // 4)
    hp, wp = 4 * th + 2, 4 * tw + 2
    t = n * th * tw
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        if parts is not None:
            parts[name] = parts.get(name, 0.0) + now - clock[0]
        clock[0] = now

    xp = scratch("w4.xp", (c, n, hp, wp), dt)          # channel-major, zero border
    xp[:, :, :pad] = 0
    xp[:, :, pad + h:] = 0
    xp[:, :, :, :pad] = 0
    xp[:, :, :, pad + wd:] = 0
    xp[:, :, pad:pad + h, pad:pad + wd] = x.transpose(1, 0, 2, 3)
    isz = xp.itemsize
    d = scratch("w4.d", (6, 6, c, n, th, tw), dt)       # element (r, s) of every tile
    np.copyto(d, np.lib.stride_tricks.as_strided(
        xp, (6, 6, c, n, th, tw), (wp * isz, isz, n * hp * wp * isz, hp * wp * isz, 4 * wp * isz, 4 * isz)))
    lap("gather")
    bt = BT.astype(dt)
    t1 = scratch("w4.t1", (6, 6 * c * t), dt)
    np.matmul(bt, d.reshape(6, -1), out=t1)             # rows: B^T d
    v = scratch("w4.v", (6, 6, c * t), dt)
    for r in range(6):
        np.matmul(bt, t1[r].reshape(6, c * t), out=v[r])  # columns: (B^T d) B
    lap("input transform")
    u = np.empty((36, o * c), dt)
    strided_gemm(np.kron(G, G).astype(dt), np.ascontiguousarray(w).reshape(o * c, 9).T, u)
    lap("filter transform")
    m = scratch("w4.m", (36, o, t), dt)
    np.matmul(u.reshape(36, o, c), v.reshape(36, c, t), out=m)
    lap("GEMMs")
    at = AT.astype(dt)
    t2 = scratch("w4.t2", (4, 6 * o * t), dt)
    np.matmul(at, m.reshape(6, -1), out=t2)
    yt = scratch("w4.y", (4, 4, o, n, th, tw), dt)
    for r in range(4):
        np.matmul(at, t2[r].reshape(6, o * t), out=yt[r].reshape(4, o * t))
    lap("output transform")
    y = np.empty((n, o, oh, ow), dt)
    yv = yt.transpose(3, 2, 4, 0, 5, 1)                 # (n, o, th, 4, tw, 4)
    fi, fj = oh // 4, ow // 4
    ri, rj = oh - 4 * fi, ow - 4 * fj
    y[:, :, :4 * fi, :4 * fj].reshape(n, o, fi, 4, fj, 4)[...] = yv[:, :, :fi, :, :fj, :]
    if ri:
        y[:, :, 4 * fi:, :4 * fj].reshape(n, o, ri, fj, 4)[...] = yv[:, :, fi, :ri, :fj, :]
    if rj:
        y[:, :, :4 * fi, 4 * fj:].reshape(n, o, fi, 4, rj)[...] = yv[:, :, :fi, :, fj, :rj]
    if ri and rj:
        y[:, :, 4 * fi:, 4 * fj:] = yv[:, :, fi, :ri, fj, :rj]
    lap("scatter")
    return y


def _best(fn, reps: int = 5) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--channels", type=int, nargs="*", default=[64, 128, 256, 512])
    args = ap.parse_args(argv)
    import impls  # noqa: F401  (registers the implementations)
    from convbench.ops import get_op
    from convbench.ops.conv2d import Conv2dParams
    from convbench.registry import get_impl

    print("ResNet-50's stride-1 3x3 layers, float32 forward, min of 5 calls per round, rounds alternating")
    print(f"{'layer':>22} {'rel err':>8} {'F(4x4,3x3)':>11} {'shift_gemm':>11} {'F(2x2,3x3)':>11}   stages of F(4x4,3x3) (ms)")
    for c in args.channels:
        hw = {64: 56, 128: 28, 256: 14, 512: 7}.get(c, 14)
        p = Conv2dParams(n=args.batch, c=c, h=hw, w=hw, o=c, kh=3, kw=3, padding=1)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((p.n, c, hw, hw)).astype(np.float32)
        w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
        ref = get_op("conv2d").reference_forward(p, x, w, None)
        err = float(np.abs(winograd_f4(x, w) - ref).max() / np.abs(ref).max())
        fns = {"f4": lambda: winograd_f4(x, w), "shift_gemm": lambda: get_impl("shift_gemm").forward(p, x, w, None),
               "f2": lambda: get_impl("winograd").forward(p, x, w, None)}
        best = {k: float("inf") for k in fns}
        for _ in range(args.rounds):
            for k, fn in fns.items():
                best[k] = min(best[k], _best(fn))
        parts: dict[str, float] = {}
        winograd_f4(x, w, parts=parts)
        stages = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in parts.items())
        print(f"{p.descriptor:>22} {err:8.1e} " + " ".join(f"{best[k] * 1e3:8.1f} ms" for k in fns) + f"   {stages}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
