"""The repo's measurement scripts: the method benchmark and the ResNet-50 performance benchmark.

Their figures are machine-dependent and live in the README; here the mechanics are tested on tiny
inputs: what they time, pair and report, not how fast anything is.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from convbench.cases import Case
from convbench.ops.conv2d import Conv2dParams

SUITES = Path(__file__).resolve().parent.parent / "suites"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SUITES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_method_benchmark_reports_ratio_and_spreads(tmp_path, monkeypatch, capsys):
    mb = _load("method_benchmark")
    a = np.ones(64)
    monkeypatch.setattr(mb, "operations", lambda: [("tiny add", lambda: a + a)])
    monkeypatch.setattr(mb, "torch_median", lambda fn, threads: 2e-6)   # a fixed reference
    meds = iter([1e-6, 3e-6, 2e-6])
    monkeypatch.setattr(mb, "convbench_median", lambda fn: (next(meds), 0.01))
    out = tmp_path / "mb.json"
    assert mb.main(["--reps", "3", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["convbench_medians_s"] == [1e-6, 3e-6, 2e-6]
    assert row["ratio"] == pytest.approx(1.0)                   # median 2us / 2us
    assert row["convbench_spread"] == pytest.approx(1.0)        # (3 - 1) / 2
    assert row["paired_ratio_spread"] == pytest.approx(1.0)     # ratios 0.5, 1.5, 1.0
    assert "paired" in capsys.readouterr().out


def test_method_benchmark_rejects_one_repetition():
    mb = _load("method_benchmark")
    with pytest.raises(SystemExit):
        mb.main(["--reps", "1"])


def test_paired_timing_alternates():
    """Every function is timed once per round, in turn: a drift of the machine hits all alike."""
    perf = _load("perf_resnet50")
    order: list[str] = []
    fns = [lambda: order.append("a"), lambda: order.append("b")]
    perf._paired(fns, budget=0.06, rounds=3)
    # each round times a (calls) then b (calls): the sequence switches from a to b and back
    switches = sum(1 for x, y in zip(order, order[1:]) if x != y)
    assert order[0] == "a" and switches == 5


def test_perf_run_pairs_fastest_with_the_best_single(tmp_path):
    perf = _load("perf_resnet50")
    case = Case(id="tiny.3x3", params=Conv2dParams(n=1, c=4, h=6, w=6, o=4, kh=3, kw=3, padding=1),
                dtype="float32")
    out = tmp_path / "perf.jsonl"
    recs = perf.run([case], ["shift_gemm", "winograd"], ["forward"], budget=0.02, slow_factor=1e9, out=out)
    by = {r["impl"]: r for r in recs}
    assert set(by) == {"torch_cpu", "shift_gemm", "winograd", "fastest"}
    fast = by["fastest"]
    best = min(("shift_gemm", "winograd"), key=lambda n: by[n]["t_median_s"])
    assert fast["choice"] == best == fast["best_single"]
    assert fast["vs_best_single"] == pytest.approx(fast["t_median_s"] / fast["best_single_paired_s"])
    assert fast["vs_torch"] == pytest.approx(fast["t_median_s"] / fast["torch_paired_s"])
    assert len(out.read_text().splitlines()) == 4
    text = perf.report(recs, [case], ["shift_gemm", "winograd"], ["forward"], peak=100.0)
    assert "geometric mean" in text and "timed in alternation" in text
    assert f"{int(fast['vs_best_single'] <= 1.1)}/1 within 10 %" in text
    assert "chose the best single on 1/1" in text


def test_perf_run_marks_hopeless_implementations_by_one_call(tmp_path):
    perf = _load("perf_resnet50")
    case = Case(id="tiny.5x5", params=Conv2dParams(n=1, c=2, h=8, w=8, o=2, kh=5, kw=5), dtype="float32")
    recs = perf.run([case], ["fft", "winograd"], ["forward"], budget=0.02, slow_factor=0.0, out=None)
    by = {r["impl"]: r for r in recs}
    assert by["winograd"]["status"] == "skipped" and "3x3" in by["winograd"]["reason"]
    assert by["fft"]["reason"] == "single call (slow)"


def test_ceiling_report_takes_percentages_of_the_peak_timed_alongside(monkeypatch):
    """The 3x3 >= 64-channel summary times fastest (forward and backward), torch_cpu, shift_gemm's
    GEMMs alone and the peak GEMMs in one alternation, and divides by the faster peak of that
    same stretch; the run's own figure, of the peak given, stays beside it."""
    perf = _load("perf_resnet50")
    big = Case(id="m.big", params=Conv2dParams(n=1, c=64, h=4, w=4, o=64, kh=3, kw=3, padding=1, bias=False),
               dtype="float32")
    small = Case(id="m.small", params=Conv2dParams(n=1, c=8, h=4, w=4, o=8, kh=3, kw=3, padding=1), dtype="float32")
    fl, bl = big.params.flops("forward"), big.params.flops("backward")
    recs = [{"impl": "shift_gemm", "case": "m.big", "descriptor": big.descriptor, "op": "conv2d",
             "params": big.as_dict()["params"], "direction": d, "dtype": "float32", "status": "ok",
             "t_median_s": 1e-3} for d in ("forward", "backward")]
    recs += [{"impl": "fastest", "case": "m.big", "direction": "forward", "gflops": 25.0},
             {"impl": "torch_cpu", "case": "m.big", "direction": "forward", "gflops": 80.0},
             {"impl": "fastest", "case": "m.big", "direction": "backward", "gflops": 40.0},
             {"impl": "fastest", "case": "m.small", "direction": "forward", "gflops": 1.0}]
    peak_flops = 2 * 1024 ** 3
    # GFLOP/s per round: the machine slows in the second round; a percentage is each round's own
    # ratio (median 50 % for fastest), not the ratio of medians (45 / 60 = 75 %)
    rates = {"fastest": [50e9, 10e9, 45e9], "torch_cpu": [80e9, 16e9, 48e9], "gemms": [75e9, 15e9, 45e9],
             "backward": [40e9, 8e9, 24e9], "peak_numpy": [100e9, 20e9, 60e9], "peak_torch": [90e9, 10e9, 50e9]}
    seen: dict[str, list] = {}
    real = np.matmul

    def fake_alongside(fns, budget, rounds=6):
        seen["names"], seen["budget"] = list(fns), budget
        calls = []
        monkeypatch.setattr(np, "matmul", lambda a, b, out=None: calls.append((a.shape, b.shape)) or real(a, b, out=out))
        fns["gemms"]()
        monkeypatch.setattr(np, "matmul", real)
        seen["gemms"] = calls
        y = fns["fastest"]()
        assert y.shape == (1, 64, 4, 4)
        if "backward" in fns:
            assert len(fns["backward"]()) == 3
        flops = {"backward": bl, "peak_numpy": peak_flops, "peak_torch": peak_flops}
        return {k: [flops.get(k, fl) / r for r in rates[k]] for k in fns}
    monkeypatch.setattr(perf, "alongside", fake_alongside)
    monkeypatch.setattr(perf, "peak_calls", lambda: {"numpy": lambda: None, "torch": lambda: None})
    text = perf.ceiling_report(recs, [big, small], budget=0.01, peak=125.0)
    from impls.shift_gemm import forward_gemms
    assert seen["gemms"] == [((m, k), (k, n)) for m, k, n in forward_gemms(big.params)]
    assert sorted(seen["names"]) == sorted(rates)
    assert seen["budget"] == perf._MIN_ALONGSIDE_S        # never blocks too short to time a layer
    assert "m.small" not in text                       # fewer than 64 channels: not in the summary
    line = next(x for x in text.splitlines() if x.startswith("m.big"))
    # of each round's faster peak (NumPy's; median 60 GFLOP/s), not the run's 125: torch 80, fastest 50,
    # GEMMs 75, backward 40; the run's 25 GFLOP/s of 125: 20
    assert line.split()[1:] == ["60.0", "80.0%", "50.0%", "75.0%", "40.0%", "20.0%"]
    assert "fastest 50.0-50.0 %" in text and "1/1 at >= 50 %" in text and "fastest backward 40.0-40.0 %" in text
    assert "of 125.0 GFLOP/s: fastest 20.0-20.0 %" in text
    rates["fastest"] = [49e9, 9.8e9, 29.4e9]
    recs = [r for r in recs if r["direction"] == "forward"]   # a forward-only run: backward left blank
    text = perf.ceiling_report(recs, [big], budget=0.01, peak=100.0)
    assert "backward" not in seen["names"]
    assert next(x for x in text.splitlines() if x.startswith("m.big")).split()[5] == "-"
    assert "0/1 at >= 50 %" in text and not any(x.startswith("fastest backward") for x in text.splitlines())


