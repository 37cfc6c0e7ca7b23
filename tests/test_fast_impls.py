"""shift_gemm, fft, winograd and fastest against torch float64, bit-exactness, error growth, choice."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from _torch_oracle import torch_float64 as _torch
from convbench.cases import get_suite
from convbench.ops import get_op
from convbench.ops.conv2d import Conv2dParams
from convbench.registry import get_impl
from impls import _crossover, _fast_common
from impls.fastest import CANDIDATES, FastestConv2d, cost_model
from impls.fft import fft_size
from impls.winograd import GROWTH

OP = get_op("conv2d")
EDGE = get_suite("edge")
NEW = ("shift_gemm", "fft", "winograd", "fastest")


def _run(impl, p, inp):
    y = impl.forward(p, inp["x"], inp["w"], inp.get("b"))
    return (y, *impl.backward(p, inp["dy"], inp["x"], inp["w"]))


def fft_bound(p: Conv2dParams, dtype: str, direction: str, a: np.ndarray, b: np.ndarray) -> float:
    """docs/fast-algorithms.md: max|err| <= u*(4*log2(L) + K) * max_out sum_k ||a_k||_2 ||b_k||_1."""
    u = np.finfo(dtype).eps / 2
    fh, fw = fft_size(p)
    k = p.accumulation_length(direction)
    return float(u * (4 * math.log2(fh * fw) + k) * a * b)


def _in_chunks_of(monkeypatch, p: Conv2dParams, per: int, itemsize: int = 4) -> None:
    """shift_gemm's cache budget set to chunks of ``per`` images of ``p``: the phases (and the
    per-row layout's four stacked row copies at stride 2), or the unpadded layout's row buffers,
    which hold exactly the input."""
    from impls import shift_gemm

    g = _fast_common.geometry(p)
    if shift_gemm.forward_layout(p) == "taps_unpadded":
        monkeypatch.setattr(shift_gemm, "_UNPADDED_CHUNK_BYTES", per * p.c * p.h * p.w * itemsize)
    else:
        rows = 1 if shift_gemm.forward_layout(p) == "taps" else 1 + p.stride[0] * p.kw / len(g.phases)
        monkeypatch.setattr(shift_gemm, "_CHUNK_BYTES", int(per * len(g.phases) * p.c * g.hq * g.wq * itemsize * rows))
    assert shift_gemm.images_per_chunk(p, g, itemsize) == per


def _fft_norm_terms(p, inp, direction):
    """max over outputs of sum_k ||a_k||_2 * ||b_k||_1 (the FFT bound's magnitude factor)."""
    x, w, dy = (np.asarray(inp[k], np.float64) for k in ("x", "w", "dy"))
    G = p.groups
    x2 = np.sqrt((x ** 2).sum(axis=(2, 3)))                  # (N, C)
    w1 = np.abs(w).sum(axis=(2, 3))                           # (O, C/g)
    dy2 = np.sqrt((dy ** 2).sum(axis=(2, 3)))
    dy1 = np.abs(dy).sum(axis=(2, 3))
    cg, og = p.c // G, p.o // G
    best = 0.0
    for g in range(G):
        xs, ws = x2[:, g * cg:(g + 1) * cg], w1[g * og:(g + 1) * og]
        if direction == "forward":
            best = max(best, float((xs @ ws.T).max()))
        elif direction == "grad_input":
            best = max(best, float((dy2[:, g * og:(g + 1) * og] @ ws).max()))
        else:
            best = max(best, float((dy1[:, g * og:(g + 1) * og].T @ xs).max()))
    return best


def winograd_bound(p: Conv2dParams, dtype: str, direction: str, inp) -> float:
    """docs/fast-algorithms.md: |err| <= u*(K+8)*GROWTH*K*max|a|*max|b| (grad_weight: direct)."""
    u = np.finfo(dtype).eps / 2
    k = p.accumulation_length(direction)
    a = np.abs(inp["x" if direction == "forward" else "dy"]).max()
    return float(u * (k + 8) * GROWTH * k * a * np.abs(inp["w"]).max())


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
def test_against_torch_float64(name, case):
    impl, p = get_impl(name), case.params
    if impl.unsupported(p, "float64", "forward"):
        pytest.skip(impl.unsupported(p, "float64", "forward"))
    inp = OP.make_inputs(p, "float64", seed=1)
    got = _run(impl, p, inp)
    want = _torch(p, inp["x"], inp["w"], inp.get("b"), inp["dy"])
    for label, g, r in zip(("forward", "grad_input", "grad_weight", "grad_bias"), got, want):
        if r is None:
            assert g is None
            continue
        assert g.shape == r.shape and g.dtype == np.float64, label
        err = float(np.abs(g - r).max())
        assert err <= 1e-10 * max(float(np.abs(r).max()), 1.0), f"{name} {case.id} {label}: {err:.3g}"


@pytest.mark.parametrize("name", ("fft", "winograd"))
@pytest.mark.parametrize("dtype", ("float32", "float64"))
@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
def test_within_documented_bound(name, dtype, case):
    impl, p = get_impl(name), case.params
    if impl.unsupported(p, dtype, "forward"):
        pytest.skip("unsupported")
    inp = OP.make_inputs(p, dtype, seed=2)
    ref = (OP.reference_forward(p, inp["x"], inp["w"], inp.get("b")),
           *OP.reference_backward(p, inp["dy"], inp["x"], inp["w"]))
    got = _run(impl, p, inp)
    for direction, g, r in zip(("forward", "grad_input", "grad_weight"), got, ref):
        assert g.dtype == np.dtype(dtype)
        err = float(np.abs(g.astype(np.float64) - r).max())
        if name == "fft":
            bnd = fft_bound(p, dtype, direction, _fft_norm_terms(p, inp, direction), 1.0)
        elif direction == "grad_weight":  # direct GEMM: the ordinary gamma_K bound
            bnd = float(2 * np.finfo(dtype).eps / 2 * p.accumulation_length(direction)
                        * np.abs(OP.reference_backward(p, *(np.abs(inp[k]) for k in ("dy", "x", "w")))[1]).max())
        else:
            bnd = winograd_bound(p, dtype, direction, inp)
        assert err <= bnd, f"{name} {case.id} {direction} {dtype}: err {err:.3g} > bound {bnd:.3g}"


def test_bound_catches_a_planted_error():
    """A wrong tap (the kind of bug the bound must catch) lands far above both bounds."""
    p = Conv2dParams(n=2, c=8, h=12, w=12, o=4, kh=3, kw=3, padding=1)
    inp = OP.make_inputs(p, "float32", seed=3)
    y = get_impl("winograd").forward(p, inp["x"], inp["w"], inp["b"])
    bad_w = inp["w"].copy()
    bad_w[0, 0, 0, 0] += 0.5  # one tap of one channel pair off by half a unit
    y_bad = get_impl("winograd").forward(p, inp["x"], bad_w, inp["b"])
    ref = OP.reference_forward(p, inp["x"], inp["w"], inp["b"])
    assert np.abs(y - ref).max() <= winograd_bound(p, "float32", "forward", inp)
    assert np.abs(y_bad - ref).max() > winograd_bound(p, "float32", "forward", inp)
    assert np.abs(y_bad - ref).max() > fft_bound(p, "float32", "forward", _fft_norm_terms(p, inp, "forward"), 1.0)


@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
def test_shift_gemm_bit_exact_float32(case):
    impl, p = get_impl("shift_gemm"), case.params
    inp = OP.make_inputs(p, "float32", fill="exact", seed=4)
    got = _run(impl, p, inp)
    ref = (OP.reference_forward(p, inp["x"], inp["w"], inp.get("b")),
           *OP.reference_backward(p, inp["dy"], inp["x"], inp["w"]))
    for g, r in zip(got, ref):
        if r is not None:
            assert g.dtype == np.float32 and np.array_equal(g.astype(np.float64), r)


@pytest.mark.parametrize("layout", ("row_gemms", "tap_gemms", "tap_gemms_padded", "full_k"))
@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
def test_shift_gemm_every_gemm_layout_bit_exact(case, layout, monkeypatch):
    """Each edge case through each of shift_gemm's GEMM layouts (one GEMM per kernel row over
    stacked copies, one per tap straight on the phases, or one over compacted tap columns with the
    filters as they are), forced whatever the size rules would pick: forward and backward
    bit-exact on small integers."""
    from impls import shift_gemm

    monkeypatch.setattr(shift_gemm, "_FULL_K", 10 ** 9 if layout == "full_k" else 0)
    monkeypatch.setattr(shift_gemm, "_TAP_C", 1 if layout.startswith("tap_gemms") else 10 ** 9)
    if layout.startswith("tap_gemms"):   # full-width windows even where small images would compact them
        monkeypatch.setattr(shift_gemm, "_COMPACT", math.inf)
    if layout == "tap_gemms_padded":   # not the unpadded phases of 3x3 stride-2 layers either
        monkeypatch.setattr(shift_gemm, "_UNPADDED", False)
    impl, p = get_impl("shift_gemm"), case.params
    inp = OP.make_inputs(p, "float32", fill="exact", seed=6)
    got = _run(impl, p, inp)
    ref = (OP.reference_forward(p, inp["x"], inp["w"], inp.get("b")),
           *OP.reference_backward(p, inp["dy"], inp["x"], inp["w"]))
    for label, g, r in zip(("forward", "grad_input", "grad_weight", "grad_bias"), got, ref):
        if r is not None:
            assert g.shape == r.shape and g.dtype == np.float32, label
            assert np.array_equal(g.astype(np.float64), r), f"{case.id} {layout} {label}"


@pytest.mark.parametrize("name", ("shift_gemm", "winograd"))
@pytest.mark.parametrize("case", EDGE, ids=[c.id for c in EDGE])
def test_result_owes_nothing_to_old_scratch(name, case):
    """The fast families reuse scratch buffers between calls and zero only the padding they need:
    with every scratch byte poisoned (NaN) between two calls, the second call is still bit-exact."""
    impl, p = get_impl(name), case.params
    if impl.unsupported(p, "float32", "forward"):
        pytest.skip("unsupported")
    inp = OP.make_inputs(p, "float32", fill="exact", seed=8)
    first = _run(impl, p, inp)
    for buf in _fast_common._WORKSPACE.__dict__.values():
        buf.fill(0xFF)
    for label, a, b in zip(("forward", "grad_input", "grad_weight", "grad_bias"), first, _run(impl, p, inp)):
        if a is not None:
            assert not np.isnan(b).any() and np.array_equal(a, b), f"{name} {case.id} {label}"


def test_shift_gemm_full_k_chosen_for_few_outputs_per_filter():
    from impls.shift_gemm import full_k

    assert full_k(Conv2dParams(n=8, c=512, h=7, w=7, o=512, kh=3, kw=3, padding=1))
    assert not full_k(Conv2dParams(n=8, c=64, h=56, w=56, o=64, kh=3, kw=3, padding=1))


@pytest.mark.parametrize("desc,per", [("n8c512h7w7o512k3p1", 0), ("n8c64h56w56o64k3p1", 0), ("n8c128h56w56o128k3s2p1", 0),
                                      ("n3c8h9w9o4k3s2p1", 0), ("n2c4h12w12o6k1", 0), ("n8c16h7w7o8k3p1g2", 0),
                                      ("n2c3h5w5o8k1s2", 0), ("n5c64h12w12o16k3s2p1", 2), ("n4c64h10w10o8k3s2p1", 0),
                                      ("n3c64h8w8o8k3s2p1", 0)])
def test_shift_gemm_forward_gemms_are_the_ones_it_runs(desc, per, monkeypatch):
    """The GEMM shapes the ceiling measurement times are exactly those the forward multiplies,
    also where a chunk of ``per`` images takes another layout than the others (the last chunk of
    one image of the stride-2 case has few enough outputs for tap columns)."""
    from convbench.cases import parse_descriptor
    from impls import shift_gemm

    p = parse_descriptor(desc).params
    if per:
        _in_chunks_of(monkeypatch, p, per)
        assert not shift_gemm.full_k(p) and shift_gemm.full_k(dataclasses.replace(p, n=1))
    seen: list[tuple[int, int, int]] = []
    real_strided, real_matmul = shift_gemm.strided_gemm, np.matmul

    def strided(a, b, c, beta=0.0):
        seen.append((a.shape[0], a.shape[1], b.shape[1]))
        real_strided(a, b, c, beta)

    def matmul(a, b, out=None):
        batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))
        seen.extend([(a.shape[-2], a.shape[-1], b.shape[-1])] * batch)
        return real_matmul(a, b, out=out)

    from impls import _unpadded

    for mod in (shift_gemm, _unpadded):   # the unpadded stride-2 layout's GEMMs are in a module of their own
        monkeypatch.setattr(mod, "strided_gemm", strided)
    monkeypatch.setattr(shift_gemm.np, "matmul", matmul)
    inp = OP.make_inputs(p, "float32", seed=1)
    get_impl("shift_gemm").forward(p, inp["x"], inp["w"], inp.get("b"))
    for mod in (shift_gemm, _unpadded):
        monkeypatch.setattr(mod, "strided_gemm", real_strided)
    monkeypatch.setattr(shift_gemm.np, "matmul", real_matmul)
    assert seen and seen == shift_gemm.forward_gemms(p)
    assert sum(2 * m * k * n for m, k, n in seen) >= 2 * p.macs


