"""reports/: loading records, tables, scaling fits and cliffs, the written report, the CLI."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

import reports
from _reports_fakes import QUICK, bench_records, check_records, scaling_cases, write_jsonl
from reports._load import frame_from_records
from reports._scaling import cliffs, fit_power, scaling_table
from reports._tables import case_table, impl_table


# --- loading ---------------------------------------------------------------------------------

def test_load_jsonl_ignores_truncated_last_line(tmp_path):
    recs = bench_records(cases=QUICK[:2], impls=("im2col",))
    p = write_jsonl(tmp_path / "b.jsonl", recs)
    p.write_text(p.read_text() + json.dumps(recs[0])[:40])  # an interrupted append
    f = reports.load([p])
    assert len(f) == len(recs)


def test_load_skips_a_torn_line_mid_file_with_a_counted_warning(tmp_path, capsys):
    # a killed bench, then --resume: the torn line is no longer last
    recs = bench_records(cases=QUICK[:1], impls=("im2col",))
    lines = [json.dumps(r) for r in recs]
    lines.insert(1, "{not json")
    p = tmp_path / "b.jsonl"
    p.write_text("\n".join(lines) + "\n")
    assert len(reports.load([p])) == len(recs)
    err = capsys.readouterr().err
    assert "b.jsonl" in err and "skipped 1 torn" in err and "line 2" in err


def test_load_refuses_binary_newer_schema_and_odd_records_in_one_line(tmp_path):
    recs = bench_records(cases=QUICK[:1], impls=("im2col",))
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    newer = write_jsonl(tmp_path / "n.jsonl", [dict(recs[0], schema=99)])
    for p, what in ((binary, "not a JSON-lines"), (newer, "schema 99")):
        with pytest.raises(ValueError, match=what) as ei:
            reports.load([p])
        assert "\n" not in str(ei.value)
    odd = write_jsonl(tmp_path / "o.jsonl", [dict(recs[0], params=[1, 2])])
    assert len(reports.load([odd])) == 1   # params not a dict: no parameter columns, no crash


def test_load_flattens_machine_and_derives_rates(tmp_path):
    recs = bench_records(cases=QUICK[:1], impls=("torch_cpu",), directions=("forward",))
    for r in recs:
        r.pop("samples", None)
    f = reports.load([write_jsonl(tmp_path / "b.jsonl", recs)])
    ok = f[f["status"] == "ok"].iloc[0]
    assert ok["machine"] == "alpha" and ok["machine_id"] == "a1a1a1a1a1a1"
    assert ok["peak_gflops"] == 100.0 and ok["peak_gbps"] == 20.0
    assert ok["gflops"] == pytest.approx(ok["flops"] / ok["t_median_s"] / 1e9)
    assert ok["pct_peak"] == pytest.approx(ok["gflops"])  # peak 100 GFLOP/s: % equals GFLOP/s
    assert ok["intensity"] == pytest.approx(ok["flops"] / ok["bytes_min"])
    assert ok["param_kh"] == 3 and ok["param_c"] == 3


def _gpu_records(gpu_peaks: bool):
    """torch_cpu and a measured torch_cuda on one machine that has a GPU (its peaks measured or not)."""
    m = dict(bench_records(impls=("torch_cpu",))[0]["machine"], gpu="Fake GPU")
    if gpu_peaks:
        m.update(gpu_peak_gflops={"float32": 4000.0, "float64": 2000.0}, gpu_peak_gbps=2000.0, gpu_float32_math="tf32")
    recs = []
    for r in bench_records(cases=QUICK[:2], impls=("torch_cpu",)):
        r = dict(r, machine=m)
        if r["impl"] == "torch_cuda":  # the fakes' CUDA rows are skips: here it ran, 10x torch_cpu
            r.update(status="ok", reason=None, t_median_s=r["flops"] / 300e9, t_min_s=r["flops"] / 300e9,
                     t_iqr_s=0.0, samples=[r["flops"] / 300e9])
        recs.append(r)
    return recs[::-1]  # GPU rows first: a machine's CPU figures must not be read off them


@pytest.mark.parametrize("gpu_peaks", [True, False])
def test_a_gpu_record_is_held_to_the_gpu_peaks(tmp_path, gpu_peaks):
    """% of peak and the roofs are the device's own: a GPU's GFLOP/s over the CPU's GEMM peak read
    as 241 % on an H200; a GPU record without measured GPU peaks gets no % at all."""
    f = reports.load([write_jsonl(tmp_path / "b.jsonl", _gpu_records(gpu_peaks))])
    ok = f[f["status"] == "ok"]
    cpu, gpu = ok[ok["device"] == "cpu"], ok[ok["device"] == "cuda"]
    assert len(cpu) and len(gpu) and (gpu["gflops"] > 100.0).all()  # above the CPU's 100 GFLOP/s peak
    assert (cpu["peak_gflops"] == 100.0).all() and cpu["pct_peak"].notna().all()
    if gpu_peaks:
        assert (gpu["peak_gflops"] == 4000.0).all() and (gpu["peak_gbps"] == 2000.0).all()
        assert gpu["pct_peak"].to_numpy() == pytest.approx(100 * gpu["gflops"].to_numpy() / 4000.0)
    else:
        assert gpu["peak_gflops"].isna().all() and gpu["pct_peak"].isna().all()
    (info,) = reports._load.machines(f)
    assert info["peak_gflops"] == {"float32": 100.0, "float64": 50.0} and info["peak_gbps"] == 20.0
    assert info["gpu_peak_gflops"] == ({"float32": 4000.0, "float64": 2000.0} if gpu_peaks else {})
    paths = reports.write_report(f, tmp_path / "r", formats=["md", "html"])
    md, page = paths["md"].read_text(), paths["html"].read_text()
    assert ("float32 (TF32) 4000.0" in md and "GPU peak compute" in page) == gpu_peaks
    fig = reports._plots.roofline_figure(f[f["machine"] == "alpha"].assign(speedup=1.0), info,
                                         reports._plots.impl_colors(list(f["impl"])))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("roof float32: 100 GFLOP/s") for t in labels)
    assert any(t.startswith("GPU roof float32 (TF32): 4000 GFLOP/s") for t in labels) == gpu_peaks
    notes = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert ("GPU peaks not measured" in notes) == (not gpu_peaks)


def test_load_tolerates_sparse_records(tmp_path):
    p = write_jsonl(tmp_path / "b.jsonl", [{"impl": "x", "case": "c1", "t_median_s": 0.5}, {"impl": "y"}])
    f = reports.load([p])
    assert list(f["status"]) == ["ok", "error"]  # "ok" with no time cannot be plotted: marked, with a reason
    assert "no positive t_median_s" in f["reason"].iloc[1]
    assert f["machine"].iloc[0] == "unknown"


def test_load_separates_check_records(tmp_path):
    b = write_jsonl(tmp_path / "b.jsonl", bench_records(cases=QUICK[:1], impls=("im2col",)))
    c = tmp_path / "check.json"
    c.write_text(json.dumps(check_records(impls=("im2col",))))
    f = reports.load([b, c])
    assert len(f) == len(bench_records(cases=QUICK[:1], impls=("im2col",)))
    assert len(f.attrs["checks"]) == len(check_records(impls=("im2col",)))


def test_load_dispatches_pytest_benchmark_and_asv_to_external(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("reports.external")
    fake.read_pytest_benchmark = lambda p: calls.append(("pb", p)) or [{"impl": "torch_cpu", "case": "a", "t_median_s": 1.0}]
    fake.read_asv_results = lambda d: calls.append(("asv", d)) or [{"impl": "im2col", "case": "a", "t_median_s": 2.0}]
    monkeypatch.setattr(reports._load, "external", fake)
    pb = tmp_path / "pb.json"
    pb.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    asv = tmp_path / "results"
    asv.mkdir()
    f = reports.load([pb, asv])
    assert [c[0] for c in calls] == ["pb", "asv"]
    assert sorted(f["impl"]) == ["im2col", "torch_cpu"]


def test_load_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        reports.load([tmp_path / "nope.jsonl"])


# --- tables ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_machines() -> pd.DataFrame:
    return frame_from_records(bench_records(machines=("alpha", "beta"), cases=QUICK[:4]))


def test_case_table_speedup_fastest_and_memory(two_machines):
    t = case_table(two_machines)
    row = t[(t.machine == "alpha") & (t.case == "cifar.conv2") & (t.direction == "forward")].set_index("impl")
    assert row.loc["torch_cpu", "speedup"] == pytest.approx(1.0)
    assert row.loc["im2col", "speedup"] == pytest.approx(row.loc["torch_cpu", "t_median_s"] / row.loc["im2col", "t_median_s"])
    assert bool(row.loc["torch_cpu", "fastest"]) and not row.loc["im2col", "fastest"]
    assert row.loc["im2col", "mem_overhead"] == pytest.approx(row.loc["im2col", "peak_mem_bytes"] / row.loc["im2col", "bytes_min"])
    assert row.loc["torch_cuda", "status"] == "skipped" and np.isnan(row.loc["torch_cuda", "speedup"])


def test_two_machines_are_kept_apart(two_machines):
    t = case_table(two_machines)
    # every measurement row belongs to one machine, and speedups use that machine's baseline
    assert t.groupby(["machine", "case", "direction", "impl"]).size().max() == 1
    a = t[(t.machine == "alpha") & (t.impl == "torch_cpu") & (t.status == "ok")]
    b = t[(t.machine == "beta") & (t.impl == "torch_cpu") & (t.status == "ok")]
    assert len(a) == len(b) > 0 and (b["t_median_s"].to_numpy() < a["t_median_s"].to_numpy()).all()
    s = impl_table(t)
    assert set(s["machine"]) == {"alpha", "beta"} and len(s) == 2 * s["impl"].nunique()
    # quick-suite shapes only: no exponent is fitted over unrelated shapes
    assert scaling_table(t).empty
    sc = case_table(frame_from_records(bench_records(machines=("alpha", "beta"), cases=scaling_cases(("hw",)))))
    assert set(scaling_table(sc)["machine"]) == {"alpha", "beta"}


def test_same_hostname_two_machines_get_distinct_labels():
    recs = bench_records(cases=QUICK[:1], impls=("im2col",), machines=("alpha", "beta"))
    for r in recs:
        r["machine"] = {**r["machine"], "hostname": "ci-runner"}
    f = frame_from_records(recs)
    assert f["machine"].nunique() == 2 and all(m.startswith("ci-runner#") for m in f["machine"].unique())


def test_impl_table_geomean_won_failed_skipped(two_machines):
    recs = bench_records(cases=QUICK[:3], impls=("im2col", "torch_cpu"))
    recs[0] = {**recs[0], "status": "error", "reason": "boom", "t_median_s": None}
    s = impl_table(case_table(frame_from_records(recs))).set_index("impl")
    assert s.loc["torch_cpu", "won"] == 6 and s.loc["im2col", "won"] == 0
    assert s.loc["im2col", "failed"] == 1 and s.loc["torch_cuda", "skipped"] == 6
    t = case_table(frame_from_records(recs))
    sp = t[(t.impl == "im2col") & (t.status == "ok")]["speedup"]
    assert s.loc["im2col", "geomean_speedup"] == pytest.approx(np.exp(np.log(sp).mean()))


def test_baseline_falls_back_when_absent(two_machines):
    t = case_table(two_machines, baseline="no_such_impl")
    assert set(t["baseline"]) == {"im2col"}  # most successful measurements, ties broken by name
    notes = reports.analyse(two_machines, baseline="no_such_impl").notes
    assert any("baseline no_such_impl has no successful measurement" in n for n in notes)


def test_err_ratio_and_check_status_join_from_check_records():
    f = frame_from_records(bench_records(cases=QUICK[:2], impls=("im2col", "torch_cpu")))
    t = case_table(f, check_records=check_records(impls=("im2col", "torch_cpu"), bad="im2col"))
    bad = t[(t.impl == "im2col") & (t.case == "cifar.conv2") & (t.direction == "backward")].iloc[0]
    good = t[(t.impl == "im2col") & (t.case == "cifar.conv2") & (t.direction == "forward")].iloc[0]
    assert bad["check"] == "failed" and bad["err_ratio"] == 40.0
    assert good["check"] == "passed" and good["err_ratio"] == pytest.approx(0.05)
    s = impl_table(t, check_records(impls=("im2col", "torch_cpu"), bad="im2col")).set_index("impl")
    assert s.loc["im2col", "checks_failed"] == 1 and s.loc["torch_cpu", "checks_failed"] == 0


def test_latest_record_supersedes_earlier():
    recs = bench_records(cases=QUICK[:1], impls=("im2col",), directions=("forward",))
    again = [{**r, "time": "2026-01-02T00:00:00", "t_median_s": 123.0} for r in recs if r["impl"] == "im2col"]
    t = case_table(frame_from_records(recs + again))
    assert t[t.impl == "im2col"]["t_median_s"].tolist() == [123.0]


# --- scaling ---------------------------------------------------------------------------------

def test_fit_linear_in_flops_gives_exponent_one():
    rng = np.random.default_rng(1)
    flops = np.geomspace(1e6, 1e10, 12)
    t = 3e-9 * flops * rng.lognormal(0, 0.05, flops.size)
    fit = fit_power(flops, t)
    assert abs(fit["exponent"] - 1) < 0.1 and fit["ci_low"] < 1 < fit["ci_high"]
    assert fit["points"] == 12


def test_fit_detects_quadratic_and_rejects_one():
    x = np.geomspace(8, 256, 6)
    fit = fit_power(x, 1e-6 * x ** 2 * np.array([1.02, 0.98, 1.01, 0.99, 1.03, 0.97]))
    assert abs(fit["exponent"] - 2) < 0.05 and not fit["ci_low"] < 1 < fit["ci_high"]


def test_fit_two_points_has_no_interval_and_one_point_no_fit():
    assert np.isfinite(fit_power([1, 10], [1, 10])["exponent"]) and np.isnan(fit_power([1, 10], [1, 10])["ci_low"])
    assert np.isnan(fit_power([5], [1])["exponent"])


def test_within_sweep_fit_separates_growth_from_per_family_cost():
    """Two sweeps, linear in FLOPs, one 3x dearer per FLOP: the pooled slope is 1, a plain fit is not."""
    from reports._scaling import fit_power_within

    x = np.array([1e6, 2e6, 4e6, 8e6, 1e6, 2e6, 4e6])
    t = np.array([1, 2, 4, 8, 3, 6, 12]) * 1e-3 * np.array([1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99])
    g = np.array(["batch"] * 4 + ["kernel"] * 3)
    fit = fit_power_within(x, t, g)
    assert abs(fit["exponent"] - 1) < 0.02 and fit["ci_low"] < 1 < fit["ci_high"] and fit["points"] == 7
    assert abs(fit_power(x, t)["exponent"] - 1) > 0.1
    lone = fit_power_within(x[:5], t[:5], np.array(["batch"] * 4 + ["kernel"]))  # a lone point says nothing
    assert lone["points"] == 4


def test_naive_scaling_suite_exponent_within_tenth_of_one():
    """Synthetic naive records over a scaling sweep (time = a * FLOPs + noise)."""
    f = frame_from_records(bench_records(impls=("naive",), cases=QUICK[:2] + scaling_cases(), noise=0.05, seed=3))
    fits = scaling_table(case_table(f))
    row = fits[(fits.impl == "naive") & (fits.against == "flops") & (fits.direction == "forward")].iloc[0]
    assert row["source"] == "scaling suite, within sweeps" and row["points"] == 10
    assert abs(row["exponent"] - 1) < 0.1
    hw = fits[(fits.impl == "naive") & (fits.against == "hw") & (fits.direction == "forward")].iloc[0]
    assert abs(hw["exponent"] - 2) < 0.1  # FLOPs grow with h*w


def test_cliff_found_where_planted_and_not_elsewhere():
    f = frame_from_records(bench_records(impls=("im2col", "naive"), cases=scaling_cases(("hw",)), noise=0.01))
    c = cliffs(case_table(f))
    assert set(c["impl"]) == {"im2col"}  # naive is steady; im2col's patch matrix outgrows 4 MiB
    r = c[c.direction == "forward"].iloc[0]
    assert (r["from_value"], r["to_value"]) == (32, 64) and r["ratio"] > 1.5


# --- outputs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    recs = bench_records(machines=("alpha", "beta"), cases=QUICK[:3] + scaling_cases(("hw",)))
    recs[0] = {**recs[0], "impl": "<script>alert(1)</script>", "case": "a|b<i>"}
    f = reports.load([write_jsonl(out / "bench.jsonl", recs)])
    return out, reports.write_report(f, out, check_records=check_records(bad="im2col")), f


def test_write_report_files(written):
    out, paths, _ = written
    assert {"md", "html", "csv", "csv_impls", "csv_scaling", "plots"} <= set(paths)
    for k in ("md", "html", "csv", "csv_impls", "csv_scaling"):
        assert paths[k].exists() and paths[k].stat().st_size > 0
    for kind in ("scaling", "roofline", "speedup", "crossover"):
        for m in ("alpha", "beta"):  # one plot per machine: machines never share a plot
            for ext in ("png", "svg"):
                assert (out / "plots" / f"{kind}-{m}.{ext}").stat().st_size > 1000
    cases = pd.read_csv(paths["csv"])
    assert set(cases["machine"]) == {"alpha", "beta"} and "speedup" in cases and "samples" not in cases


def test_html_is_self_contained_and_escaped(written):
    _, paths, _ = written
    page = paths["html"].read_text()
    assert "<script" not in page  # the planted impl name is escaped, and the page carries no script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a|b&lt;i&gt;" in page
    assert "src='http" not in page and 'src="http' not in page and "href='http" not in page
    assert page.count("data:image/png;base64,") >= 8
    assert "Fake CPU 2 cores" in page and "mkl 2024 avx512" in page  # machine fingerprints in the header
    assert "Failed checks" in page
    # the likely cause in a column of its own, and out of the message beside it
    assert "<th>likely cause</th>" in page and "<td>grad_weight is flipped</td>" in page
    assert "exceed the bound; first bad: [0, 1, 2, 0]" in page and "bound; likely cause" not in page


def test_markdown_escapes_and_links_plots(written):
    _, paths, _ = written
    md = paths["md"].read_text()
    assert "<script>" not in md and "a\\|b&lt;i&gt;" in md
    assert "](plots/roofline-alpha.png)" in md and "time per FLOP rises" in md


def test_summary_text_names_machines_and_impls(two_machines):
    text = reports.summary_text(two_machines)
    assert "alpha" in text and "beta" in text and "torch_cpu" in text
    assert "no scaling-suite cases in these records, so no scaling exponents" in text


def test_write_report_rejects_unknown_format(tmp_path, two_machines):
    with pytest.raises(ValueError, match="pdf"):
        reports.write_report(two_machines, tmp_path, formats=("pdf",))


def test_cli_report_writes_csv(tmp_path):
    from convbench.cli import main

    p = write_jsonl(tmp_path / "b.jsonl", bench_records(cases=QUICK[:2]))
    assert main(["report", str(p), "--out", str(tmp_path / "r"), "--format", "csv"]) == 0
    assert (tmp_path / "r" / "cases.csv").exists() and not (tmp_path / "r" / "index.html").exists()


def test_operators_are_kept_apart_when_impl_names_repeat():
    conv = bench_records(cases=QUICK[:2], impls=("naive", "torch_cpu"))
    pool = [{**r, "op": "max_pool2d", "t_median_s": r.get("t_median_s") and r["t_median_s"] * 7,
             "samples": None} for r in bench_records(cases=QUICK[:2], impls=("naive",))]
    t = case_table(frame_from_records(conv + pool))
    s = impl_table(t)
    assert len(s[(s.impl == "naive")]) == 2 and set(s["op"]) == {"conv2d", "max_pool2d"}
    # max_pool2d has no torch_cpu: its speedups use its own stand-in baseline, never conv2d's torch_cpu
    assert set(t[t.op == "max_pool2d"]["baseline"]) == {"naive"}
    from reports._format import overviews

    ov = dict(overviews(t))
    assert set(ov) == {"conv2d", "max_pool2d"} and "torch_cpu" not in ov["max_pool2d"].columns


def test_err_ratio_carried_by_records_is_kept():
    recs = bench_records(cases=QUICK[:1], impls=("im2col",), directions=("forward",))
    recs = [{**r, "err_ratio": 0.25} for r in recs]
    t = case_table(frame_from_records(recs))
    assert t[t.impl == "im2col"]["err_ratio"].tolist() == [0.25]
    t = case_table(frame_from_records(recs), check_records=check_records(impls=("im2col",)))
    assert t[t.impl == "im2col"]["err_ratio"].tolist() == [pytest.approx(0.05)]  # checks win


def test_case_table_shows_what_a_choosing_implementation_ran():
    """Issue 8: the report shows which algorithm fastest chose where, and flags a choice made
    without measured data."""
    from reports._format import display_cases

    recs = bench_records(cases=QUICK[:1], impls=("im2col",), directions=("forward", "backward"))
    for r in [r for r in recs if r["impl"] == "im2col"]:   # fastest, as it records what it ran
        fwd = r["direction"] == "forward"
        recs.append({**r, "impl": "fastest", "choice": "shift_gemm" if fwd else "im2col",
                     "chosen_by": "crossover" if fwd else "cost model"})
    shown = display_cases(case_table(frame_from_records(recs)))
    impls = set(shown["impl"])
    assert {"im2col", "fastest → shift_gemm", "fastest → im2col (cost model)"} <= impls
    assert "fastest" not in impls


def test_a_backward_that_includes_a_forward_is_said_so(tmp_path):
    recs = bench_records(cases=QUICK[:1])
    for r in recs:
        if r["impl"] == "im2col" and r["direction"] == "backward":
            r["includes_forward"] = True
    f = reports.load([write_jsonl(tmp_path / "b.jsonl", recs)])
    paths = reports.write_report(f, tmp_path / "r", formats=["md"])
    md = paths["md"].read_text()
    assert "backward times of im2col include a forward" in md
    plain = reports.load([write_jsonl(tmp_path / "c.jsonl", bench_records(cases=QUICK[:1]))])
    assert "include a forward" not in reports.write_report(plain, tmp_path / "s", formats=["md"])["md"].read_text()
