"""shift_gemm's narrow-layer weight gradient (the stem) and what ``fastest`` picks for ResNet-50's
stride-2 layers and stem with no crossover data: bit-exact on small integers, on one thread and
two, and which layers take which path."""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from convbench.cases import get_suite
from convbench.ops import get_op
from convbench.ops.conv2d import Conv2dParams
from convbench.registry import get_impl
from impls import _taps, shift_gemm

OP = get_op("conv2d")
EDGE = get_suite("edge")
STEM = Conv2dParams(n=8, c=3, h=224, w=224, o=64, kh=7, kw=7, stride=(2, 2), padding=(3, 3))


def _exact_backward(p: Conv2dParams, seed: int) -> None:
    inp = OP.make_inputs(p, "float32", fill="exact", seed=seed)
    dx, dw, db = get_impl("shift_gemm").backward(p, inp["dy"], inp["x"], inp["w"])
    ref = OP.reference_backward(p, inp["dy"], inp["x"], inp["w"])
    for label, got, r in zip(("grad_input", "grad_weight", "grad_bias"), (dx, dw, db), ref):
        if r is not None:
            assert got.shape == r.shape and got.dtype == np.float32, label
            assert np.array_equal(got.astype(np.float64), r), f"{p.descriptor} {label}"


def test_narrow_picks_the_stem_not_wide_or_small_layers():
    assert _taps.narrow(STEM)
    assert _taps.narrow(Conv2dParams(n=1, c=3, h=224, w=224, o=32, kh=3, kw=3, stride=(2, 2), padding=(1, 1)))
    assert not _taps.narrow(Conv2dParams(n=8, c=64, h=56, w=56, o=64, kh=3, kw=3, padding=(1, 1)))
    assert not _taps.narrow(Conv2dParams(n=8, c=3, h=32, w=32, o=32, kh=3, kw=3, padding=(1, 1)))   # small image
    assert not _taps.narrow(Conv2dParams(n=8, c=3, h=224, w=224, o=64, kh=1, kw=1))                  # one tap


@pytest.mark.parametrize("threads", (1, 2))
@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
def test_narrow_grad_weight_bit_exact_on_every_edge_case(case, threads, monkeypatch):
    """Every edge case with more than one tap through the narrow path, forced: the images dealt
    to one or two threads, each its own sum, added: the exact sums of the oracle."""
    p = case.params
    if p.kh * p.kw == 1 or shift_gemm.full_k(p) or shift_gemm._unpadded(p) or not shift_gemm._fast(p, np.float32):
        pytest.skip("not a layout that takes the narrow path")
    monkeypatch.setattr(_taps, "_NARROW_COLS", 10 ** 9)
    monkeypatch.setattr(_taps, "_NARROW_MIN_PIXELS", 0)
    assert _taps.narrow(p)
    with threadpool_limits(threads, user_api="blas"):
        _exact_backward(p, seed=8)


def test_narrow_grad_weight_of_the_stem_is_exact_and_is_what_backward_returns(monkeypatch):
    p = Conv2dParams(n=3, c=3, h=40, w=36, o=8, kh=7, kw=7, stride=(2, 2), padding=(3, 3), bias=True)
    monkeypatch.setattr(_taps, "_NARROW_MIN_PIXELS", 100)
    assert _taps.narrow(p)
    inp = OP.make_inputs(p, "float32", fill="exact", seed=3)
    ref = OP.reference_backward(p, inp["dy"], inp["x"], inp["w"])[1]
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            got = _taps.narrow_grad_weight(p, inp["dy"], inp["x"])
            alone = shift_gemm.grad_weight(p, inp["dy"], inp["x"])
        assert np.array_equal(got.astype(np.float64), ref)
        assert np.array_equal(alone, got)
    _exact_backward(p, seed=5)


def test_narrow_grad_weight_results_are_fresh_arrays(monkeypatch):
    """Two calls in a row: the first result is not a scratch buffer the second overwrote."""
    p = Conv2dParams(n=2, c=3, h=20, w=20, o=4, kh=5, kw=5, padding=(2, 2))
    monkeypatch.setattr(_taps, "_NARROW_MIN_PIXELS", 0)
    a = OP.make_inputs(p, "float32", fill="exact", seed=1)
    b = OP.make_inputs(p, "float32", fill="exact", seed=2)
    first = _taps.narrow_grad_weight(p, a["dy"], a["x"])
    keep = first.copy()
    _taps.narrow_grad_weight(p, b["dy"], b["x"])
    assert np.array_equal(first, keep)


def _model_choice(p: Conv2dParams, direction: str, tmp_path) -> tuple[str, str]:
    from impls.fastest import FastestConv2d

    f = FastestConv2d(autotune=False, crossover=tmp_path / "empty.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    return f.choice(p, "float32", direction), f.why(p, "float32", direction)


R50 = {c.id.split(".", 1)[1]: c.params for c in get_suite("resnet50")}


@pytest.mark.parametrize("layer", ["layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_empty_crossover_runs_resnet50_stride2_3x3_on_shift_gemm(layer, direction, tmp_path):
    """With an empty crossover file the cost model sends ResNet-50's stride-2 3x3 layers to
    shift_gemm (its even/odd-row and tap-column layouts), not im2col or winograd."""
    p = R50[layer]
    assert p.stride == (2, 2) and (p.kh, p.kw) == (3, 3)
    assert _model_choice(p, direction, tmp_path) == ("shift_gemm", "cost model")


def test_empty_crossover_runs_the_stem_on_shift_gemm_both_ways(tmp_path):
    """The 7x7 stem: shift_gemm's per-row GEMMs forward (K = 21 runs near the GEMM rate of long
    K here) and its narrow weight gradient backward."""
    p = R50["conv1"]
    assert _taps.narrow(p)
    for direction in ("forward", "backward"):
        assert _model_choice(p, direction, tmp_path) == ("shift_gemm", "cost model"), direction


@pytest.mark.parametrize("layer", ["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"])
def test_empty_crossover_runs_the_1x1_downsampling_on_a_gemm_family(layer, tmp_path):
    """1x1 stride-2: the subsampled input copied once and one GEMM (shift_gemm's phase or
    im2col's patch matrix, the same K); never FFT or Winograd."""
    p = R50[layer]
    for direction in ("forward", "backward"):
        assert _model_choice(p, direction, tmp_path)[0] in ("shift_gemm", "im2col")
    assert _model_choice(p, "backward", tmp_path)[0] == "shift_gemm"
