"""Records: atomic appends, tolerant reads, resume after kill -9."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from convbench import store


def test_append_and_read_round_trip(tmp_path):
    f = tmp_path / "sub" / "r.jsonl"
    recs = [{"impl": "a", "status": "ok", "t": 1.5}, {"impl": "b", "status": "error", "reason": "boom"}]
    for r in recs:
        store.append(f, r)
    assert store.read(f) == recs
    assert f.read_text().count("\n") == 2


def test_read_ignores_a_truncated_last_line(tmp_path):
    f = tmp_path / "r.jsonl"
    store.append(f, {"a": 1})
    store.append(f, {"a": 2})
    data = f.read_bytes()
    f.write_bytes(data[:-7])  # a write cut short by kill -9
    assert store.read(f) == [{"a": 1}]


def test_append_after_a_truncated_line_starts_a_fresh_line(tmp_path):
    f = tmp_path / "r.jsonl"
    store.append(f, {"a": 1})
    with open(f, "ab") as fh:
        fh.write(b'{"a": 2, "trunc')
    store.append(f, {"a": 3})
    assert store.read(f) == [{"a": 1}, {"a": 3}]


def test_non_finite_floats_are_written_as_null(tmp_path):
    f = tmp_path / "r.jsonl"
    store.append(f, {"x": math.nan, "y": [math.inf, 1.0]})
    assert store.read(f) == [{"x": None, "y": [None, 1.0]}]
    json.loads(f.read_text())  # strict JSON


def test_numpy_scalars_are_plain_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    f = tmp_path / "r.jsonl"
    store.append(f, {"x": np.float32(1.5), "n": np.int64(3)})
    assert store.read(f) == [{"x": 1.5, "n": 3}]


def test_missing_file_reads_as_nothing(tmp_path):
    assert store.read(tmp_path / "none.jsonl") == []


def test_record_must_be_a_dict(tmp_path):
    with pytest.raises(TypeError, match="record must be a dict"):
        store.append(tmp_path / "r.jsonl", [1, 2])


def test_done_keys_count_ok_skipped_error_but_retry_timeouts_and_crashes():
    base = {"op": "conv2d", "impl": "i", "case": "c", "descriptor": "d", "dtype": "float32"}
    recs = [dict(base, direction=d, status=s) for d, s in
            (("forward", "ok"), ("backward", "timeout"))] + [dict(base, case="c2", direction="forward", status="error"),
                                                             dict(base, case="c3", direction="forward", status="crashed"),
                                                             dict(base, case="c4", direction="forward", status="skipped")]
    done = store.done_keys(recs)
    assert store.record_key(recs[0]) in done
    assert store.record_key(recs[1]) not in done
    assert store.record_key(recs[2]) in done
    assert store.record_key(recs[3]) not in done
    assert store.record_key(recs[4]) in done


FAKE = textwrap.dedent('''
    import time
    from convbench.ops import get_op
    from convbench.registry import Implementation, register

    class FakeSleepy(Implementation):
        """The reference's values (the check after timing passes), a few milliseconds a call:
        something to interrupt."""
        def forward(self, p, x, w, b):
            time.sleep(0.004)
            return get_op("conv2d").reference_forward(p, x, w, b).astype(x.dtype)
        def backward(self, p, dy, x, w):
            time.sleep(0.004)
            return tuple(None if g is None else g.astype(x.dtype)
                         for g in get_op("conv2d").reference_backward(p, dy, x, w))

    fake = FakeSleepy()
    register(fake, op="conv2d", name="fake_sleepy", backend="numpy", replace=True)
''')

CASES = [f"n1c2h{h}w8o2k3" for h in range(8, 18)]  # 20 items of ~0.25 s: the kill lands mid-run


def _bench_cmd(impl_file: Path, out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "convbench.cli", "bench", "--impl", f"{impl_file}:fake", "--out", str(out)]
    for c in CASES:
        cmd += ["--case", c]
    return cmd + list(extra)


def test_kill_9_mid_run_leaves_a_readable_file_and_resume_finishes_without_repeats(tmp_path):
    from convbench.measure import machine

    impl_file = tmp_path / "fake_impl.py"
    impl_file.write_text(FAKE)
    out = tmp_path / "bench.jsonl"
    env = dict(os.environ, CONVBENCH_CACHE_DIR=str(tmp_path / "cache"))
    # seed the peaks cache so the child does not spend seconds measuring them
    fp = machine.fingerprint()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"peaks-{fp['id']}.json").write_text(json.dumps(
        {"peak_gflops": {"float32": 10.0, "float64": 5.0}, "torch_gflops": {}, "peak_gbps": 5.0,
         "others_pct": 0.0, "contended": False}))
    proc = subprocess.Popen(_bench_cmd(impl_file, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"bench ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.01)
        else:
            pytest.fail("no records appeared within 120 s")
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker, mid-run
    finally:
        proc.wait(30)
    first = store.read(out)
    lines = out.read_bytes().split(b"\n")
    whole = [ln for ln in lines if ln.strip()]
    assert len(first) >= len(whole) - 1  # every line but at most a truncated last one parses
    assert 3 <= len(first) < 2 * len(CASES)  # killed mid-run
    assert all(r["status"] == "ok" and r["impl"] == "fake_sleepy" for r in first)
    done_before = {(r["case"], r["direction"]) for r in first}

    res = subprocess.run(_bench_cmd(impl_file, out, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    final = store.read(out)
    keys = [(r["case"], r["direction"]) for r in final]
    assert len(keys) == len(set(keys)) == 2 * len(CASES)  # everything once, nothing repeated
    assert done_before <= set(keys)
    resumed = [r for r in final if r["run_id"] != first[0]["run_id"]]
    assert {(r["case"], r["direction"]) for r in resumed}.isdisjoint(done_before)
