"""The main job (``convbench run``) as the engine runs it, and the command that reports on it.

The engine's orchestration is checked with its collaborators replaced (no check or timing runs):
operators in turn, checks before benchmarks, the baseline first, the budget shared out with what
an operator leaves going to the next, the records written where the report reads them.
"""
from __future__ import annotations

import json
import re
import time
import types

import pytest

from convbench import ParamError, main_job, store
from convbench.cli import main
from convbench.main_job import MainJob, run_main_job

from _fakes import MACHINE, FakeConv, MockClock
from _reports_fakes import bench_records, check_records, write_jsonl


@pytest.fixture
def job_world(monkeypatch):
    """main_job with fake implementations, checks, bench runs and clock; returns what they saw."""
    clock = MockClock()
    seen = {"events": [], "bench": []}
    impls = {op: [FakeConv(clock, n) for n in ("a_impl", "torch_cpu", "z_impl")] for op in ("conv2d", "conv1d")}

    def fake_checks(impls_, cases, **kw):
        seen["events"].append(("check", cases[0].op, [i.info.name for i in impls_]))
        return [{"impl": i.info.name, "status": "failed" if i.info.name == "z_impl" else "passed"} for i in impls_]

    def fake_bench(impls_, cases, *, out, budget, machine, **kw):
        seen["events"].append(("bench", cases[0].op, [i.info.name for i in impls_]))
        seen["bench"].append((budget, out, machine))
        clock.now += 10.0                       # every operator's benchmarks take 10 s
        store.append(out, {"op": cases[0].op, "status": "ok"})
        return []

    monkeypatch.setattr(main_job, "registered", lambda op: impls.get(op, []))
    monkeypatch.setattr(main_job, "op_names", lambda: ["conv2d", "conv1d", "max_pool2d"])
    monkeypatch.setattr(main_job, "run_checks", fake_checks)
    monkeypatch.setattr(main_job, "run_bench", fake_bench)
    monkeypatch.setattr(main_job, "fingerprint", lambda: {"id": "test"})
    monkeypatch.setattr(main_job, "peaks", lambda fp, refresh=False: seen.setdefault("refresh", refresh) and {})
    monkeypatch.setattr(main_job, "machine_record", lambda fp, pk: MACHINE)
    monkeypatch.setattr(main_job, "time", types.SimpleNamespace(perf_counter=clock, strftime=time.strftime,
                                                               localtime=time.localtime))
    return seen


def test_each_operator_is_checked_then_benched_baseline_first_sharing_the_budget(tmp_path, job_world):
    (tmp_path / "bench.jsonl").write_text('{"op": "stale"}\n')      # an earlier run's records
    said, noted = [], []
    job = run_main_job(tmp_path, 90.0, say=said.append, note=noted.append)
    moved = list(tmp_path.glob("bench.*.jsonl"))                       # kept, not added to
    assert len(moved) == 1 and store.read(moved[0]) == [{"op": "stale"}] and str(moved[0]) in noted[0]
    order = ["torch_cpu", "a_impl", "z_impl"]
    assert job_world["events"] == [("check", "conv2d", order), ("bench", "conv2d", order),
                                   ("check", "conv1d", order), ("bench", "conv1d", order)]   # max_pool2d: none
    # 90 s over two operators: 45 s, then the 80 s the first left over the one operator left
    assert [b for b, _, _ in job_world["bench"]] == [45.0, 80.0]
    assert all(out == job.bench_path == tmp_path / "bench.jsonl" and m is MACHINE for _, out, m in job_world["bench"])
    assert job_world["refresh"] is True                               # peaks measured afresh
    assert [r["op"] for r in store.read(job.bench_path)] == ["conv2d", "conv1d"]
    assert json.loads(job.check_path.read_text()) == job.check_records and len(job.check_records) == 6
    assert [r["impl"] for r in job.failed] == ["z_impl", "z_impl"] and job.ops == ["conv2d", "conv1d"]
    assert said[0] == "== conv2d: checking 3 implementations on the edge suite"
    assert re.fullmatch(r"   2 passed, 1 failed, 0 skipped or unsupported; 3 checks in \d+\.\d s.*", said[1]), said[1]
    assert said[2] == "== conv2d: benchmarking the quick suite (budget 45 s)"


def test_no_budget_and_chosen_operators(tmp_path, job_world):
    said = []
    run_main_job(tmp_path, None, ["conv1d"], say=said.append)
    assert [e[1] for e in job_world["events"]] == ["conv1d", "conv1d"] and job_world["bench"][0][0] is None
    assert said[-1] == "== conv1d: benchmarking the quick suite (budget unlimited)"


@pytest.mark.parametrize("kw, match", [({"budget": 0}, "budget must be a positive number"),
                                       ({"ops": ["conv9d"]}, "conv9d")])
def test_bad_arguments_are_named_before_anything_runs(tmp_path, job_world, kw, match):
    with pytest.raises(ParamError, match=match):
        run_main_job(tmp_path, **kw)
    assert job_world["events"] == []


def test_convbench_run_reports_what_the_engine_made(tmp_path, monkeypatch, capsys):
    def fake_job(out, budget, ops, *, mine, executor, say, note):
        assert executor is not None and not executor.remote     # --executor local by default
        assert mine == []
        say("== conv2d: (the engine's lines)")
        bench = write_jsonl(out / "bench.jsonl", bench_records())
        checks = check_records(bad="im2col")
        store.write_json(out / "check.json", checks)
        return MainJob(checks, bench, out / "check.json", MACHINE, ["conv2d"], 0.0)

    monkeypatch.setattr("convbench.cli.run_main_job", fake_job)
    out = tmp_path / "rep"
    out.mkdir()
    assert main(["run", "--out", str(out), "--budget", "5"]) == 1          # a check failed
    text = capsys.readouterr().out
    assert text.startswith("== conv2d: (the engine's lines)") and "im2col" in text
    assert (out / "report.md").exists() and (out / "index.html").exists() and f"report: {out / 'report.md'}" in text


def test_the_users_implementations_come_right_after_the_baseline_and_choose_the_operators(tmp_path, job_world):
    mine = FakeConv(MockClock(), "mine")
    job = run_main_job(tmp_path, 10.0, mine=[mine])
    assert job.ops == ["conv2d"]                                     # the operator of the user's own
    assert job_world["events"][0] == ("check", "conv2d", ["torch_cpu", "mine", "a_impl", "z_impl"])
