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


SPLIT_CASES = ["n4c64h8w10o8k3s2p1", "n3c64h12w12o16k3s2p1nb", "n5c8h9w9o4k3s2p1", "n4c16h10w10o32k1s2",
               "n3c3h20w20o8k7s2p3", "n4c16h9w9o8k3p1g2"]


@pytest.mark.parametrize("desc", SPLIT_CASES)
def test_layout_copies_cut_across_two_threads_are_exact(desc, monkeypatch):
    """Every layout copy cut by images across two threads (``_SPLIT_BYTES`` 0, so even these small
    cases are cut; unpadded and padded stride-2 phases, the stem's, 1x1 stride 2, groups): forward
    and backward bit-exact on small integers, and the same bits as on one thread."""
    from convbench.cases import parse_descriptor
    from impls import _fast_common

    p = parse_descriptor(desc).params
    inp = OP.make_inputs(p, "float32", fill="exact", seed=9)
    impl = get_impl("shift_gemm")

    def run():
        return (impl.forward(p, inp["x"], inp["w"], inp.get("b")), *impl.backward(p, inp["dy"], inp["x"], inp["w"]))

    with threadpool_limits(1, user_api="blas"):
        one = run()
    monkeypatch.setattr(_fast_common, "_SPLIT_BYTES", 0)
    parts: list[tuple[int, int]] = []
    real = _fast_common.split_images

    def spy(fn, n, nbytes):
        parts.append((n, nbytes))
        real(fn, n, nbytes)

    for mod in ("_taps", "_unpadded"):
        monkeypatch.setattr(f"impls.{mod}.split_images", spy)
    with threadpool_limits(2, user_api="blas"):
        two = run()
    assert parts, "no copy was cut"
    ref = (OP.reference_forward(p, inp["x"], inp["w"], inp.get("b")), *OP.reference_backward(p, inp["dy"], inp["x"], inp["w"]))
    for label, a, b, r in zip(("forward", "grad_input", "grad_weight", "grad_bias"), one, two, ref):
        if r is not None:
            assert np.array_equal(b.astype(np.float64), r), f"{desc} {label}"
            assert np.array_equal(a, b), f"{desc} {label}"


def test_split_images_runs_every_image_once_and_not_nested_on_the_pool(monkeypatch):
    """Each image in exactly one part, the parts at once on two threads; called from a pool thread
    it runs whole there (a nested hand-off could wait on itself)."""
    from impls import _fast_common

    monkeypatch.setattr(_fast_common, "_SPLIT_BYTES", 0)
    seen: list[tuple[int, int]] = []
    with threadpool_limits(2, user_api="blas"):
        _fast_common.split_images(lambda lo, hi: seen.append((lo, hi)), 7, 1)
        assert sorted(seen) == [(0, 3), (3, 7)]
        nested: list[tuple[int, int]] = []
        _fast_common.pool().submit(_fast_common.split_images, lambda lo, hi: nested.append((lo, hi)), 7, 1).result(timeout=30)
        assert nested == [(0, 7)]
    seen.clear()
    with threadpool_limits(1, user_api="blas"):
        _fast_common.split_images(lambda lo, hi: seen.append((lo, hi)), 7, 1)
    assert seen == [(0, 7)]


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
