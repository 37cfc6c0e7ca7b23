"""The asv suite in-process (params, setup, skips, each benchmark once) and its results reader."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convbench import protocol, registry
from convbench.registry import Implementation, ImplInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "suites"))

from asv_bench import _common as common  # noqa: E402
from asv_bench import avg_pool2d, conv1d, max_pool2d  # noqa: E402
from asv_bench import conv2d as bench  # noqa: E402
from asv_runner.benchmarks.mark import SkipNotImplemented  # noqa: E402
from reports.external import read_asv_results  # noqa: E402

SMALL = common.case_label(common.get_case("lenet5.c3"))
GROUPED = common.case_label(common.get_case("alexnet.conv2"))


OP_CLASSES = {"conv2d": (bench.Conv2dForward, bench.Conv2dBackward),
              "conv1d": (conv1d.Conv1dForward, conv1d.Conv1dBackward),
              "max_pool2d": (max_pool2d.MaxPool2dForward, max_pool2d.MaxPool2dBackward),
              "avg_pool2d": (avg_pool2d.AvgPool2dForward, avg_pool2d.AvgPool2dBackward)}


@pytest.mark.parametrize("op", list(OP_CLASSES))
def test_params_are_every_registered_impl_by_the_asv_subset(op):
    fwd, bwd = OP_CLASSES[op]
    impls, cases = fwd.params
    assert fwd.op == bwd.op == op
    # every shipped family is a parameter (other tests in this process may register more later)
    shipped = [i.info.name for i in registry.registered(op) if type(i).__module__.startswith("impls.")]
    assert [n for n in impls if n in shipped] == shipped
    assert set(impls) <= {i.info.name for i in registry.registered(op)}
    assert {"naive", "stride_tricks", "torch_cpu", "torch_cuda"} <= set(impls)
    assert [c.split()[0] for c in cases] == list(common.BENCH_CASES[op])
    assert bwd.params == fwd.params
    for label in cases:  # the descriptor in the label rebuilds the very call
        c = common.case_from_label(label, op)
        assert c.params == common.get_case(c.id, op).params
    # the first case of each op is the small one naive loops run; the largest is not run by them
    first = common.get_case(common.BENCH_CASES[op][0], op)
    assert common.skip_reason("naive", first, "backward") is None


def test_every_operator_has_an_asv_module_and_the_bases_are_not_benchmarks():
    from asv_runner.discovery import disc_benchmarks

    assert set(common.OPS) == {"conv2d", "conv1d", "max_pool2d", "avg_pool2d"}
    names = {b.name for b in disc_benchmarks(str(ROOT / "suites" / "asv_bench"))}
    assert "max_pool2d.MaxPool2dForward.time_forward" in names
    assert "avg_pool2d.AvgPool2dBackward.time_backward" in names
    assert "conv1d.Conv1dForward.track_err_ratio" in names
    assert not any(n.startswith("_common.") for n in names), sorted(names)


@pytest.mark.parametrize("op", ["conv1d", "max_pool2d", "avg_pool2d"])
def test_each_operator_runs_its_benchmarks_once(op):
    fwd, bwd = OP_CLASSES[op]
    label = fwd.params[1][0]
    b = fwd()
    b.setup("stride_tricks", label)
    b.time_forward("stride_tricks", label)
    assert b.track_gflops("stride_tricks", label) > 0
    assert 0 <= b.track_err_ratio("stride_tricks", label) < 1
    bb = bwd()
    bb.setup("stride_tricks", label)
    bb.time_backward("stride_tricks", label)


def test_forward_benchmarks_run_once_and_report_sane_values():
    b = bench.Conv2dForward()
    b.setup("im2col", SMALL)
    b.time_forward("im2col", SMALL)
    b.peakmem_forward("im2col", SMALL)
    assert b.track_gflops("im2col", SMALL) > 0
    assert 0 <= b.track_err_ratio("im2col", SMALL) < 1
    bb = bench.Conv2dBackward()
    bb.setup("im2col", SMALL)
    bb.time_backward("im2col", SMALL)


def test_naive_runs_small_cases_only():
    bench.Conv2dForward().setup("naive", SMALL)
    with pytest.raises(SkipNotImplemented, match="naive runs only cases of at most 2,000,000 FLOPs"):
        bench.Conv2dForward().setup("naive", GROUPED)


def test_unavailable_impl_is_skipped_with_its_reason():
    if registry.availability(registry.get_impl("torch_cuda")) is None:
        pytest.skip("CUDA is available here")
    with pytest.raises(SkipNotImplemented, match="CUDA not available"):
        bench.Conv2dBackward().setup("torch_cuda", SMALL)


class _Ref(Implementation):
    """The float64 reference cast back, or with a planted error of ``bug`` in every output."""

    def __init__(self, bug: float = 0.0) -> None:
        self.bug = bug

    def forward(self, p, x, w, b):
        from convbench.ops import get_op

        return (get_op("conv2d").reference_forward(p, x, w, b) + self.bug).astype(x.dtype)


@pytest.fixture
def fake(monkeypatch):
    def add(name: str, impl: Implementation, **info) -> str:
        impl.info = ImplInfo(op="conv2d", name=name, **info)
        monkeypatch.setitem(protocol.REGISTRY, ("conv2d", name), impl)
        return name
    return add


def test_unsupported_case_and_direction_skip(fake):
    name = fake("fake_nogroups", _Ref(), features=frozenset({"padding", "bias"}), directions=frozenset({"forward"}))
    with pytest.raises(SkipNotImplemented, match="does not support groups"):
        bench.Conv2dForward().setup(name, GROUPED)
    with pytest.raises(SkipNotImplemented, match="has no backward"):
        bench.Conv2dBackward().setup(name, SMALL)


def test_err_ratio_tracks_a_planted_error(fake):
    good, bad = fake("fake_ref", _Ref()), fake("fake_off", _Ref(bug=1e-2))
    assert common.err_ratio(good, common.get_case("lenet5.c3")) < 1
    assert common.err_ratio(bad, common.get_case("lenet5.c3")) > 1


def test_err_ratio_is_the_number_convbench_check_reports(fake):
    from convbench.verify import run_checks

    name = fake("fake_off_a_little", _Ref(bug=1e-6))
    case = common.get_case("lenet5.c3")
    rec = [r for r in run_checks([protocol.REGISTRY[("conv2d", name)]], [case], checks=["random"], isolate=False)
           if r["direction"] == "forward"][0]
    assert rec["err_ratio"] > 0 and common.err_ratio(name, case) == rec["err_ratio"]


def test_a_forward_that_raises_has_no_err_ratio(fake):
    class Raises(_Ref):
        def forward(self, p, x, w, b):
            raise ValueError("planted bug")

    with pytest.raises(RuntimeError, match="error: forward raised ValueError: planted bug"):
        common.err_ratio(fake("fake_raises", Raises()), common.get_case("lenet5.c3"))


def test_gflops_are_the_bench_timers_median(fake, monkeypatch):
    """One timer: asv's GFLOP/s is what ``convbench bench`` would record, the runner's median."""
    seen = []

    def measured(impl, case, direction, **kw):
        seen.append((impl.info.name, case.id, direction, kw))
        return {"t_median_s": 0.004, "t_min_s": 0.001}

    monkeypatch.setattr(common, "measure_one", measured)
    b = bench.Conv2dForward()
    b.setup("im2col", SMALL)
    flops = common.get_case("lenet5.c3").params.flops("forward")
    assert b.track_gflops("im2col", SMALL) == pytest.approx(flops / 0.004 / 1e9)
    assert seen == [("im2col", "lenet5.c3", "forward", {"budget_s": 1.0, "memory": False})]


def test_the_prepared_call_ends_with_the_device_barrier(fake):
    log = []

    class Synced(_Ref):
        def sync(self):
            log.append("sync")

        def forward(self, p, x, w, b):
            log.append("forward")
            return super().forward(p, x, w, b)

    call = common.prepared_call(fake("fake_synced", Synced()), common.get_case("lenet5.c3"), "forward")
    log.clear()
    call()
    assert log == ["forward", "sync"]


def _conf() -> dict:
    text = (ROOT / "asv.conf.json").read_text()
    return json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))


def test_asv_conf():
    conf = _conf()
    assert conf["environment_type"] == "virtualenv" and conf["repo"] == "." and conf["branches"] == ["main"]
    for op in common.OPS:
        assert (ROOT / conf["benchmark_dir"] / f"{op}.py").is_file()
    for key in ("results_dir", "html_dir", "env_dir"):
        assert conf[key].startswith(".asv/")
    assert ".asv/" in (ROOT / ".gitignore").read_text().split()
    assert any("-c {build_dir}/constraints.txt" in c for c in conf["install_command"])
    assert "+cpu" in (ROOT / "constraints.txt").read_text()
    assert "project_url" not in conf  # asv's default; no page made up for the project


def test_asv_installs_torch_from_pips_sources_first_and_the_cpu_index_only_as_a_fallback():
    cmds = _conf()["install_command"]
    torch_cmds = [c for c in cmds if c.endswith(" torch")]
    assert len(torch_cmds) == 2 and cmds.index(torch_cmds[1]) == cmds.index(torch_cmds[0]) + 1
    local, index = torch_cmds
    assert "return-code=any" in local and "--extra-index-url" not in local  # may fail: the index follows
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in index and "return-code=any" not in index
    assert cmds.index(index) < next(i for i, c in enumerate(cmds) if "{wheel_file}" in c)


def _write_results(tmp_path: Path) -> Path:
    """A results directory in asv 0.6's format: 2 impls x 1 case, one skipped and one failed."""
    label = "'lenet5.c3 n1c6h14w14o16k5s1p0'"
    params = [["'im2col'", "'naive'"], [label]]
    cols = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
            "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]

    def res(values, q25=None, q75=None, samples=None):
        return [values, params, "v", 0, 1.0, None, None, q25, q75, [1, 1], [3, 3], samples]

    m = tmp_path / "results" / "box"
    m.mkdir(parents=True)
    (m / "machine.json").write_text(json.dumps({"machine": "box", "cpu": "Fake CPU", "num_cpu": "2", "version": 1}))
    (m / "abcdef12-virtualenv-py3.11.json").write_text(json.dumps({
        "commit_hash": "abcdef1234567890", "env_name": "virtualenv-py3.11", "date": 1700000000000,
        "params": {"machine": "box", "python": "3.11"}, "result_columns": cols, "version": 2,
        "results": {
            "conv2d.Conv2dForward.time_forward": res([0.002, float("nan")], [0.0019, None], [0.0022, None],
                                                     [[0.002, 0.0018, 0.0025], None]),
            "conv2d.Conv2dBackward.time_backward": res([0.004, None]),
            "conv2d.Conv2dForward.peakmem_forward": res([123456789, float("nan")]),
            "conv2d.Conv2dForward.track_err_ratio": res([0.01, float("nan")]),
            "conv2d.Conv2dForward.track_gflops": res([0.2, float("nan")]),
            "conv2d.Conv2dInstructions.track_instructions": res([1234567.0, float("nan")]),
            "max_pool2d.MaxPool2dForward.time_forward": [
                [0.001], [["'stride_tricks'"], [f"'{POOL_LABEL}'"]], "v", 0, 1.0, None, None, None, None,
                [1], [3], [[0.001]]],
        }}))
    (tmp_path / "results" / "benchmarks.json").write_text("{}")
    return tmp_path / "results"