def test_peak_calls_multiply_the_peak_shapes():
    perf = _load("perf_resnet50")
    calls = perf.peak_calls(n=16)
    assert set(calls) == {"numpy", "torch"}
    for fn in calls.values():
        fn()


@pytest.mark.parametrize("layout,baseline,chunk", [("tap_columns", "rows", None), ("taps", "rows", None),
                                                  ("taps_unpadded", "taps", None),
                                                  ("taps_unpadded", "taps_unpadded", 64 * 16 * 16 * 4)])
def test_shift_gemm_layouts_compares_against_a_baseline_and_restores_the_rules(layout, baseline, chunk):
    """The script times ``layout`` against ``baseline`` on the layers the rules send to ``layout``,
    with ``chunk`` bytes per chunk of images for ``layout`` only (one image of t.s2: its two
    images run in two chunks, the baseline's in one), and puts the rules back."""
    from impls import shift_gemm

    sl = _load("shift_gemm_layouts")
    few = Case(id="t.few", params=Conv2dParams(n=1, c=8, h=4, w=4, o=16, kh=3, kw=3, padding=1), dtype="float32")
    wide = Case(id="t.wide", params=Conv2dParams(n=1, c=64, h=16, w=16, o=8, kh=3, kw=3, padding=1), dtype="float32")
    narrow = Case(id="t.narrow", params=Conv2dParams(n=1, c=8, h=16, w=16, o=4, kh=3, kw=3, padding=1),
                  dtype="float32")
    s2 = Case(id="t.s2", params=Conv2dParams(n=2, c=64, h=16, w=16, o=8, kh=3, kw=3, padding=1, stride=2),
              dtype="float32")
    want = {"tap_columns": "t.few", "taps": "t.wide", "taps_unpadded": "t.s2"}[layout]
    picked = sl.candidates([few, wide, narrow, s2, few, wide, s2], layout, batch=None)
    assert [c.id for c in picked] == [want]                          # rules applied, duplicates dropped
    if layout == "tap_columns":
        assert sl.candidates([few], layout, batch=2)[0].params.n == 2
        assert sl.candidates([few], layout, batch=8) == []            # 128 outputs for 16 filters: not
    names = ("_FULL_K", "_TAP_C", "_UNPADDED", "_CHUNK_BYTES", "_UNPADDED_CHUNK_BYTES")
    rules = [getattr(shift_gemm, k) for k in names]
    seen = []
    real = shift_gemm._forward

    def spy(*a, **k):
        seen.append((shift_gemm.forward_layout(a[0]), a[0].n))
        return real(*a, **k)
    shift_gemm._forward = spy
    try:
        rows = sl.compare(picked, layout, rounds=2, baseline=baseline, chunk_bytes=chunk)
    finally:
        shift_gemm._forward = real
    assert [getattr(shift_gemm, k) for k in names] == rules
    assert {baseline, layout} <= {lay for lay, _ in seen}             # both layouts really ran
    if chunk:
        # --layout's calls each split in two chunks of one image, the baseline's not
        assert seen.count((layout, 1)) == seen.count((layout, 2)) == 2 * 3
    (row,) = rows
    assert row["ratio_forward"] == pytest.approx(row["layout_forward_s"] / row["baseline_forward_s"])
    assert row["channels_per_group"] == picked[0].params.c


