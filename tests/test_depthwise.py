"""The depthwise family: bit-exact against torch float64 on small integers, every layout of its
planes (strides, dilations, paddings, depth multipliers, blocks, threads), non-finite values where
the oracle puts them, and what it declines."""
from __future__ import annotations

import numpy as np
import pytest

from _torch_oracle import torch_float64 as _torch
from convbench.ops.conv2d import Conv2dParams
from convbench.registry import get_impl
from impls import depthwise

DW = get_impl("depthwise")

# n, c, h, w, multiplier, (kh, kw), stride, padding, dilation, bias
SHAPES = [
    (2, 3, 7, 9, 1, (3, 3), 1, 1, 1, True),
    (2, 4, 8, 8, 1, (3, 3), 2, 1, 1, False),       # MobileNet's stride-2 layer, even size
    (1, 5, 9, 7, 2, (3, 3), 2, 0, 1, True),        # depth multiplier 2, odd sizes
    (3, 2, 10, 11, 1, (5, 5), 3, 2, 2, True),      # stride 3, dilation 2: not every phase used
    (2, 6, 5, 5, 3, (1, 1), 2, 0, 1, True),
    (1, 2, 6, 6, 1, (2, 3), (1, 2), (0, 1), (2, 1), True),
    (2, 3, 4, 4, 1, (3, 3), 3, 2, 1, True),        # more padding than kernel reach
    (1, 1, 5, 5, 1, (3, 3), 1, 1, 1, True),        # one channel: groups 1
    (2, 4, 6, 5, 1, (4, 2), 1, "same", 1, True),   # asymmetric padding
    (8, 32, 14, 14, 1, (3, 3), 1, 1, 1, False),    # several blocks of planes
    (2, 3, 4, 5, 1, (3, 3), 1, 3, 1, True),        # stride 1, padding past the kernel: OH > H + pad
    (2, 2, 9, 8, 2, (3, 3), 1, (1, 2), 3, True),   # stride 1, dilation 3: OH < H
]


def _params(n, c, h, w, mult, k, stride, padding, dilation, bias) -> Conv2dParams:
    return Conv2dParams(n=n, c=c, h=h, w=w, o=c * mult, kh=k[0], kw=k[1], stride=stride, padding=padding,
                        dilation=dilation, groups=c, bias=bias)


def _ints(rng, shape, dtype):
    return rng.integers(-4, 5, shape).astype(dtype)