POOL_LABEL = common.case_label(common.get_case("cifar.k2s2.c32", "max_pool2d"))


def test_read_asv_results_takes_the_op_from_the_module(tmp_path):
    rows = [r for r in read_asv_results(_write_results(tmp_path)) if r["op"] == "max_pool2d"]
    assert len(rows) == 1
    r, p = rows[0], common.get_case("cifar.k2s2.c32", "max_pool2d").params
    assert (r["impl"], r["case"], r["backend"], r["status"]) == ("stride_tricks", "cifar.k2s2.c32", "numpy", "ok")
    assert r["flops"] == p.flops("forward") and r["gflops"] == pytest.approx(p.flops("forward") / 0.001 / 1e9)


def test_read_asv_results(tmp_path):
    rows = {(r["impl"], r["direction"]): r for r in read_asv_results(_write_results(tmp_path))
            if r["op"] == "conv2d"}
    assert set(rows) == {("im2col", "forward"), ("im2col", "backward"), ("naive", "forward"), ("naive", "backward")}
    f = rows["im2col", "forward"]
    p = common.get_case("lenet5.c3").params
    assert f["status"] == "ok" and f["case"] == "lenet5.c3" and f["machine"] == "box"
    assert f["t_median_s"] == 0.002 and f["t_min_s"] == 0.0018 and f["t_iqr_s"] == pytest.approx(0.0003)
    assert f["flops"] == p.flops("forward") and f["gflops"] == pytest.approx(p.flops("forward") / 0.002 / 1e9)
    assert f["peak_mem_bytes"] == 123456789 and f["err_ratio"] == 0.01 and f["commit"] == "abcdef1234567890"
    assert f["instructions"] == 1234567 and rows["naive", "forward"]["instructions"] is None
    assert f["bytes_min"] == p.bytes_min("forward", 4) and f["backend"] == "numpy" and f["source"] == "asv"
    assert rows["im2col", "backward"]["gflops"] == pytest.approx(p.flops("backward") / 0.004 / 1e9)
    assert rows["naive", "forward"]["status"] == "skipped" and rows["naive", "forward"]["gflops"] is None
    assert rows["naive", "backward"]["status"] == "error"


