"""The bench runner with fake implementations and a mock clock: records, statuses, resume, threads."""
from __future__ import annotations

import re
import socket
import textwrap

import numpy as np
import pytest

from convbench import store
from convbench.cases import parse_descriptor
from convbench.measure import bench
from convbench.measure.bench import run_bench
from convbench.measure.measurement import measure_one
from convbench.measure.summary import format_summary
from convbench.measure.threads import park_blas_threads, thread_limits
from convbench.registry import load_impl
from impls import _crossover

from _fakes import MACHINE, FakeConv, MockClock
import convbench.measure.bench as bench_module

@pytest.fixture(autouse=True)
def _fakes_return_zeros(monkeypatch):
    """The fakes return zeros, which the check after timing rightly fails: it is off here and
    tested on implementations of its own (tests/test_aftercheck.py)."""
    monkeypatch.setattr(bench_module, "AFTER_CHECK", False)


DESIGN_FIELDS = ("schema run_id time machine op direction impl backend device case params dtype status reason "
                 "t_median_s t_min_s t_iqr_s samples flops gflops pct_peak bytes_min peak_mem_bytes "
                 "workspace_bytes").split()
CASES = ["n2c4h8w8o4k3p1", "n1c6h9w7o4kh3kw2s2g2nb"]


def _run(impls, cases=CASES, clock=None, **kw):
    kw.setdefault("out", None)
    kw.setdefault("budget", None)
    kw.setdefault("threads", None)
    kw.setdefault("resume", False)
    return run_bench(impls, [parse_descriptor(c) for c in cases], progress=False, machine=MACHINE,
                     clock=clock, **kw)


def test_one_record_per_impl_case_direction_with_every_design_field(tmp_path):
    clock = MockClock()
    a, b = FakeConv(clock, "fake_a", rate=1e9), FakeConv(clock, "fake_b", rate=2e9, overhead=1e-5)
    out = tmp_path / "r.jsonl"
    recs = _run([a, b], clock=clock, out=out)
    assert len(recs) == 2 * 2 * 2
    assert {(r["impl"], r["case"], r["direction"]) for r in recs} == {
        (i, parse_descriptor(c).id, d) for i in ("fake_a", "fake_b") for c in CASES for d in ("forward", "backward")}
    for r in recs:
        missing = [f for f in DESIGN_FIELDS if f not in r]
        assert not missing, missing
        assert r["schema"] == store.SCHEMA_VERSION and r["status"] == "ok" and r["machine"] == MACHINE
        assert len(r["samples"]) >= 1 and r["t_min_s"] <= r["t_median_s"]
    assert store.read(out) == recs  # appended as made, read back whole
    assert len({r["run_id"] for r in recs}) == 1


def test_records_made_here_carry_this_process_as_their_worker():
    """As check records do (and a cluster's bench records name their worker): ``HOST/main``."""
    clock = MockClock()
    recs = _run([FakeConv(clock, "fake_w")], clock=clock, cases=CASES[:1], directions=("forward",))
    assert recs and {r["worker"] for r in recs} == {f"{socket.gethostname()}/main"}


def test_statistics_and_derived_figures_follow_the_mock_clock():
    clock = MockClock()
    f = FakeConv(clock, "fake_a", rate=1e9, overhead=1e-4)
    r = _run([f], cases=CASES[:1], clock=clock, directions=("forward",))[0]
    p = parse_descriptor(CASES[0]).params
    t = 1e-4 + p.flops("forward") / 1e9
    assert r["t_median_s"] == pytest.approx(t)
    assert r["t_iqr_s"] == pytest.approx(0.0, abs=1e-12)
    assert r["flops"] == p.flops("forward")
    assert r["gflops"] == pytest.approx(p.flops("forward") / t / 1e9)
    assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / MACHINE["peak_gflops"]["float32"])
    assert r["bytes_min"] == p.bytes_min("forward", 4)
    assert r["intensity"] == pytest.approx(r["flops"] / r["bytes_min"])
    assert r["peak_mem_bytes"] >= int(np.prod(p.shapes()["y"])) * 4  # the zeros it returns


