"""Machine fingerprint, cached peaks, description."""
from __future__ import annotations

import json


from convbench.measure import machine


def test_fingerprint_names_what_decides_speed():
    fp = machine.fingerprint()
    for key in ("id", "hostname", "cpu", "cores_logical", "cores_physical", "blas", "numpy", "torch",
                "torch_threads", "python", "env", "gpu"):
        assert key in fp, key
    assert isinstance(fp["id"], str) and len(fp["id"]) == 12
    blas = [b for b in fp["blas"] if b.get("user_api") == "blas"]
    assert blas and blas[0].get("internal_api") and blas[0].get("num_threads")  # NumPy's BLAS is found
    json.dumps(fp)  # plain data


def test_fingerprint_id_is_stable_and_tracks_the_environment(monkeypatch):
    a, b = machine.fingerprint(), machine.fingerprint()
    assert a["id"] == b["id"]
    monkeypatch.setenv("MKL_CONVBENCH_TEST_VAR", "1")  # inert: no MKL here reads it
    c = machine.fingerprint()
    assert c["env"].get("MKL_CONVBENCH_TEST_VAR") == "1"
    assert c["id"] != a["id"]


def test_peaks_are_cached_per_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_measure():
        calls.append(1)
        return {"peak_gflops": {"float32": 100.0, "float64": 50.0}, "torch_gflops": {}, "peak_gbps": 10.0}

    monkeypatch.setattr(machine, "measure_peaks", fake_measure)
    fp = machine.fingerprint()
    p1 = machine.peaks(fp)
    p2 = machine.peaks(fp)
    assert len(calls) == 1 and p1 == p2
    assert (tmp_path / f"peaks-{fp['id']}.json").exists()
    other = dict(fp, id="000000000000")
    machine.peaks(other)
    assert len(calls) == 2  # another fingerprint is measured afresh
    machine.peaks(fp, refresh=True)
    assert len(calls) == 3


def test_corrupt_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    fp = machine.fingerprint()
    (tmp_path / f"peaks-{fp['id']}.json").write_text("{not json")
    monkeypatch.setattr(machine, "measure_peaks", lambda: {"peak_gflops": {"float32": 1.0}, "peak_gbps": 1.0})
    assert machine.peaks(fp)["peak_gflops"] == {"float32": 1.0}


def test_measured_peaks_have_every_figure():
    # shape of the result only: how fast this machine is, is not a unit test's business
    pk = machine.measure_peaks(gemm_n=128, seconds=0.02, copy_bytes=4 << 20)
    for dt in ("float32", "float64"):
        assert pk["peak_gflops"][dt] > 0
        assert pk["torch_gflops"][dt] is None or pk["torch_gflops"][dt] > 0
    assert pk["peak_gbps"] > 0 and pk["gemm_n"] == 128 and pk["measured_at"]


def test_gemm_peak_is_the_faster_library():
    g = machine.gemm_peak("float32", n=128, seconds=0.02)
    assert g["numpy"] > 0 and (g["torch"] is None or g["torch"] > 0)
    assert g["peak"] == max(g["numpy"], g["torch"] or 0.0)


def test_describe_and_machine_record():
    fp = machine.fingerprint()
    pk = {"peak_gflops": {"float32": 12.5, "float64": 6.25}, "torch_gflops": {"float32": 11.0}, "peak_gbps": 9.0}
    text = machine.describe(fp, pk)
    assert fp["cpu"] in text and "12.5" in text and "9.0 GB/s" in text
    rec = machine.machine_record(fp, pk)
    assert set(rec) >= {"id", "hostname", "cpu", "blas", "peak_gflops", "peak_gbps"}
    assert rec["peak_gflops"]["float32"] == 12.5 and rec["id"] == fp["id"]


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert machine.cache_dir() == tmp_path / "convbench"
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path / "x"))
    assert machine.cache_dir() == tmp_path / "x"


def test_fingerprint_id_is_the_same_for_the_first_and_later_calls_of_a_process():
    """threadpoolctl sets KMP_DUPLICATE_LIB_OK on its first look at the pools: the id must not
    depend on whether that has happened yet (a fresh interpreter, as every CLI run is)."""
    import subprocess
    import sys

    code = ("from convbench.measure.machine import fingerprint\n"
            "a = fingerprint()['id']; b = fingerprint()['id']\n"
            "print(a, b)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "KMP_DUPLICATE_LIB_OK"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    a, b = out.stdout.split()
    assert a == b