def _case(p: Conv2dParams, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = _ints(rng, (p.n, p.c, p.h, p.w), dtype)
    w = _ints(rng, (p.o, 1, p.kh, p.kw), dtype)
    b = _ints(rng, (p.o,), dtype) if p.bias else None
    dy = _ints(rng, (p.n, p.o, *p.out_hw), dtype)
    return x, w, b, dy


def _check_exact(p: Conv2dParams, dtype: str) -> None:
    x, w, b, dy = _case(p, dtype)
    ref = _torch(p, x, w, b, dy)
    got = (DW.forward(p, x, w, b), *DW.backward(p, dy, x, w))
    for name, g, r in zip(("y", "grad_input", "grad_weight", "grad_bias"), got, ref):
        if r is None:
            assert g is None, name
            continue
        assert g.dtype == np.dtype(dtype), name
        assert g.shape == r.shape, name
        np.testing.assert_array_equal(g, r, err_msg=f"{p.descriptor} {name}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_bit_exact_against_torch_float64(shape, dtype):
    _check_exact(_params(*shape), dtype)


@pytest.mark.parametrize("split", ["channels", "positions"])
@pytest.mark.parametrize("shape", SHAPES[:4] + SHAPES[9:], ids=[str(i) for i in range(7)])
def test_blocks_and_threads_change_nothing(shape, split, monkeypatch):
    """Blocks of two channels, or each channel cut into three runs of positions, with the second
    thread taking half of them: the same exact results (a block that wrote outside its channels
    or positions, or a thread sharing another's scratch, would not)."""
    p = _params(*shape)
    g = depthwise.plane_geometry(p)
    span = p.n * g.hq * g.wq
    elems = 2 * span + 1 if split == "channels" else span // 3 + 1
    monkeypatch.setattr(depthwise, "_BLOCK_ELEMS", elems)
    monkeypatch.setattr(depthwise, "_THREADED_WORK", 0)
    monkeypatch.setattr(depthwise, "workers", lambda: 2)
    assert len(depthwise.blocks(p.c, span, elems)) == (-(-p.c // 2) if split == "channels" else 3 * p.c)
    _check_exact(p, "float32")


@pytest.mark.parametrize("channels, span, elems", [(5, 10, 25), (3, 10, 4), (1, 7, 7), (4, 9, 1)])
def test_blocks_cover_every_position_once(channels, span, elems):
    seen = np.zeros((channels, span), int)
    for c0, c1, m0, m1 in depthwise.blocks(channels, span, elems):
        assert (c1 - c0) * (m1 - m0) <= max(elems, m1 - m0)
        seen[c0:c1, m0:m1] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("shape", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_one_einsum_per_phase_is_exact_too(shape, monkeypatch):
    """Runs of positions long enough (every run here, the threshold set to one) sum all the taps
    of a phase in one einsum: bit-exact as the column-by-column sums."""
    monkeypatch.setattr(depthwise, "_FUSED_RUN", 1)
    _check_exact(_params(*shape), "float32")


@pytest.mark.parametrize("shape", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_phase_taps_read_where_the_geometry_puts_each_tap(shape):
    """Every tap of every phase's rectangle at the offset and phase the shifted-view geometry
    gives it, each tap once."""
    p = _params(*shape)
    g = depthwise.plane_geometry(p)
    seen = {}
    for t in depthwise.phase_taps(p):
        for i in range(t.rows):
            for j in range(t.cols):
                seen[t.taps[i * t.cols + j]] = (t.phase, t.start + i * t.row + j * t.col)
    assert seen == {u * p.kw + v: (k, off) for u, v, k, off in g.taps}


def test_results_owe_nothing_to_old_scratch():
    """A second call with other values on the same shape gives that call's results."""
    p = _params(*SHAPES[1])
    DW.backward(p, *(a * 7 for a in _case(p, "float32", seed=1)[3:]), *_case(p, "float32", seed=1)[:2])
    DW.forward(p, *(a * 5 if a is not None else None for a in _case(p, "float32", seed=2)[:3]))
    _check_exact(p, "float32")


@pytest.mark.parametrize("fused", [False, True], ids=["columns", "fused"])
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[1], SHAPES[3], SHAPES[-1]], ids=["s1", "s2", "s3d2", "s1d3"])
def test_non_finite_input_lands_where_the_oracle_puts_it(shape, fused, monkeypatch):
    """An inf or NaN placed at each input position in turn: every output and gradient NaN, inf or
    finite exactly where torch float64 has them. Positions read only by the thrown-away columns of
    the planes' grids must not reach ``grad_weight`` (its dot products cover the real outputs)."""
    if fused:
        monkeypatch.setattr(depthwise, "_FUSED_RUN", 1)
    p = _params(*shape)
    x0, w, b, dy = _case(p, "float64")
    for bad in (np.inf, np.nan):
        for pos in np.ndindex(1, 1, p.h, p.w):
            x = x0.copy()
            x[pos] = bad
            ref = _torch(p, x, w, b, dy)
            got = (DW.forward(p, x, w, b), *DW.backward(p, dy, x, w))
            for name, g, r in zip(("y", "grad_input", "grad_weight"), got, ref):
                assert np.array_equal(np.isnan(g), np.isnan(r)), (name, pos, bad)
                assert np.array_equal(np.isinf(g), np.isinf(r)), (name, pos, bad)


def test_declines_layers_with_several_channels_per_group():
    p = Conv2dParams(n=1, c=8, h=6, w=6, o=8, kh=3, kw=3, padding=1, groups=4)
    reason = DW.unsupported(p, "float32", "forward")
    assert reason is not None and "groups=4" in reason and "in_channels=8" in reason
    assert DW.unsupported(_params(*SHAPES[0]), "float32", "backward") is None


def test_fastest_runs_it_on_depthwise_layers_without_data(tmp_path, monkeypatch):
    """With no crossover records the cost model sends a depthwise layer here (forward and
    backward) and keeps ordinary layers on their GEMMs."""
    from impls.fastest import FastestConv2d

    monkeypatch.delenv("CONVBENCH_AUTOTUNE", raising=False)
    f = FastestConv2d(crossover=tmp_path / "none.jsonl")
    for c, size, stride in ((32, 112, 1), (144, 56, 2), (960, 7, 1)):
        p = Conv2dParams(n=8, c=c, h=size, w=size, o=c, kh=3, kw=3, stride=stride, padding=1, groups=c, bias=False)
        for direction in ("forward", "backward"):
            assert f.choice(p, "float32", direction) == "depthwise", (c, size, direction)
            assert f.why(p, "float32", direction) == "cost model"
    dense = Conv2dParams(n=8, c=64, h=56, w=56, o=64, kh=3, kw=3, padding=1)
    assert "depthwise" not in f.candidates(dense, "float32", "forward")