def test_read_asv_results_names_backend_and_device_without_loading_any_implementation(tmp_path):
    """A report reads results only: the backend and device of an asv row come from the result
    itself, not from the implementations (whose import would pull in torch)."""
    results = _write_results(tmp_path)
    doc_path = results / "box" / "abcdef12-virtualenv-py3.11.json"
    doc = json.loads(doc_path.read_text())
    doc["results"]["max_pool2d.MaxPool2dForward.time_forward"][1][0] = ["'torch_cuda'"]
    doc_path.write_text(json.dumps(doc))
    code = ("import sys\n"
            "from reports.external import read_asv_results\n"
            f"rows = read_asv_results({str(results)!r})\n"
            "print(sorted({(r['impl'], r['backend'], r['device']) for r in rows}))\n"
            "print(sorted(m for m in ('impls', 'torch') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == str([("im2col", "numpy", "cpu"), ("naive", "numpy", "cpu"), ("torch_cuda", "torch", "cuda")])
    assert out[1] == "[]"


def test_read_asv_results_rejects_an_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="directory=.*holds no asv results"):
        read_asv_results(tmp_path)


def test_asv_counts_instructions_on_small_cases_and_skips_without_valgrind(monkeypatch):
    from asv_runner.discovery import disc_benchmarks

    names = {b.name for b in disc_benchmarks(str(ROOT / "suites" / "asv_bench"))}
    assert "conv2d.Conv2dInstructions.track_instructions" in names
    impls, cases = bench.Conv2dInstructions.params
    assert [c.split()[0] for c in cases] == list(common.INSTRUCTION_CASES["conv2d"])
    b = bench.Conv2dInstructions()
    with pytest.raises(SkipNotImplemented, match="minutes under valgrind"):
        b.setup("naive", cases[0])
    monkeypatch.setattr(common, "valgrind_missing", lambda: "valgrind is not installed: apt-get install valgrind")
    with pytest.raises(SkipNotImplemented, match="apt-get install valgrind"):
        b.setup("im2col", cases[0])


@pytest.mark.skipif(common.valgrind_missing() is not None, reason="valgrind is not installed")
def test_asv_instruction_count_repeats_within_half_a_percent():
    b = bench.Conv2dInstructions()
    label = bench.Conv2dInstructions.params[1][0]
    b.setup("im2col", label)
    first, second = b.track_instructions("im2col", label), b.track_instructions("im2col", label)
    assert first > 10_000 and abs(first - second) / first < 0.005