def test_backward_times_backward_only():
    clock = MockClock()
    f = FakeConv(clock, "fake_a")
    _run([f], cases=CASES[:1], clock=clock, directions=("backward",))
    assert f.log and all(d == "backward" for d, _ in f.log)


def test_an_exception_is_an_error_record_and_the_run_goes_on():
    clock = MockClock()

    class Boom(FakeConv):
        def forward(self, p, x, w, b):
            raise ValueError("planted bug: shapes do not match")

    recs = _run([Boom(clock, "fake_boom"), FakeConv(clock, "fake_ok")], clock=clock)
    boom = [r for r in recs if r["impl"] == "fake_boom"]
    assert {r["status"] for r in boom if r["direction"] == "forward"} == {"error"}
    assert all("ValueError: planted bug" in r["reason"] for r in boom if r["direction"] == "forward")
    assert {r["status"] for r in boom if r["direction"] == "backward"} == {"ok"}
    assert {r["status"] for r in recs if r["impl"] == "fake_ok"} == {"ok"}


def test_unsupported_and_unavailable_are_skipped_with_the_reason():
    clock = MockClock()

    class Gone(FakeConv):
        def availability(self):
            return "needs a quantum computer"

    no_groups = FakeConv(clock, "fake_nogroups", features=frozenset({"padding", "bias", "stride", "no_bias"}))
    fwd_only = FakeConv(clock, "fake_fwd", directions=frozenset({"forward"}))
    recs = _run([Gone(clock, "fake_gone"), no_groups, fwd_only], clock=clock)
    by = {(r["impl"], r["case"], r["direction"]): r for r in recs}
    gone = [r for r in recs if r["impl"] == "fake_gone"]
    assert {(r["case"], r["direction"]) for r in gone} == {
        (parse_descriptor(c).id, d) for c in CASES for d in ("forward", "backward")}
    assert all(r["status"] == "skipped" and r["reason"] == "needs a quantum computer" for r in gone)
    g = by[("fake_nogroups", parse_descriptor(CASES[1]).id, "forward")]
    assert g["status"] == "skipped" and "groups" in g["reason"]
    assert by[("fake_nogroups", parse_descriptor(CASES[0]).id, "forward")]["status"] == "ok"
    assert by[("fake_fwd", parse_descriptor(CASES[0]).id, "backward")]["status"] == "skipped"


def test_values_are_never_checked():
    clock = MockClock()

    class Garbage(FakeConv):
        def forward(self, p, x, w, b):
            self._cost(p, "forward")
            return np.full(p.shapes()["y"], np.nan, x.dtype)

    recs = _run([Garbage(clock, "fake_garbage")], clock=clock, directions=("forward",))
    assert len(recs) == len(CASES)
    assert all(r["status"] == "ok" for r in recs)  # checking is the verification layer's job


def test_resume_skips_what_is_done_and_retries_timeouts(tmp_path):
    clock = MockClock()
    out = tmp_path / "r.jsonl"
    f = FakeConv(clock, "fake_a")
    first = _run([f], clock=clock, out=out)
    # a timeout left by an earlier run is retried, not counted as done
    store.append(out, dict(first[0], case="n1c2h5w5o2k3s1p0", descriptor="n1c2h5w5o2k3s1p0", status="timeout"))
    n_calls = len(f.log)
    again = _run([f], cases=CASES + ["n1c2h5w5o2k3"], clock=clock, out=out, resume=True)
    assert len(f.log) > n_calls
    assert {(r["case"], r["direction"]) for r in again} == {("n1c2h5w5o2k3s1p0", "forward"),
                                                            ("n1c2h5w5o2k3s1p0", "backward")}
    oks = [store.record_key(r) for r in store.read(out) if r["status"] == "ok"]
    assert len(oks) == len(set(oks)) == 2 * 3


