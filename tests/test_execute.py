"""The local executor: checks in a pool of isolated processes give the records of a serial run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convbench import ParamError
from convbench.cases import get_suite
from convbench.execute import LocalExecutor, Unit, get_executor, run_unit
from convbench.registry import Implementation, get_impl, load_impl, register
from convbench.verify import run_checks

PLANTED = Path(__file__).parent / "planted_exec"
CASES = get_suite("edge")[:6]
CHECKS = ["shape", "random", "exact", "inputs_unmodified"]
PROVENANCE = ("worker", "machine")


def _bare(records):
    return [{k: v for k, v in r.items() if k not in PROVENANCE} for r in records]


@pytest.fixture(scope="module")
def pool():
    with LocalExecutor(2) as ex:
        yield ex


def test_pooled_checks_equal_a_serial_run_record_for_record(pool):
    impls = [get_impl("im2col"), get_impl("naive"), load_impl(str(PLANTED / "slow.py:conv2d"))]
    serial = run_checks(impls, CASES, checks=CHECKS, jobs=1, progress=False)
    pooled = run_checks(impls, CASES, checks=CHECKS, executor=pool, progress=False)
    assert _bare(pooled) == _bare(serial)  # same records, same order
    assert {r["worker"].rsplit("/", 1)[-1] for r in pooled if r["status"] == "passed"} == {"local-0", "local-1"}
    assert all(r["machine"] == serial[0]["machine"] for r in pooled)
    assert {r["worker"] for r in serial} == {serial[0]["worker"]} and serial[0]["worker"].endswith("/main")


def test_a_failure_found_in_the_pool_is_reported_as_serially(pool):
    # a planted bug of tests/planted: the pool must not hide or move what the checks find
    impl = load_impl(str(Path(__file__).parent / "planted" / "ignored_bias.py:conv2d"))
    serial = run_checks([impl], CASES, checks=CHECKS, jobs=1, progress=False)
    pooled = run_checks([impl], CASES, checks=CHECKS, executor=pool, progress=False)
    assert any(r["status"] == "failed" for r in pooled)
    assert _bare(pooled) == _bare(serial)


def test_an_implementation_that_kills_its_process_is_crashed_with_the_worker():
    impl = load_impl(str(Path(__file__).parent / "planted" / "abort.py:conv2d"))
    recs = run_checks([impl], CASES, checks=["shape", "random"], jobs=2, progress=False)
    crashed = [r for r in recs if r["status"] == "crashed"]
    assert crashed and "SIGABRT" in crashed[0]["message"] and "/local-" in crashed[0]["message"]
    assert crashed[0]["worker"] and "/local-" in crashed[0]["worker"]
    skipped = [r for r in recs if r["status"] == "skipped"]
    assert skipped and all("crashes of" in r["message"] for r in skipped)
    assert len({(r["case"], r["check"], r["direction"]) for r in recs}) == len(recs)  # nothing twice


class _HereOnly(Implementation):
    """Registered in this process only: a fresh worker cannot load it by name."""

    def forward(self, p, x, w, b):
        from tests.planted_exec._conv import conv2d

        return conv2d(x, w, b, p.stride, p.padding)


def test_a_name_registered_here_only_is_checked_here():
    register(_HereOnly(), op="conv2d", name="here_only_conv", replace=True,
             directions=frozenset({"forward"}), features=frozenset({"padding", "bias", "stride"}))
    impl = get_impl("here_only_conv")
    recs = run_checks([impl], CASES, checks=["shape"], jobs=2, progress=False)
    ran = [r for r in recs if r["status"] != "unsupported"]
    assert ran and all(r["status"] == "passed" and r["worker"].endswith("/main") for r in ran), ran[:2]


def test_a_shipped_file_is_loaded_where_the_file_is_not(tmp_path):
    src = tmp_path / "mine.py"
    src.write_text("import numpy as np\n\ndef conv2d(x, w, b=None):\n"
                   "    y = np.einsum('nchw,oc->nohw', x, w[:, :, 0, 0]).astype(x.dtype)\n"
                   "    return y if b is None else y + b[None, :, None, None]\n")
    case = next(c for c in get_suite("edge") if c.params.kh == c.params.kw == 1 and c.params.stride == (1, 1)
                and c.params.padding == (0, 0) and c.params.groups == 1 and c.params.dilation == (1, 1))
    unit = Unit("check", f"{tmp_path / 'gone' / 'mine.py'}:conv2d", "mine_conv2d", "conv2d", case, ("forward",),
                options={"check": "random", "shrink": False}, source=("mine.py", src.read_text()))
    out = run_unit(unit, "w-test")
    assert [r["status"] for r in out["records"]] == ["passed"], out
    assert out["records"][0]["repro"].startswith(f"convbench check --op conv2d --impl {tmp_path / 'gone'}")


def test_a_registered_name_a_worker_lacks_says_to_install_it():
    unit = Unit("check", "no_such_impl", "no_such_impl", "conv2d", CASES[0], ("forward",),
                options={"check": "shape"})
    out = run_unit(unit, "w-test")
    assert "unloadable" in out and "w-test" in out["unloadable"] and "installed on every worker" in out["unloadable"]


@pytest.mark.parametrize("executor, jobs, needle", [
    ("threads", None, "executor must be 'local' or 'dask://HOST:PORT', got 'threads'"),
    ("dask://nohost", None, "got 'dask://nohost'"),
    ("local", 0, "jobs must be an integer >= 1, got 0"),
    ("dask://127.0.0.1:8786", 2, "jobs=2 applies to the local executor"),
])
def test_a_bad_executor_is_a_param_error_naming_it(executor, jobs, needle):
    with pytest.raises(ParamError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        get_executor(executor, jobs)


CLI = [sys.executable, "-m", "convbench.cli"]


@pytest.mark.parametrize("args, needle", [
    (["--executor", "threads"], "executor must be 'local' or 'dask://HOST:PORT'"),
    (["--jobs", "0"], "--jobs must be >= 1, got 0"),
])
def test_cli_bad_executor_is_one_line_exit_2(args, needle):
    res = subprocess.run([*CLI, "check", "--impl", "im2col", "--case", "n1c1h3w3o1k1", *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_check_with_jobs_writes_the_serial_records(tmp_path):
    outs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.json"
        res = subprocess.run([*CLI, "check", "--impl", "stride_tricks", "--suite", "edge", "--jobs", jobs,
                              "--json", str(out)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        outs[jobs] = json.loads(out.read_text())
    assert _bare(outs["2"]) == _bare(outs["1"])
    assert {r["worker"].rsplit("/", 1)[-1] for r in outs["2"]} >= {"local-0", "local-1"}


def test_a_cluster_without_the_dask_package_is_a_usage_error_not_a_bug():
    # an environment without `distributed` once got "internal error: ModuleNotFoundError ... this
    # is a bug in convbench"
    code = ("import sys; sys.modules['distributed'] = None; from convbench.cli import main; "
            "sys.exit(main(['check', '--impl', 'im2col', '--case', 'n1c1h3w3o1k1', '--executor', "
            "'dask://127.0.0.1:9']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "dask://127.0.0.1:9" in line and "distributed" in line and "bug" not in line, line


@pytest.mark.skipif((len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1) < 2,
                    reason="one core: torch's default is one thread already")
def test_a_torch_check_after_a_numpy_one_runs_on_one_thread():
    # a pool or Dask process that checked a NumPy implementation first limited the threads before
    # torch was imported: torch_cpu's checks then ran with torch's default threads, and their
    # errors differed in the last bits from a local run's (issue seen on a Dask worker)
    pytest.importorskip("torch")
    code = ("import sys; from convbench.cases import get_suite; from convbench.execute import Unit, run_unit; "
            "c = get_suite('edge')[0]; "
            "u = lambda n: Unit('check', n, n, 'conv2d', c, ('forward',), options={'check': 'random', 'shrink': False}); "
            "run_unit(u('im2col'), 'w'); assert 'torch' not in sys.modules; "
            "out = run_unit(u('torch_cpu'), 'w'); import torch; "
            "print(out['records'][0]['status'], torch.get_num_threads())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["passed", "1"], res.stdout