@pytest.mark.parametrize("argv,message", [(["--chunk-mib", "0"], "--chunk-mib must be > 0, got 0.0"),
                                          (["--layout", "taps", "--baseline", "taps"],
                                           "--baseline must differ from --layout unless --chunk-mib is given")])
def test_shift_gemm_layouts_rejects_bad_arguments(argv, message, capsys):
    sl = _load("shift_gemm_layouts")
    with pytest.raises(SystemExit) as e:
        sl.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("shape,pad", [((2, 3, 9, 9), 1), ((1, 4, 8, 11), 0), ((2, 2, 5, 6), 2)])
def test_winograd_f4_prototype_matches_the_oracle(shape, pad):
    """F(4x4, 3x3) of the prototype script: right on sizes that are and are not multiples of the
    4x4 tile, with and without padding (its timings are for the docs, its result is tested)."""
    mod = _load("winograd_f4_prototype")
    from convbench.ops import get_op

    rng = np.random.default_rng(0)
    n, c, h, w_ = shape
    x = rng.standard_normal(shape)
    w = rng.standard_normal((5, c, 3, 3))
    p = Conv2dParams(n=n, c=c, h=h, w=w_, o=5, kh=3, kw=3, padding=pad)
    ref = get_op("conv2d").reference_forward(p, x, w, None)
    parts: dict[str, float] = {}
    got = mod.winograd_f4(x, w, pad, parts=parts)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max() * 100
    assert {"gather", "GEMMs", "scatter"} <= set(parts)
    bad = w.copy()
    bad[0, 0, 1, 1] += 1.0   # a planted wrong tap is seen
    assert np.abs(mod.winograd_f4(x, bad, pad) - ref).max() > 1e-3