def test_choice_and_workspace_are_asked_of_the_implementation():
    clock = MockClock()

    class Auto(FakeConv):
        def choice(self, p, dtype, direction):
            return "winograd" if p.kh == 3 else "gemm"

        def workspace_bytes(self, p, dtype, direction):
            oh, ow = p.out_hw
            return p.n * oh * ow * p.c * p.kh * p.kw * np.dtype(dtype).itemsize

    recs = _run([Auto(clock, "fake_auto"), FakeConv(clock, "fake_plain")], cases=CASES[:1], clock=clock,
                directions=("forward",))
    auto, plain = recs
    p = parse_descriptor(CASES[0]).params
    assert auto["choice"] == "winograd" and plain["choice"] is None
    assert auto["workspace_bytes"] == p.n * 8 * 8 * 4 * 9 * 4 and plain["workspace_bytes"] is None


def test_threads_are_set_recorded_and_restored():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    clock = MockClock()
    recs = _run([FakeConv(clock, "fake_a")], cases=CASES[:1], clock=clock, threads=1, directions=("forward",))
    th = recs[0]["threads"]
    assert th["requested"] == 1 and th["torch"] == 1 and th["blas"] == 1
    assert torch.get_num_threads() == before
    with thread_limits(None) as info:
        assert info["torch"] == before


def test_format_summary_lists_every_record():
    clock = MockClock()

    class Boom(FakeConv):
        def forward(self, p, x, w, b):
            raise RuntimeError("kaput")

    recs = _run([FakeConv(clock, "fake_a"), Boom(clock, "fake_boom")], cases=CASES[:1], clock=clock)
    text = format_summary(recs)
    assert "fake_a" in text and "error: RuntimeError: kaput" in text
    assert text.splitlines()[-1] == "4 records: 3 ok, 1 not ok"  # boom's backward works
    assert format_summary([]) == "no bench records"


def test_format_summary_marks_times_taken_on_a_busy_machine():
    clock = MockClock()
    recs = _run([FakeConv(clock, "fake_a")], cases=CASES[:1], clock=clock)
    quiet = [dict(r, others_pct=3.0, steal_pct=0.5) for r in recs]
    assert "!" not in format_summary(quiet)
    busy = [dict(quiet[0], others_pct=48.0), dict(quiet[1], steal_pct=9.0)]
    text = format_summary(busy)
    lines = text.splitlines()
    assert all(re.search(r"\d (ms|us|s)! ", ln) for ln in lines[2:4])    # the median, marked
    assert "!: 2 record(s) timed while other processes or the hypervisor took more than 15 %" in text
    assert "up to 48 %" in text and lines[-1].startswith("2 records:")


def test_bad_direction_is_named():
    from convbench import ParamError

    with pytest.raises(ParamError, match="directions"):
        _run([FakeConv(MockClock(), "fake_a")], directions=("sideways",))


ISOLATED = textwrap.dedent('''
    import os, time
    import numpy as np
    from convbench.registry import Implementation, register

    class Crashy(Implementation):
        def forward(self, p, x, w, b):
            os.abort()
        def backward(self, p, dy, x, w):
            s = p.shapes()
            return np.zeros(s["grad_input"], x.dtype), np.zeros(s["grad_weight"], x.dtype), np.zeros(s["grad_bias"], x.dtype)

    class Hangs(Implementation):
        def forward(self, p, x, w, b):
            time.sleep(600)

    crashy = Crashy()
    register(crashy, op="conv2d", name="fake_crashy", replace=True)
    hangs = Hangs()
    register(hangs, op="conv2d", name="fake_hangs", replace=True, directions=("forward",))
''')


def test_isolated_implementations_crash_and_hang_into_statuses(tmp_path, monkeypatch):
    f = tmp_path / "fake_isolated.py"
    f.write_text(ISOLATED)
    crashy, hangs = load_impl(f"{f}:crashy"), load_impl(f"{f}:hangs")
    assert crashy.info.isolate and hangs.info.isolate
    monkeypatch.setattr(bench, "MAX_ITEM_S", 0.3)
    recs = run_bench([crashy, hangs], [parse_descriptor(CASES[0])], out=None, budget=None, threads=None,
                     resume=False, progress=False, machine=MACHINE, timeout_grace=1.0)
    by = {(r["impl"], r["direction"]): r for r in recs}
    assert by[("fake_crashy", "forward")]["status"] == "crashed"
    assert "SIGABRT" in by[("fake_crashy", "forward")]["reason"]
    assert by[("fake_crashy", "backward")]["status"] == "ok"  # a fresh worker after the crash
    assert by[("fake_hangs", "forward")]["status"] == "timeout"
    assert by[("fake_hangs", "backward")]["status"] == "skipped"