@pytest.mark.parametrize("desc,dtype,per", [("n8c128h56w56o128k3s2p1", "float32", 4), ("n8c128h56w56o128k3s2p1", "float64", 2),
                                            ("n8c256h28w28o256k3s2p1", "float32", 8), ("n8c64h56w56o64k3p1", "float32", 4),
                                            ("n8c64h56w56o64k3p1", "float64", 2), ("n8c256h14w14o256k3p1", "float32", 8),
                                            ("n7c64h56w56o64k3p1", "float32", 4), ("n1c512h224w224o8k3p1", "float32", 1)])
def test_shift_gemm_images_per_chunk(desc, dtype, per):
    """The batch is cut into equal chunks whose phases fit the cache budget (one image at least;
    the unpadded stride-2 layout's row buffers, as large as the input, have a budget of their own)."""
    from convbench.cases import parse_descriptor
    from impls import shift_gemm

    p = parse_descriptor(desc).params
    g = _fast_common.geometry(p)
    got = shift_gemm.images_per_chunk(p, g, np.dtype(dtype).itemsize)
    assert got == per
    chunks = -(-p.n // got)
    assert -(-p.n // chunks) == got   # no chunk much smaller than the others


@pytest.mark.parametrize("desc", ["n5c64h20w20o16k3s2p1", "n5c8h12w12o16k3p1"])
def test_shift_gemm_chunked_forward_matches_and_orders_the_weights_once(desc, monkeypatch):
    """Chunks of images (a cache budget small enough for three chunks of 2, 2 and 1 images) give
    the whole batch's result exactly, and the weights are put in GEMM order once per call, not once
    per chunk (taps layout at 64 channels, rows layout at 8)."""
    from convbench.cases import parse_descriptor
    from impls import shift_gemm

    p = parse_descriptor(desc).params
    inp = OP.make_inputs(p, "float32", fill="exact", seed=3)   # small integers: every order exact
    x, w, b = inp["x"], inp["w"], inp["b"]
    whole = shift_gemm._forward(p, x, w, b, chunk=False)
    _in_chunks_of(monkeypatch, p, 2)
    calls = []
    for name in ("_tap_weights", "_row_weights"):
        real = getattr(shift_gemm, name)
        monkeypatch.setattr(shift_gemm, name, lambda q, ww, real=real, name=name: calls.append(name) or real(q, ww))
    got = shift_gemm._forward(p, x, w, b)
    assert np.array_equal(got, whole)
    assert len(calls) == 1 and calls[0] == ("_tap_weights" if p.c >= 64 else "_row_weights")
    np.testing.assert_allclose(got, _torch(p, x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                           np.zeros(got.shape))[0], rtol=0, atol=0)


@pytest.mark.parametrize("desc", ["n3c64h8w10o8k3s2p1", "n6c64h2w2o1k3s2p1", "n4c128h6w4o2k3s2p1g2",
                                  "n5c64h12w12o16k3s2p1nb"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shift_gemm_unpadded_phases_match_padded_ones(desc, dtype, monkeypatch):
    """3x3 stride-2 layers on even images run on phases without padding, where a tap reading
    padding finds the last row or column of the image or row before it, zeroed in between taps:
    bit for bit the padded phases' result, also with NaN and inf in every image's first and last
    rows and columns (a zeroing too early loses them, one missing lets them leak into the
    padding), in chunks of images, and owing nothing to the scratch of an earlier call."""
    from convbench.cases import parse_descriptor
    from impls import shift_gemm

    p = parse_descriptor(desc).params
    assert shift_gemm.forward_layout(p) == "taps_unpadded"
    inp = OP.make_inputs(p, dtype, fill="exact", seed=5)
    x, w, b = inp["x"], inp["w"], inp.get("b")
    ref = OP.reference_forward(p, x, w, b)
    got = shift_gemm._forward(p, x, w, b)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got.astype(np.float64), ref)
    xs = x.copy()
    for n in range(p.n):
        c = n % p.c
        xs[n, c, 0, n % p.w] = np.nan
        xs[n, c, -1, (n + 1) % p.w] = np.inf
        xs[n, (c + 1) % p.c, n % p.h, -1] = np.nan
        xs[n, (c + 2) % p.c, (n + 1) % p.h, 0] = -np.inf
        xs[n, (c + 3) % p.c, -1, -1] = np.nan
    with np.errstate(invalid="ignore"):
        unpadded = shift_gemm._forward(p, xs, w, b)
        for buf in _fast_common._WORKSPACE.__dict__.values():
            buf.fill(0xFF)
        assert np.array_equal(shift_gemm._forward(p, xs, w, b), unpadded, equal_nan=True)
        _in_chunks_of(monkeypatch, p, 2, x.itemsize)
        assert np.array_equal(shift_gemm._forward(p, xs, w, b), unpadded, equal_nan=True)
        monkeypatch.setattr(shift_gemm, "_UNPADDED", False)
        assert shift_gemm.forward_layout(p) != "taps_unpadded"
        padded = shift_gemm._forward(p, xs, w, b)
    assert np.isnan(padded).any() and np.array_equal(unpadded, padded, equal_nan=True)


@pytest.mark.parametrize("desc", ["n3c64h8w10o8k3s2p1", "n6c64h2w2o1k3s2p1", "n4c128h6w4o2k3s2p1g2",
                                  "n5c64h12w12o16k3s2p1nb"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shift_gemm_unpadded_backward_is_exact_with_nan_at_the_edges(desc, dtype):
    """The backward of 3x3 stride-2 layers on the unpadded even and odd rows: exact against the
    oracle on small integers, also with NaN and inf in every image's first and last rows and
    columns of ``x`` (grad_weight: a padding pixel read wrongly lets them in, a zeroing too early
    loses them) and of ``dy`` (grad_input: a tap adding into the padding adds into a real pixel
    instead), owing nothing to the scratch of an earlier call. (The padded phases' grad_weight
    is no reference here: it multiplies the zero ``dY`` of its thrown-away outputs by the real
    pixels they read, so a NaN there reaches taps the oracle keeps finite.)"""
    from convbench.cases import parse_descriptor
    from impls import shift_gemm

    p = parse_descriptor(desc).params
    assert shift_gemm.forward_layout(p) == "taps_unpadded"
    inp = OP.make_inputs(p, dtype, fill="exact", seed=7)
    x, w, dy = inp["x"], inp["w"], inp["dy"]
    ref = OP.reference_backward(p, dy, x, w)
    got = shift_gemm._backward_gemm(p, dy, x, w)
    for g, r in zip(got, ref):
        assert (g is None) == (r is None)
        if g is not None:
            assert g.dtype == np.dtype(dtype) and np.array_equal(g.astype(np.float64), r)
    assert shift_gemm._backward_gemm(p, dy, x, None)[0] is None
    assert np.array_equal(shift_gemm._backward_gemm(p, dy, x, None)[1], got[1])
    xs, dys = x.copy(), dy.copy()
    for a in (xs, dys):
        _, c, h, wd = a.shape
        for n in range(p.n):
            k = n % c
            a[n, k, 0, n % wd] = np.nan
            a[n, k, -1, (n + 1) % wd] = np.inf
            a[n, (k + 1) % c, n % h, -1] = np.nan
            a[n, (k + 2) % c, (n + 1) % h, 0] = -np.inf
            a[n, (k + 3) % c, -1, -1] = np.nan
            a[n, (k + 4) % c, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        for xx, dd, k in ((xs, dy, 1), (x, dys, 0)):
            want = OP.reference_backward(p, dd, xx, w)
            got = shift_gemm._backward_gemm(p, dd, xx, w)
            for buf in _fast_common._WORKSPACE.__dict__.values():
                buf.fill(0xFF)
            again = shift_gemm._backward_gemm(p, dd, xx, w)
            for g, a, r in zip(got[:2], again[:2], want[:2]):
                assert np.array_equal(g.astype(np.float64), r, equal_nan=True)
                assert np.array_equal(g, a, equal_nan=True)
            assert not np.isfinite(want[k]).all()   # the planted values reach the gradient


def test_shift_gemm_accumulates_in_place():
    """The beta=1 GEMM must write the caller's array (a copy would silently drop the sum)."""
    rng = np.random.default_rng(0)
    big = rng.standard_normal((40, 6)).astype(np.float32)
    a, b = big[3:23], rng.standard_normal((6, 5)).astype(np.float32)
    c = rng.standard_normal((20, 5)).astype(np.float32)
    want = c.astype(np.float64) + a.astype(np.float64) @ b
    _fast_common.gemm(a, b, c, accumulate=True)
    assert np.allclose(c, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("desc", ["n1c2h9w9o2k5", "n1c2h9w9o2k3s2", "n1c2h9w9o2k3d2", "n1c2h9w9o2kh3kw2"])
def test_winograd_unsupported(desc):
    from convbench.cases import parse_descriptor

    p = parse_descriptor(desc).params
    assert get_impl("winograd").unsupported(p, "float32", "forward")


def test_error_stays_within_bounds_as_channels_and_size_grow():
    """float32 forward error against float64, relative to the output's scale, over channels and size."""
    for c in (4, 32, 128):
        for hw in (8, 32):
            p = Conv2dParams(n=2, c=c, h=hw, w=hw, o=8, kh=3, kw=3, padding=1, bias=False)
            inp = OP.make_inputs(p, "float32", seed=5)
            ref = OP.reference_forward(p, inp["x"], inp["w"])
            scale = float(np.abs(ref).max())
            errs = {n: float(np.abs(get_impl(n).forward(p, inp["x"], inp["w"], None) - ref).max()) / scale
                    for n in ("shift_gemm", "winograd", "fft")}
            assert errs["shift_gemm"] < 1e-5 and errs["winograd"] < 1e-4 and errs["fft"] < 1e-4, (c, hw, errs)


def test_fastest_cost_model_without_data(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVBENCH_AUTOTUNE", raising=False)
    f = FastestConv2d(crossover=tmp_path / "none.jsonl")
    p = Conv2dParams(n=8, c=64, h=56, w=56, o=64, kh=3, kw=3, padding=1)
    name = f.choice(p, "float32", "forward")
    assert name in CANDIDATES and f.why(p, "float32", "forward") == "cost model"
    assert name == min(f.candidates(p, "float32", "forward"), key=lambda c: cost_model(c, p, "float32", "forward"))
    # the model knows FFT wins for large kernels (measured here: 37 ms against shift_gemm's 124 ms)
    big = Conv2dParams(n=4, c=16, h=64, w=64, o=16, kh=15, kw=15, padding=7)
    assert f.choice(big, "float32", "forward") == "fft"
    # and that this NumPy Winograd's transforms cost more than its saved multiplications
    assert f.choice(p, "float32", "forward") != "winograd"


@pytest.mark.parametrize("winner", ["im2col", "shift_gemm", "fft"])
def test_fastest_follows_crossover_records(tmp_path, winner):
    p = Conv2dParams(n=2, c=4, h=10, w=10, o=4, kh=3, kw=3, padding=1)
    path = tmp_path / "crossover.jsonl"
    recs = []
    for name in CANDIDATES:
        t = 0.001 if name == winner else 0.01
        recs.append({"impl": name, "op": "conv2d", "params": {k: list(v) if isinstance(v, tuple) else v
                                                               for k, v in p.asdict().items()},
                     "direction": "backward", "dtype": "float32", "status": "ok", "t_median_s": t})
    recs.append({"impl": "winograd", "params": {"bad": 1}, "status": "ok"})  # damaged line: ignored
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\nnot json\n")
    f = FastestConv2d(crossover=path, autotune=False)
    assert f.choice(p, "float32", "backward") == winner and f.why(p, "float32", "backward") == "crossover"
    assert f.why(p, "float32", "forward") == "cost model"  # no forward records
    inp = OP.make_inputs(p, "float32")
    dx, dw, db = f.backward(p, inp["dy"], inp["x"], inp["w"])
    ref = OP.reference_backward(p, inp["dy"], inp["x"], inp["w"])
    assert np.allclose(dx, ref[0], atol=1e-4) and np.allclose(dw, ref[1], atol=1e-3)


def test_fastest_autotune_picks_a_measured_candidate():
    f = FastestConv2d(crossover="/nonexistent/crossover.jsonl", autotune=True)
    p = Conv2dParams(n=1, c=4, h=12, w=12, o=4, kh=3, kw=3, padding=1)
    assert f.choice(p, "float32", "forward") in f.candidates(p, "float32", "forward")
    assert f.why(p, "float32", "forward") == "autotune"


def test_fastest_choice_is_recorded_by_the_bench_layer():
    from convbench.cases import parse_descriptor
    from convbench.measure import bench

    case = parse_descriptor("n1c2h6w6o2k3p1")
    impl = get_impl("fastest")
    runner = type("R", (), {"run_id": "t", "machine": {}, "threads": None, "worker_name": "t"})()
    rec = bench._base(runner, impl, case, "forward")
    assert rec["choice"] == impl.choice(case.params, "float32", "forward")


@pytest.mark.parametrize("pads,groups", [((3, 1), 1), (0, 2), (2, 3), ("same", 6)],
                         ids=["pad-over-2", "valid-groups", "pad2-groups", "same-depthwise"])
def test_winograd_paddings_and_groups(pads, groups):
    """Odd sizes, a pad above 2 (grad_input then crops ``dy``), groups and depthwise, against
    torch float64 within the documented bound, forward and grad_input."""
    p = Conv2dParams(n=2, c=6, h=7, w=10, o=6 if groups == 6 else 12, kh=3, kw=3, groups=groups,
                     padding=pads, bias=True)
    inp = OP.make_inputs(p, "float32", seed=5)
    impl = get_impl("winograd")
    y, dx, dw, db = _run(impl, p, inp)
    ry, rdx, rdw, rdb = _torch(p, inp["x"], inp["w"], inp["b"], inp["dy"])
    assert y.shape == ry.shape and dx.shape == rdx.shape and dw.shape == rdw.shape
    assert np.abs(y - ry).max() <= winograd_bound(p, "float32", "forward", inp)
    assert np.abs(dx - rdx).max() <= winograd_bound(p, "float32", "grad_input", inp)
    assert np.allclose(dw, rdw, rtol=1e-4, atol=1e-4) and np.allclose(db, rdb, rtol=1e-4, atol=1e-4)


def test_workers_follow_the_blas_thread_limit():
    """``--threads 1`` (threadpoolctl) must hold the element-wise worker threads to one too."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        assert _fast_common.workers() == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert _fast_common.workers() == 2


def test_winograd_transforms_split_across_workers(monkeypatch):
    """The spans of a long transform cover it exactly once, whether one or two workers run them."""
    from impls import winograd

    for nw in (1, 2):
        monkeypatch.setattr(winograd, "workers", lambda nw=nw: nw)
        seen = np.zeros(winograd._PARALLEL + 12345, np.int64)

        def mark(lo, hi):
            seen[lo:hi] += 1
        winograd._chunked(seen.size, mark)
        assert (seen == 1).all()


def test_fastest_binds_its_choice_once_per_call_signature(monkeypatch):
    """No registry lookup per call once a signature is bound (it cost 10-25 % of a 0.1 ms layer);
    a new signature is still decided afresh."""
    import impls.fastest as fastest_mod

    f = FastestConv2d(autotune=False)
    p = Conv2dParams(n=1, c=4, h=6, w=6, o=4, kh=3, kw=3, padding=1)
    inp = OP.make_inputs(p, "float32", seed=1)
    y0 = f.forward(p, inp["x"], inp["w"], inp["b"])

    def no_lookup(*a, **k):
        raise AssertionError("looked up again")
    monkeypatch.setattr(fastest_mod, "get_impl", no_lookup)
    assert np.array_equal(f.forward(p, inp["x"], inp["w"], inp["b"]), y0)
    p2 = Conv2dParams(n=1, c=4, h=7, w=7, o=4, kh=3, kw=3, padding=1)
    inp2 = OP.make_inputs(p2, "float32", seed=1)
    with pytest.raises(AssertionError, match="looked up again"):
        f.forward(p2, inp2["x"], inp2["w"], inp2["b"])


@pytest.mark.parametrize("desc,layout", [("n8c64h56w56o64k3p1", "taps"), ("n8c3h224w224o64k7s2p3", "rows"),
                                         ("n8c512h7w7o512k3p1", "tap_columns"), ("n8c64h56w56o256k1", "gemm_per_image"),
                                         ("n2c8h9w9o8k3p1g8", "depthwise")])
def test_shift_gemm_forward_layout_names_the_path_taken(desc, layout, monkeypatch):
    from convbench.cases import parse_descriptor
    from impls import shift_gemm

    p = parse_descriptor(desc).params
    assert shift_gemm.forward_layout(p) == layout
    if layout in ("taps", "rows"):   # the GEMM count tells the two apart: kh*kw versus kh per chunk
        per_chunk = p.kh * p.kw if layout == "taps" else p.kh
        assert len(shift_gemm.forward_gemms(p)) % per_chunk == 0
        assert {k for _, k, _ in shift_gemm.forward_gemms(p)} == {p.c * (1 if layout == "taps" else p.kw)}


def _crossover_line(p, name, t, direction="forward"):
    return json.dumps({"impl": name, "op": "conv2d", "params": {k: list(v) if isinstance(v, tuple) else v
                                                                for k, v in p.asdict().items()},
                       "direction": direction, "dtype": "float32", "status": "ok", "t_median_s": t}) + "\n"


def test_fastest_reads_the_crossover_file_again_when_it_grows(tmp_path):
    """A bench in the same process adds to the file as it goes: later decisions see the new times,
    the latest line of a candidate counts, and choices already made stand."""
    p1 = Conv2dParams(n=1, c=4, h=8, w=8, o=4, kh=3, kw=3, padding=1)
    p2 = Conv2dParams(n=1, c=4, h=9, w=9, o=4, kh=3, kw=3, padding=1)
    path = tmp_path / "cross.jsonl"
    path.write_text(_crossover_line(p1, "im2col", 0.001) + _crossover_line(p1, "shift_gemm", 0.002))
    f = FastestConv2d(crossover=path, autotune=False)
    assert f.choice(p1, "float32", "forward") == "im2col" and f.why(p1, "float32", "forward") == "crossover"
    with open(path, "a") as fh:   # im2col measured again, slower now; p2 measured for the first time
        fh.write(_crossover_line(p1, "im2col", 0.005) + _crossover_line(p2, "stride_tricks", 1e-4)
                 + _crossover_line(p2, "shift_gemm", 1e-3))
    assert f.choice(p2, "float32", "forward") == "stride_tricks" and f.why(p2, "float32", "forward") == "crossover"
    assert f.choice(p1, "float32", "forward") == "im2col"          # decided before the new lines: stands
    g = FastestConv2d(crossover=path, autotune=False)
    assert g.choice(p1, "float32", "forward") == "shift_gemm"       # the latest im2col line counts
    # a bench compacts the file (a new, smaller one), then adds to it
    assert _crossover.compact_crossover(path, max_bytes=0)
    p3 = Conv2dParams(n=1, c=4, h=7, w=7, o=4, kh=3, kw=3, padding=1)
    with open(path, "a") as fh:
        fh.write(_crossover_line(p3, "im2col", 1e-4) + _crossover_line(p3, "shift_gemm", 1e-3))
    assert f.choice(p3, "float32", "forward") == "im2col" and f.why(p3, "float32", "forward") == "crossover"
    assert FastestConv2d(crossover=path, autotune=False).choice(p2, "float32", "forward") == "stride_tricks"


def test_fastest_in_a_bench_chooses_from_the_times_that_run_measured(tmp_path, monkeypatch):
    """``convbench bench`` times fastest after the candidates whatever the order given (the
    registry's is alphabetical), so its choice comes from the times just measured on this
    machine, no file named by hand."""
    from convbench.cases import parse_descriptor
    from convbench.measure.bench import run_bench

    monkeypatch.setenv("CONVBENCH_CROSSOVER", str(tmp_path / "cross.jsonl"))
    case = parse_descriptor("n1c8h10w10o8k3p1")
    f = FastestConv2d(autotune=False)        # a fresh one: the registered instance may have decided
    f.info = get_impl("fastest").info
    recs = run_bench([f, get_impl("shift_gemm"), get_impl("im2col")], [case], progress=False,
                     directions=("forward",), budget=None,
                     machine={"id": "t", "peak_gflops": {"float32": 100.0, "float64": 50.0}, "peak_gbps": 10.0})
    by = {r["impl"]: r for r in recs}
    assert by["fastest"]["status"] == "ok" and f.why(case.params, "float32", "forward") == "crossover"
    assert by["fastest"]["choice"] == min(("shift_gemm", "im2col"), key=lambda n: by[n]["t_median_s"])
    assert by["fastest"]["chosen_by"] == "crossover" and by["shift_gemm"]["chosen_by"] is None
