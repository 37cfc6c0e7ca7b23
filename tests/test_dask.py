"""The Dask executor against a real cluster: a `dask scheduler` and `dask worker` processes on
127.0.0.1 (loopback only), started once for the module (once per test process that runs its
tests, under xdist) and stopped after it. The test that kills a worker adds one of its own to the
cluster and kills that one."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from convbench import main_job
from convbench.cases import get_suite
from convbench.cli import main
from convbench.execute import Unit, get_executor
from convbench.measure.machine import here_worker, peaks
from convbench.registry import get_impl, load_impl, registered
from convbench.verify import run_checks

pytest.importorskip("distributed")

DASK = str(Path(sys.executable).parent / "dask")
PLANTED = Path(__file__).parent / "planted_exec"
CASES = get_suite("edge")[:6]
CHECKS = ["shape", "random", "exact"]
CLI = [sys.executable, "-m", "convbench.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and named workers (one thread each, no nanny: a killed worker stays dead)."""

    def __init__(self, tmp: Path, names: tuple[str, ...], env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.address = f"dask://127.0.0.1:{self.port}"
        self.log = open(tmp / "cluster.log", "w")
        self.env = dict(os.environ, **(env or {}))
        self.scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                           "--no-dashboard"], stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        self.workers: dict[str, subprocess.Popen] = {}
        for n in names:
            self.add_worker(n)
        from distributed import Client  # deferred: importorskip above decides whether it is there

        self.client = Client(f"tcp://127.0.0.1:{self.port}", timeout=60)
        self.client.wait_for_workers(len(names), timeout=120)

    def add_worker(self, name: str) -> subprocess.Popen:
        self.workers[name] = subprocess.Popen(
            [DASK, "worker", f"tcp://127.0.0.1:{self.port}", "--name", name, "--nthreads", "1", "--no-nanny",
             "--no-dashboard", "--host", "127.0.0.1"], stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        return self.workers[name]

    def names(self) -> set[str]:
        """The names of the workers the scheduler has now."""
        return {str(w["name"]) for w in self.client.scheduler_info(n_workers=-1)["workers"].values()}

    def close(self) -> None:
        self.client.close()
        # the workers first, while their scheduler still answers: a worker closing as its scheduler
        # goes away can wait out a connection timeout before it exits
        for group in (list(self.workers.values()), [self.scheduler]):
            for p in group:
                if p.poll() is None:
                    p.terminate()
            for p in group:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Workers w1 and w2 on one scheduler, shared by the module's tests."""
    # a unit whose worker dies runs once more elsewhere, then it is crashed (as the executor does)
    c = Cluster(tmp_path_factory.mktemp("cluster"), ("w1", "w2"), env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    try:
        yield c
    finally:
        c.close()


def _bare(records):
    return [{k: v for k, v in r.items() if k not in ("worker", "machine")} for r in records]


def _slow():
    return load_impl(str(PLANTED / "slow.py:conv2d"))


def test_checks_through_a_cluster_equal_a_local_run(cluster, tmp_path, capsys):
    impls = [get_impl("im2col"), _slow()]
    local = run_checks(impls, CASES, checks=CHECKS, jobs=1, progress=False)
    remote = run_checks(impls, CASES, checks=CHECKS, executor=cluster.address, progress=False)
    assert _bare(remote) == _bare(local)
    assert {r["worker"] for r in remote if r["status"] == "passed"} == {"w1", "w2"}
    assert all(r["machine"] == local[0]["machine"] for r in remote)

    out = tmp_path / "check.json"
    assert main(["check", "--impl", "stride_tricks", "--case", "n2c3h7w7o4k3p1", "--executor", cluster.address,
                 "--json", str(out)]) == 0, capsys.readouterr()
    recs = json.loads(out.read_text())
    assert recs and {r["status"] for r in recs} == {"passed"} and {r["worker"] for r in recs} <= {"w1", "w2"}


def test_benchmarks_through_a_cluster_carry_their_machine_and_resume_here(cluster, tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    rc = main(["bench", "--impl", "im2col", "--impl", "torch_cpu", "--case", "n1c4h8w8o4k3", "--executor",
               cluster.address, "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 4 and {r["status"] for r in recs} == {"ok"}, [(r["status"], r.get("reason")) for r in recs]
    assert {r["worker"] for r in recs} <= {"w1", "w2"} and len({r["run_id"] for r in recs}) == 1
    assert all(r["machine"]["id"] and r["machine"]["peak_gflops"] and r["t_median_s"] > 0 for r in recs)
    # --resume reads the cluster's file like a local one: nothing is measured again
    assert main(["bench", "--impl", "im2col", "--case", "n1c4h8w8o4k3", "--out", str(out), "--resume"]) == 0
    assert len(out.read_text().splitlines()) == 4


def test_closing_a_run_early_cancels_what_the_cluster_has_not_run(cluster):
    """What Ctrl-C does: the units the cluster has not finished are cancelled."""
    slow = _slow()
    units = [Unit("check", slow.info.spec, slow.info.name, "conv2d", CASES[0], ("forward",), index=i,
                  timeout=60.0, options={"check": "random", "shrink": False}) for i in range(40)]
    with get_executor(cluster.address) as ex:
        run = ex.run(units)
        first = next(run)
        run.close()
        assert first.status == "ok"
        time.sleep(1.0)  # far less than the 39 units left would take (0.1 s a call, 2 workers)

        def convbench_tasks(dask_scheduler):  # nested: sent by value, the scheduler cannot import tests
            return [str(k) for k, ts in dask_scheduler.tasks.items()
                    if str(k).startswith("convbench-") and ts.state not in ("memory", "released", "forgotten")]

        left = cluster.client.run_on_scheduler(convbench_tasks)
        assert not left, f"{len(left)} units still on the cluster: {left[:3]}"


def test_run_through_a_cluster_checks_and_benches_there(cluster, tmp_path, monkeypatch, capsys):
    """``convbench run --executor dask://...``: the checks and the benchmarks run on the cluster's
    workers and the report is made from their records (two cases a suite, to keep it short)."""
    monkeypatch.setattr(main_job, "get_suite", lambda name, op: get_suite(name, op)[:2])
    # the shipped implementations: an object another test registered in this process is not on the workers
    monkeypatch.setattr(main_job, "registered",
                        lambda op: [m for m in registered(op) if type(m).__module__.split(".")[0] == "impls"])
    # this machine's peaks go on no record here (each worker measures its own): not measured again
    monkeypatch.setattr(main_job, "peaks", lambda fp, refresh=False: peaks(fp))
    out = tmp_path / "run"
    rc = main(["run", "--op", "avg_pool2d", "--executor", cluster.address, "--budget", "3", "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text
    checks = json.loads((out / "check.json").read_text())
    assert checks and {r["status"] for r in checks} <= {"passed", "unsupported", "skipped"}
    # on the cluster's workers (an implementation registered only here is checked here)
    workers = {r["worker"] for r in checks if r["status"] == "passed"}
    assert workers & {"w1", "w2"} and workers <= {"w1", "w2", here_worker()}, workers
    bench = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    ran = [r for r in bench if r["status"] != "skipped"]
    assert ran and {r["status"] for r in ran} == {"ok"}, [(r["impl"], r["status"], r.get("reason")) for r in ran]
    assert {r["worker"] for r in ran} <= {"w1", "w2"} and all(r["machine"]["id"] for r in ran)
    assert (out / "report.md").read_text().count("avg_pool2d") >= 1


def test_a_worker_killed_mid_run_loses_no_unit(cluster):
    impls = [_slow()]
    local = run_checks(impls, CASES, checks=CHECKS, jobs=1, progress=False)
    victim = cluster.add_worker("victim")
    cluster.client.wait_for_workers(3, timeout=120)
    killed: list[str] = []

    def kill_when_busy() -> None:
        # SIGKILL the added worker once it runs a unit, inside it (each call sleeps 0.1 s)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            names = {a: str(w["name"]) for a, w in cluster.client.scheduler_info(n_workers=-1)["workers"].items()}
            for addr, keys in cluster.client.processing().items():
                if names.get(addr) == "victim" and any(str(k).startswith("convbench-check") for k in keys):
                    time.sleep(0.05)
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append("victim")
                    return
            time.sleep(0.02)

    t = threading.Thread(target=kill_when_busy)
    t.start()
    try:
        remote = run_checks(impls, CASES, checks=CHECKS, executor=cluster.address, progress=False)
    finally:
        t.join()
    assert killed, "no worker was killed: the test did not test anything"
    assert victim.wait(10) == -signal.SIGKILL
    assert _bare(remote) == _bare(local)  # every unit, once, with the local run's result
    assert "crashed" not in {r["status"] for r in remote}  # the lost units ran again on the other workers


def test_a_unit_whose_worker_dies_runs_again_once_then_is_crashed_naming_the_worker(tmp_path):
    # on a scheduler left at its defaults (allowed-failures 3) a unit once ran on a third worker
    # after two had died under it (and on a fourth after three)
    sleepy = tmp_path / "sleepy.py"
    sleepy.write_text((PLANTED / "slow.py").read_text().replace("time.sleep(0.1)", "time.sleep(0.5)")
                      .replace("os.path.dirname(__file__)", repr(str(PLANTED))))
    impl = load_impl(f"{sleepy}:conv2d")
    unit = Unit("check", impl.info.spec, impl.info.name, "conv2d", CASES[0], ("forward",), index=0,
                timeout=60.0, options={"check": "random", "shrink": False})
    c = Cluster(tmp_path, ("k1", "k2", "k3"), env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3"})
    killed: list[str] = []

    def kill_whoever_runs_it() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(killed) < 2:
            names = {a: str(w["name"]) for a, w in c.client.scheduler_info(n_workers=-1)["workers"].items()}
            for addr, keys in c.client.processing().items():
                name = names.get(addr)
                if name in c.workers and name not in killed and any(str(k).startswith("convbench-check") for k in keys):
                    time.sleep(0.2)
                    os.kill(c.workers[name].pid, signal.SIGKILL)
                    killed.append(name)
                    break
            time.sleep(0.02)

    try:
        t = threading.Thread(target=kill_whoever_runs_it)
        t.start()
        try:
            with get_executor(c.address) as ex:
                (out,) = list(ex.run([unit]))
        finally:
            t.join()
        assert len(killed) == 2, f"the unit ran on {killed} only: the test did not test anything"
        assert out.status == "crashed" and out.worker == killed[1], (out.status, out.worker, out.message)
        assert "died, 2 times" in out.message and killed[1] in out.message, out.message
        assert c.names() == {"k1", "k2", "k3"} - set(killed)   # the third worker lives on
    finally:
        c.close()


def test_an_unreachable_cluster_is_a_usage_error_naming_the_address():
    port = _free_port()
    res = subprocess.run([*CLI, "check", "--impl", "im2col", "--case", "n1c1h3w3o1k1", "--executor",
                          f"dask://127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert f"127.0.0.1:{port}" in res.stderr and "cannot reach" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_cluster_host_that_does_not_resolve_is_a_usage_error_naming_it(capsys):
    assert main(["check", "--impl", "im2col", "--case", "n1c1h3w3o1k1", "--executor",
                 "dask://nosuchhost.invalid:8786"]) == 2
    err = capsys.readouterr().err
    assert "nosuchhost.invalid:8786" in err and "does not resolve" in err and len(err.strip().splitlines()) == 1


def test_a_result_that_came_is_kept_though_a_worker_died_under_the_unit_after():
    # the deaths were asked first: a unit whose result had arrived was still reported crashed
    from convbench.execute.cluster import DaskExecutor, Outcome, _Deaths

    unit = Unit("check", "im2col", "im2col", "conv2d", CASES[0], ("forward",), options={"check": "shape"})
    done = Outcome(unit, "ok", records=[{"status": "passed"}], worker="w1")

    class Fut:
        key, status = "k", "finished"

        def result(self):
            return done

    deaths = _Deaths.__new__(_Deaths)
    deaths.count, deaths.last = {"k": 2}, {"k": "w2"}
    assert DaskExecutor._settled(Fut(), unit, deaths, RuntimeError) is done
    Fut.status = "cancelled"   # cancelled at the second death, nothing came: crashed, naming it
    out = DaskExecutor._settled(Fut(), unit, deaths, RuntimeError)
    assert out.status == "crashed" and out.worker == "w2"