def test_measure_one_times_a_real_implementation_once_prepared():
    from convbench.registry import get_impl

    r = measure_one(get_impl("im2col"), parse_descriptor("n1c2h6w6o2k3"), "forward", budget_s=0.2)
    assert r["t_median_s"] > 0 and r["samples"] and r["mem_method"] == "tracemalloc"


def test_memory_call_is_skipped_when_a_traced_call_would_overrun():
    clock = MockClock()
    f = FakeConv(clock, "fake_a", overhead=0.1)  # 100 ms a call
    case = parse_descriptor(CASES[0])
    r = measure_one(f, case, "forward", budget_s=1.0, mem_slowdown=20.0, clock=clock)
    assert r["peak_mem_bytes"] is None and r["mem_method"].startswith("not measured")
    r = measure_one(f, case, "forward", budget_s=10.0, mem_slowdown=2.0, clock=clock)
    assert r["peak_mem_bytes"] is not None and r["mem_s"] == pytest.approx(0.1, rel=0.01)


def test_memory_is_measured_on_every_case_when_traced_calls_fit():
    clock = MockClock()

    class SlowUnderTrace(FakeConv):
        def forward(self, p, x, w, b):
            import tracemalloc

            if tracemalloc.is_tracing():
                self.clock.now += 0.05  # traced calls cost 5x the timed ones
            return super().forward(p, x, w, b)

    f = SlowUnderTrace(clock, "fake_traced", overhead=0.01)
    recs = _run([f], clock=clock, budget=100.0, directions=("forward",))
    assert recs[0]["mem_method"] == "tracemalloc"
    assert all(r["peak_mem_bytes"] is not None for r in recs)


def test_resume_retries_items_skipped_for_time_but_not_unsupported_ones(tmp_path):
    """A budget skip is that run's decision: a resumed run (with its own budget) decides again;
    an unsupported case stays done."""
    clock = MockClock()
    out = tmp_path / "r.jsonl"
    f = FakeConv(clock, "fake_a")
    first = _run([f], clock=clock, out=out, directions=("forward",))
    base = first[0]
    store.append(out, dict(base, case="c.est", descriptor="n1c2h5w5o2k3", status="skipped",
                           reason="est. 41 min > budget 10 s", budget_skip=True))
    store.append(out, dict(base, case="c.old", descriptor="n1c2h5w5o2k3", status="skipped",
                           reason="budget spent (0 us left for this case)"))   # an older record: no flag
    store.append(out, dict(base, case="c.uns", descriptor="n1c2h5w5o2k3", status="skipped",
                           reason="no groups"))
    done = store.done_keys(store.read(out))
    cases = {k[2] for k in done}
    assert "c.uns" in cases and "c.est" not in cases and "c.old" not in cases
    assert store.budget_skipped({"status": "skipped", "reason": "est. 3 s > budget 1 s"})
    assert not store.budget_skipped({"status": "ok", "reason": "est. 3 s > budget 1 s"})


def test_blas_threads_are_parked_before_each_measurement(monkeypatch):
    """measure_one parks OpenBLAS's spinning workers first; BLAS works and keeps its thread count
    after being parked (the workers start again on the next threaded call)."""
    from threadpoolctl import threadpool_info

    from convbench.measure import measurement

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i.get("internal_api") == "openblas"}
    n = park_blas_threads()
    assert n == len(before)
    a = np.random.default_rng(0).standard_normal((300, 300))
    assert np.allclose(a @ np.eye(300), a)
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i.get("internal_api") == "openblas"}
    assert after == before

    calls = []
    monkeypatch.setattr(measurement, "park_blas_threads", lambda: calls.append(1) or 0)
    clock = MockClock()
    _run([FakeConv(clock, "fake_park")], clock=clock, directions=("forward",), cases=CASES[:1])
    assert calls, "measure_one did not park the BLAS threads"


