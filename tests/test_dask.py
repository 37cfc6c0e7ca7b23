"""The Dask executor against a real cluster: a `dask scheduler` and `dask worker` processes on
127.0.0.1 (loopback only), started and stopped by each test."""
from __future__ import annotations

import contextlib
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

from convbench.cases import get_suite
from convbench.execute import Unit, get_executor
from convbench.registry import get_impl, load_impl
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

    def __init__(self, tmp: Path, names: tuple[str, ...]) -> None:
        self.port = _free_port()
        self.address = f"dask://127.0.0.1:{self.port}"
        self.log = open(tmp / "cluster.log", "w")
        # a unit whose worker dies runs once more elsewhere, then it is crashed
        env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
        self.scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                           "--no-dashboard"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.workers = {n: subprocess.Popen([DASK, "worker", f"tcp://127.0.0.1:{self.port}", "--name", n,
                                             "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                             "--host", "127.0.0.1"], stdout=self.log, stderr=subprocess.STDOUT,
                                            env=env)
                        for n in names}
        from distributed import Client

        self.client = Client(f"tcp://127.0.0.1:{self.port}", timeout=60)
        self.client.wait_for_workers(len(names), timeout=120)

    def close(self) -> None:
        self.client.close()
        for p in [*self.workers.values(), self.scheduler]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.workers.values(), self.scheduler]:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


@contextlib.contextmanager
def cluster(tmp: Path, names: tuple[str, ...] = ("w1", "w2")):
    c = Cluster(tmp, names)
    try:
        yield c
    finally:
        c.close()


def _bare(records):
    return [{k: v for k, v in r.items() if k not in ("worker", "machine")} for r in records]


def test_checks_and_benchmarks_through_a_cluster(tmp_path):
    impls = [get_impl("im2col"), load_impl(str(PLANTED / "slow.py:conv2d"))]
    local = run_checks(impls, CASES, checks=CHECKS, jobs=1, progress=False)
    with cluster(tmp_path) as c:
        remote = run_checks(impls, CASES, checks=CHECKS, executor=c.address, progress=False)
        assert _bare(remote) == _bare(local)
        assert {r["worker"] for r in remote if r["status"] == "passed"} == {"w1", "w2"}
        assert all(r["machine"] == local[0]["machine"] for r in remote)

        out = tmp_path / "check.json"
        res = subprocess.run([*CLI, "check", "--impl", "stride_tricks", "--case", "n2c3h7w7o4k3p1", "--executor",
                              c.address, "--json", str(out)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        recs = json.loads(out.read_text())
        assert recs and {r["status"] for r in recs} == {"passed"} and {r["worker"] for r in recs} <= {"w1", "w2"}

        # benchmarks: every record ok, with the machine that measured it and the worker's name
        out = tmp_path / "bench.jsonl"
        res = subprocess.run([*CLI, "bench", "--impl", "im2col", "--impl", "torch_cpu", "--case", "n2c8h16w16o8k3p1",
                              "--case", "n1c4h8w8o4k3", "--executor", c.address, "--budget", "30", "--out", str(out)],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(recs) == 8 and {r["status"] for r in recs} == {"ok"}, [(r["status"], r.get("reason")) for r in recs]
        assert {r["worker"] for r in recs} <= {"w1", "w2"} and len({r["run_id"] for r in recs}) == 1
        assert all(r["machine"]["id"] and r["machine"]["peak_gflops"] and r["t_median_s"] > 0 for r in recs)
        # closing the run early (what Ctrl-C does) cancels what the cluster has not finished
        slow = load_impl(str(PLANTED / "slow.py:conv2d"))
        units = [Unit("check", slow.info.spec, slow.info.name, "conv2d", CASES[0], ("forward",), index=i,
                      timeout=60.0, options={"check": "random", "shrink": False}) for i in range(40)]
        with get_executor(c.address) as ex:
            run = ex.run(units)
            first = next(run)
            run.close()
            assert first.status == "ok"
            time.sleep(1.0)  # far less than the 39 units left would take (0.1 s a call, 2 workers)

            def convbench_tasks(dask_scheduler):  # nested: sent by value, the scheduler cannot import tests
                return [str(k) for k, ts in dask_scheduler.tasks.items()
                        if str(k).startswith("convbench-") and ts.state not in ("memory", "released", "forgotten")]

            left = c.client.run_on_scheduler(convbench_tasks)
            assert not left, f"{len(left)} units still on the cluster: {left[:3]}"
    # --resume reads the cluster's file like a local one: nothing is measured again
    res = subprocess.run([*CLI, "bench", "--impl", "im2col", "--case", "n1c4h8w8o4k3", "--out", str(out), "--resume"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and len(out.read_text().splitlines()) == 8, res.stdout[-2000:]


def test_a_worker_killed_mid_run_loses_no_unit(tmp_path):
    impls = [load_impl(str(PLANTED / "slow.py:conv2d"))]
    local = run_checks(impls, CASES, checks=CHECKS, jobs=1, progress=False)
    killed: list[str] = []
    with cluster(tmp_path) as c:
        def kill_when_busy() -> None:
            # SIGKILL the first worker seen running a unit, inside it (each call sleeps 0.1 s)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                names = {a: str(w["name"]) for a, w in c.client.scheduler_info(n_workers=-1)["workers"].items()}
                for addr, keys in c.client.processing().items():
                    if any(str(k).startswith("convbench-check") for k in keys) and names.get(addr) in c.workers:
                        time.sleep(0.05)
                        os.kill(c.workers[names[addr]].pid, signal.SIGKILL)
                        killed.append(names[addr])
                        return
                time.sleep(0.02)

        t = threading.Thread(target=kill_when_busy)
        t.start()
        remote = run_checks(impls, CASES, checks=CHECKS, executor=c.address, progress=False)
        t.join()
    assert killed, "no worker was killed: the test did not test anything"
    assert _bare(remote) == _bare(local)  # every unit, once, with the local run's result
    assert "crashed" not in {r["status"] for r in remote}  # the lost units ran again on the other worker


def test_an_unreachable_cluster_is_a_usage_error_naming_the_address(tmp_path):
    port = _free_port()
    res = subprocess.run([*CLI, "check", "--impl", "im2col", "--case", "n1c1h3w3o1k1", "--executor",
                          f"dask://127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert f"127.0.0.1:{port}" in res.stderr and "cannot reach" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1