def test_winograd_f4_prototype_runs(capsys):
    mod = _load("winograd_f4_prototype")
    assert mod.main(["--batch", "1", "--rounds", "1", "--channels", "8"]) == 0
    out = capsys.readouterr().out
    assert "F(4x4,3x3)" in out and "n1c8h14w14o8k3s1p1" in out and "GEMMs" in out


@pytest.mark.parametrize("cached,now", [(100.0, 120.0), (130.0, 90.0)])
def test_perf_peak_is_the_higher_of_cached_and_now(cached, now, monkeypatch):
    """A peak cached in a slow minute must not let later figures pass 100 %, nor a slow minute
    now flatter them: the script takes the higher of the two and says so."""
    perf = _load("perf_resnet50")
    from convbench.measure import machine

    monkeypatch.setattr(machine, "peaks", lambda: {"peak_gflops": {"float32": cached}, "measured_at": "then"})
    monkeypatch.setattr(machine, "gemm_peak", lambda dtype: {"peak": now} if dtype == "float32" else pytest.fail(dtype))
    peak, source = perf._peak_gflops()
    assert peak == max(cached, now)
    assert f"{cached:.1f} cached (then)" in source and f"{now:.1f} now" in source


def test_perf_peak_given_on_the_command_line_is_used(monkeypatch, capsys):
    perf = _load("perf_resnet50")
    seen = {}
    monkeypatch.setattr(perf, "_peak_gflops", lambda: pytest.fail("measured although --peak was given"))
    monkeypatch.setattr(perf, "run", lambda *a, **k: [])
    monkeypatch.setattr(perf, "report", lambda recs, cases, impls, dirs, peak: seen.setdefault("peak", peak) and "")
    monkeypatch.setattr(perf, "ceiling_report", lambda *a: "")
    assert perf.main(["--quick", "--peak", "139.5", "--impl", "shift_gemm"]) == 0
    assert seen["peak"] == 139.5 and "139.5 GFLOP/s (given with --peak)" in capsys.readouterr().out