def test_every_ok_time_goes_to_the_machines_crossover_file(tmp_path, monkeypatch):
    """What ``fastest`` chooses from: a slim line per ok record, errors left out."""
    clock = MockClock()
    cross = tmp_path / "cross.jsonl"
    monkeypatch.setenv("CONVBENCH_CROSSOVER", str(cross))

    class Boom(FakeConv):
        def forward(self, p, x, w, b):
            raise ValueError("planted bug")

    recs = _run([FakeConv(clock, "fake_ok"), Boom(clock, "fake_boom")], clock=clock)
    lines = store.read(cross)
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(lines) == len(ok) < len(recs)
    assert [(x["impl"], x["case"], x["direction"], x["t_median_s"]) for x in lines] == \
        [(r["impl"], r["case"], r["direction"], r["t_median_s"]) for r in ok]
    assert set(lines[0]) <= set(_crossover.CROSSOVER_FIELDS) and "samples" not in lines[0]


def test_crossover_file_off_or_unwritable_never_fails_the_run(tmp_path, monkeypatch):
    clock = MockClock()
    monkeypatch.setenv("CONVBENCH_CROSSOVER", "off")
    assert _crossover.crossover_path("any") is None
    assert all(r["status"] == "ok" for r in _run([FakeConv(clock, "fake_ok")], clock=clock))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CONVBENCH_CROSSOVER", str(blocker / "cross.jsonl"))   # parent is a file
    with pytest.warns(RuntimeWarning, match="cannot add to the crossover file") as warned:
        recs = _run([FakeConv(clock, "fake_ok")], clock=clock)
    assert len(warned) == 1 and all(r["status"] == "ok" for r in recs)


def test_crossover_file_defaults_to_one_per_machine_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVBENCH_CROSSOVER", raising=False)
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    assert _crossover.crossover_path("abc123") == tmp_path / "crossover-abc123.jsonl"


def test_a_cuda_implementation_is_held_to_the_gpu_peak_not_the_cpu_one():
    """% of peak divides by the peak of the device the implementation ran on: a GPU's GFLOP/s
    over the CPU's GEMM peak read as hundreds of % (seen on an H200); no GPU peak, no figure."""
    import dataclasses

    clock = MockClock()
    f = FakeConv(clock, "fake_gpu", rate=1e9, overhead=1e-4)
    f.info = dataclasses.replace(f.info, device="cuda")
    with_gpu = dict(MACHINE, gpu="Fake GPU", gpu_peak_gflops={"float32": 40.0, "float64": 20.0})
    r = run_bench([f], [parse_descriptor(CASES[0])], progress=False, machine=with_gpu, clock=clock, out=None,
                  budget=None, threads=None, resume=False, directions=("forward",))[0]
    assert r["status"] == "ok" and r["pct_peak"] == pytest.approx(100 * r["gflops"] / 40.0)
    r = run_bench([f], [parse_descriptor(CASES[0])], progress=False, machine=MACHINE, clock=clock, out=None,
                  budget=None, threads=None, resume=False, directions=("forward",))[0]
    assert r["status"] == "ok" and r["gflops"] > 0 and r["pct_peak"] is None


@pytest.mark.parametrize("spec", ["tests/seed_layers/cs231n_layers.py:conv_forward_naive",
                                  "tests/seed_layers/course_layers.py:Conv1D",
                                  "tests/seed_layers/torch_convs.py:conv2d_unfold"])
def test_an_adapted_backward_that_runs_the_forward_is_marked_in_its_records(spec):
    """A layer's or a CS231n pair's backward runs its forward first: its backward records say so
    (the report then tells readers to compare with forward + backward); shipped ones do not."""
    impl = load_impl(spec)
    assert impl.info.backward_includes_forward
    case = parse_descriptor("n1c2h6w6o2k3") if impl.info.op == "conv2d" else parse_descriptor("n1c2l9o2k3", op="conv1d")
    recs = run_bench([impl], [case], progress=False, machine=MACHINE, out=None, budget=None, threads=None,
                     resume=False)
    assert [(r["direction"], r["status"], r.get("includes_forward")) for r in recs] == [
        ("forward", "ok", None), ("backward", "ok", True)]
    text = format_summary(recs)
    assert " bwd* " in text and "time includes it" in text and " fwd* " not in text
    from convbench.registry import get_impl

    assert not get_impl("im2col").info.backward_includes_forward


