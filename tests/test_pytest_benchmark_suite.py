"""The pytest-benchmark suite: its JSON becomes bench records; a new impls/ file joins every suite."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reports.external import read_pytest_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    # a child pytest must not believe it is an xdist worker (pytest-benchmark would not time)
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST") and k != "PYTEST_CURRENT_TEST"}


def _run(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_benchmark_json_becomes_bench_records(tmp_path):
    out = tmp_path / "out.json"
    _run([sys.executable, "-m", "pytest", "suites/bench_ops.py", "-q", "-p", "no:cacheprovider",
          "-k", "conv2d-im2col-lenet5 or max_pool2d-stride_tricks-cifar", "--benchmark-only", f"--benchmark-json={out}",
          "--benchmark-max-time=0.01", "--benchmark-min-rounds=2", "--benchmark-warmup=off"])
    doc = json.loads(out.read_text())
    names = sorted(b["name"] for b in doc["benchmarks"])
    assert names == ["test_backward[conv2d-im2col-lenet5.c3]", "test_backward[max_pool2d-stride_tricks-cifar.k2s2.c32]",
                     "test_forward[conv2d-im2col-lenet5.c3]", "test_forward[max_pool2d-stride_tricks-cifar.k2s2.c32]"]
    assert {b["group"] for b in doc["benchmarks"]} == {"conv2d lenet5.c3", "max_pool2d cifar.k2s2.c32"}
    every = read_pytest_benchmark(out)
    pool = {r["direction"]: r for r in every if r["op"] == "max_pool2d"}
    assert pool["forward"]["flops"] == 8 * 32 * 16 * 16 * 3 and pool["backward"]["params"]["kh"] == 2
    assert (pool["forward"]["impl"], pool["forward"]["case"]) == ("stride_tricks", "cifar.k2s2.c32")
    rows = {r["direction"]: r for r in every if r["op"] == "conv2d"}
    f = rows["forward"]
    assert (f["impl"], f["case"], f["op"], f["dtype"], f["backend"], f["status"]) == (
        "im2col", "lenet5.c3", "conv2d", "float32", "numpy", "ok")
    assert f["flops"] == 2 * 16 * 6 * 25 * 100 + 16 * 100 and f["params"]["kh"] == 5
    for r in rows.values():  # GFLOP/s from the FLOPs that travelled in extra_info
        assert r["gflops"] == pytest.approx(r["flops"] / r["t_median_s"] / 1e9)
        assert 0 < r["t_min_s"] <= r["t_median_s"]


def test_read_pytest_benchmark_rejects_other_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"records": []}')
    with pytest.raises(ValueError, match="path=.*is not pytest-benchmark JSON"):
        read_pytest_benchmark(bad)


_NEW_IMPL = '''
"""A temporary conv2d implementation written by a test: the float64 reference, cast back."""
from convbench.ops import get_op
from convbench.registry import Implementation, register


@register(op="conv2d", name="{name}", backend="numpy")
class Added(Implementation):
    def forward(self, p, x, w, b):
        return get_op("conv2d").reference_forward(p, x, w, b).astype(x.dtype)

    def backward(self, p, dy, x, w):
        return tuple(None if g is None else g.astype(x.dtype)
                     for g in get_op("conv2d").reference_backward(p, dy, x, w))
'''

_PROBE = '''
import contextlib, io, json, sys
sys.path.insert(0, "suites")
import pytest
from convbench.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    main(["list", "--json"])
listed = [d["name"] for d in json.loads(buf.getvalue())]
from asv_bench import conv2d
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "suites/bench_ops.py"])
print(json.dumps({"list": listed, "asv": conv2d.Conv2dForward.params[0], "collected": buf.getvalue().splitlines()}))
'''


def test_a_new_file_in_impls_joins_every_suite():
    name = f"zz_test_added_{os.getpid()}"
    path = ROOT / "impls" / f"{name}.py"
    path.write_text(_NEW_IMPL.format(name=name))
    try:
        r = _run([sys.executable, "-c", _PROBE])
    finally:
        path.unlink()
        for pyc in (ROOT / "impls" / "__pycache__").glob(f"{name}.*"):
            pyc.unlink()
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert name in got["list"]
    assert name in got["asv"]
    assert f"suites/bench_ops.py::test_forward[conv2d-{name}-resnet50.layer1.0.conv2]" in got["collected"]
    assert f"suites/bench_ops.py::test_backward[conv2d-{name}-lenet5.c3]" in got["collected"]