def test_perf_layer_picks_layers_by_id_and_names_a_pattern_that_matches_none(monkeypatch, capsys):
    perf = _load("perf_resnet50")
    cases = perf.resnet50_cases()
    picked = perf.select_layers(cases, ["layer2.0.conv2", "layer4.1."])
    assert [c.id for c in picked] == ["resnet50.layer2.0.conv2", "resnet50.layer4.1.conv1", "resnet50.layer4.1.conv2"]
    assert perf.select_layers(cases, []) == cases
    with pytest.raises(SystemExit, match=r"--layer 'layer9' matches none of the 23 layers"):
        perf.select_layers(cases, ["layer9"])
    seen = {}
    monkeypatch.setattr(perf, "run", lambda cases, *a, **k: seen.setdefault("ids", [c.id for c in cases]) and [])
    monkeypatch.setattr(perf, "report", lambda *a: "")
    monkeypatch.setattr(perf, "ceiling_report", lambda *a: "")
    assert perf.main(["--layer", "layer2.0.conv2", "--peak", "100"]) == 0
    assert seen["ids"] == ["resnet50.layer2.0.conv2"]


def test_nan_spread_counts_nans_beyond_and_short_of_the_reference():
    ns = _load("nan_spread")
    from convbench.cases import conv
    from convbench.ops import get_op
    from convbench.registry import ImplInfo, Implementation

    ref = get_op("conv2d")

    class Spreads(Implementation):   # every forward output NaN once any input element is
        info = ImplInfo(op="conv2d", name="spreads")

        def forward(self, p, x, w, b):
            y = ref.reference_forward(p, x, w, b).astype(x.dtype)
            return y * np.float32(np.nan) if any(np.isnan(a).any() for a in (x, w, b) if a is not None) else y

        def backward(self, p, dy, x, w):
            return tuple(None if g is None else np.nan_to_num(g).astype(x.dtype)   # loses every NaN
                         for g in ref.reference_backward(p, dy, x, w))

    class Raises(Spreads):
        info = ImplInfo(op="conv2d", name="raises", directions=frozenset({"forward"}))

        def forward(self, p, x, w, b):
            raise RuntimeError("boom")

    case = conv("t", n=2, c=2, h=5, w=5, o=4, k=3, padding=1)
    rows = ns.spread([Spreads(), Raises()], [case], "conv2d")
    by = {(r["impl"], r["direction"], r["planted"], r["result"]): r for r in rows}
    fwd_x = by[("spreads", "forward", "x", "forward")]
    assert fwd_x["extra"] > 0 and fwd_x["fewer"] == 0
    assert by[("spreads", "forward", "b", "forward")]["extra"] == 2 * 5 * 5   # b[0], b[2], b[3]: one channel left
    for planted in ("dy", "x", "w"):
        for d in ("grad_input", "grad_weight", "grad_bias"):
            r = by.get(("spreads", "backward", planted, d))
            if r is not None:
                assert r["extra"] == 0
    assert by[("spreads", "backward", "dy", "grad_input")]["fewer"] > 0
    assert by[("spreads", "backward", "x", "grad_input")]["fewer"] == 0     # grad_input does not read x
    errs = [r for r in rows if r["impl"] == "raises"]
    assert {r["status"] for r in errs} == {"error"} and all("boom" in r["message"] for r in errs)
    assert {r["planted"] for r in errs} == {"x", "w", "b"}                 # forward only


@pytest.mark.parametrize("argv,message", [(["--suite", "nope"], "--suite 'nope' is not a suite of conv2d"),
                                          (["--impl", "nope"], "--impl 'nope' is not an implementation of conv2d"),
                                          (["--op", "nope"], "--op:")])
def test_nan_spread_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        _load("nan_spread").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_nan_spread_prints_a_real_implementations_counts(capsys):
    # stride_tricks' grad_input spreads a NaN in w over dy's zero padding (docs/verification.md)
    assert _load("nan_spread").main(["--impl", "stride_tricks", "--suite", "quick", "--examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("conv2d, 7 cases (quick)")
    row = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["stride_tricks", "w", "grad_input"])
    runs, extra, fewer, error = map(int, lines[row].split()[3:])
    assert runs == 7 and extra > 0 and error == 0
    assert lines[row + 1].strip().startswith("extra: first on ")