class _Listening(FakeConv):
    """A fake that declares the record-listener hook: what it was told lands in ``heard``."""

    heard: list = []
    machines: list = []

    @staticmethod
    def bench_listener(machine):
        _Listening.machines.append(machine)
        return _Listening.heard.append


def test_an_implementation_declaring_the_hook_hears_every_record_and_runs_after_the_others(monkeypatch):
    monkeypatch.setattr(_Listening, "heard", [])
    monkeypatch.setattr(_Listening, "machines", [])
    clock = MockClock()

    class Boom(FakeConv):
        def forward(self, p, x, w, b):
            raise ValueError("planted bug")

    recs = _run([_Listening(clock, "fake_listening"), FakeConv(clock, "fake_a"), Boom(clock, "fake_boom")],
                clock=clock, directions=("forward",))
    assert _Listening.machines == [MACHINE]                      # asked once for the run
    assert _Listening.heard == recs and {r["status"] for r in recs} == {"ok", "error"}
    # on each case the listening implementation comes last, whatever the order given
    assert [r["impl"] for r in recs] == ["fake_a", "fake_boom", "fake_listening"] * len(CASES)


def test_a_listener_that_raises_is_dropped_with_one_warning_and_the_run_goes_on(tmp_path):
    clock = MockClock()
    told = []

    class Faulty(FakeConv):
        def bench_listener(self, machine):
            def hear(rec):
                told.append(rec)
                raise RuntimeError("planted listener bug")
            return hear

    class FaultyHook(FakeConv):
        def bench_listener(self, machine):
            raise KeyError("planted hook bug")

    out = tmp_path / "b.jsonl"
    with pytest.warns(RuntimeWarning) as warned:
        recs = _run([Faulty(clock, "fake_faulty"), FaultyHook(clock, "fake_hook"), FakeConv(clock, "fake_ok")],
                    clock=clock, out=out)
    texts = sorted(str(w.message) for w in warned if "planted" in str(w.message))
    assert len(texts) == 2 and "bench_listener of fake_hook raised KeyError" in texts[0]
    assert "record listener of fake_faulty raised RuntimeError" in texts[1]
    assert len(told) == 1 and len(recs) == 3 * 2 * len(CASES) and all(r["status"] == "ok" for r in recs)
    assert len(store.read(out)) == len(recs)


SLOW_IN_ONE_PROCESS = textwrap.dedent('''
    import os, time
    from pathlib import Path
    import numpy as np

    # the second process to load this file (the first is the test's own, the second the bench's
    # first worker) runs slow, as a process of a VM in its slow state can all its life; others fast
    i = 0
    while True:
        try:
            os.close(os.open(Path(__file__).with_name(f"loaded.{i}"), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            i += 1
    SLOW = i == 1

    def conv2d(x, w, b=None, stride=1, padding=0):
        if SLOW:
            time.sleep(0.004)
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        return np.zeros((n, o, h - kh + 1, wd - kw + 1), x.dtype)
''')


def test_an_isolated_item_is_timed_in_two_processes_and_the_fast_one_gives_the_floor(tmp_path):
    # one process only: a process that ran in the slow state for its whole life gave the item's
    # floor, and `compare` of two separate runs read the machine's state as the code's change
    f = tmp_path / "slow_once.py"
    f.write_text(SLOW_IN_ONE_PROCESS)
    impl = load_impl(f"{f}:conv2d")
    recs = run_bench([impl], [parse_descriptor("n1c1h4w4o1k3")], machine=MACHINE, progress=False)
    fwd = next(r for r in recs if r["direction"] == "forward")
    assert fwd["status"] == "ok" and fwd["processes"] == 2, fwd
    assert fwd["t_min_s"] < 0.002 and max(fwd["samples"]) > 0.004, (fwd["t_min_s"], max(fwd["samples"]))
