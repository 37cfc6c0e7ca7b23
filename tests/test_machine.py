"""Machine fingerprint, cached peaks, description."""
from __future__ import annotations

import json
import types

import pytest


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
        return {"peak_gflops": {"float32": 100.0, "float64": 50.0}, "torch_gflops": {}, "peak_gbps": 10.0,
                "others_pct": 1.0, "contended": False}

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


def test_gpu_peaks_are_empty_without_a_cuda_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert machine.gpu_peaks() == {}
    pk = {"peak_gflops": {"float32": 1.0}, "peak_gbps": 1.0}
    assert not any(k.startswith("gpu_") for k in machine.machine_record(machine.fingerprint(), pk))


def test_gpu_float32_peak_is_measured_in_the_arithmetic_cudnn_may_use(monkeypatch):
    """The float32 GEMM runs with TF32 exactly when cuDNN may use it (a TF32 convolution's ceiling
    is the TF32 rate); float64 never; the user's matmul flag is left as it was. The device-side
    logic, here with a fake device: CUDA's Event timing is replaced by a fixed time per call."""
    import torch

    seen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(machine, "_cuda_best_of",
                        lambda fn, seconds: seen.append(torch.backends.cuda.matmul.allow_tf32) or 0.5)
    monkeypatch.setattr(torch, "randn", lambda *a, **k: torch.zeros(a, dtype=k["dtype"]))
    monkeypatch.setattr(torch, "ones", lambda n, **k: torch.zeros(n))
    monkeypatch.setattr(torch, "Generator", lambda **k: types.SimpleNamespace(manual_seed=lambda s: None))
    old = torch.backends.cuda.matmul.allow_tf32  # a property of torch's, not patchable
    torch.backends.cuda.matmul.allow_tf32 = True  # the user's setting, to be left as it was
    try:
        _check_gpu_peaks(monkeypatch, seen)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _check_gpu_peaks(monkeypatch, seen):
    import torch

    for cudnn_tf32 in (True, False):
        seen.clear()
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", cudnn_tf32)
        pk = machine.gpu_peaks(n=8, copy_bytes=64)
        assert seen[:2] == [cudnn_tf32, False]  # float32, then float64
        assert pk["gpu_float32_math"] == ("tf32" if cudnn_tf32 else "float32")
        assert pk["gpu_peak_gflops"] == {"float32": round(2 * 8**3 / 0.5 / 1e9, 2), "float64": round(2 * 8**3 / 0.5 / 1e9, 2)}
        assert pk["gpu_peak_gbps"] == round(2 * 64 / 0.5 / 1e9, 2)
        assert torch.backends.cuda.matmul.allow_tf32 is True
    fp = {"id": "000000000000", "hostname": "h", "cpu": "c", "blas": [], "gpu": "Fake GPU"}
    rec = machine.machine_record(fp, {"peak_gflops": {"float32": 1.0}, **pk})
    assert rec["gpu_peak_gflops"] == pk["gpu_peak_gflops"] and rec["gpu_float32_math"] == "float32"
    text = machine.describe(fp, {"peak_gflops": {}, **pk})
    assert "GPU GEMM" in text


def test_gpu_machine_id_follows_cudnn_tf32_and_cpu_ids_do_not_change():
    fp = machine.fingerprint()
    cpu_only = dict(fp, gpu=None, tf32_cudnn=True)
    assert machine._hash(cpu_only) == machine._hash(dict(cpu_only, tf32_cudnn=False))
    gpu = dict(fp, gpu="Fake GPU")
    assert machine._hash(dict(gpu, tf32_cudnn=True)) != machine._hash(dict(gpu, tf32_cudnn=False))


def test_device_peak_by_device():
    m = {"peak_gflops": {"float32": 10.0}, "gpu_peak_gflops": {"float32": 400.0}}
    assert machine.device_peak(m, "cpu", "float32") == 10.0
    assert machine.device_peak(m, "cuda", "float32") == 400.0
    assert machine.device_peak(m, "cuda", "float64") is None
    assert machine.device_peak({"peak_gflops": {"float32": 10.0}}, "cuda", "float32") is None
    assert machine.device_peak(m, "mps", "float32") is None


def test_more_cores_measure_a_larger_gemm_too(monkeypatch):
    """A 1024^3 GEMM leaves 16 threads short of work: with more than four cores the peak is the
    best of 1024^3 and 2048^3, and the record says which size gave it."""
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: set(range(2)))
    assert machine._gemm_sizes() == (1024,)
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert machine._gemm_sizes() == (1024, 2048)
    sizes = []

    def calls(dtype, n):
        sizes.append(n)
        return {"numpy": lambda: None}

    monkeypatch.setattr(machine, "peak_gemm_calls", calls)
    monkeypatch.setattr(machine, "_best_of", lambda fn, seconds: 1.0 if sizes[-1] == 1024 else 4.0)
    g = machine.gemm_peak("float32")  # 2048^3 in 4 s beats 1024^3 in 1 s by 2x
    assert sizes == [1024, 2048] and g["n"] == 2048 and g["peak"] == pytest.approx(2 * 2048**3 / 4.0 / 1e9)
    assert machine.gemm_peak("float32", n=512)["n"] == 512 and sizes[-1] == 512


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16

processor\t: 1
cpu family\t: 23
model\t\t: 1
flags\t\t: fpu sse
"""


def test_cpu_isa_names_family_model_and_vector_extensions(tmp_path, monkeypatch):
    """A generic model name ("AMD EPYC") hides whether the CPU has AVX-512: the fingerprint says
    it, the record's cpu shows it, and the id does not change with it (old records keep their
    machine)."""
    import builtins

    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(info if p == "/proc/cpuinfo" else p, *a, **k))
    isa = machine._cpu_isa()
    assert isa == "family 25 model 17; avx2 fma avx512f avx512_vnni avx512_bf16"  # the first processor only
    fp = machine.fingerprint()
    assert fp["cpu_isa"] == isa
    assert machine.machine_record(fp, {})["cpu"] == f"AMD EPYC ({isa})"
    assert isa in machine.describe(fp)
    assert fp["id"] == machine._hash({**fp, "cpu_isa": None})
    info.write_text("processor\t: 0\nmodel name\t: Some ARM\nFeatures\t: fp asimd sve\n")
    assert machine._cpu_isa() == "asimd sve"
    info.unlink()
    assert machine._cpu_isa() is None


def test_a_process_without_torch_reuses_the_fingerprint_and_does_not_import_torch(tmp_path):
    """Reading torch's part of the fingerprint imported torch: seconds of every `convbench check`,
    of every pool worker, for code that never needs torch."""
    import os
    import subprocess
    import sys

    code = ("import json, sys\nfrom convbench.measure.machine import fingerprint\n"
            "fp = fingerprint()\nprint(json.dumps([fp, 'torch' in sys.modules]))")
    env = dict(os.environ, CONVBENCH_CACHE_DIR=str(tmp_path))

    def fresh(**extra):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=dict(env, **extra))
        return json.loads(out.stdout)

    first, imported = fresh()
    assert first["torch"] and imported    # the first process reads torch (and caches)
    again, imported = fresh()
    assert again == first and not imported
    # what the fingerprint follows from, changed: read afresh (torch's threads follow OMP_NUM_THREADS)
    other, imported = fresh(OMP_NUM_THREADS="1")
    assert imported and other["torch_threads"] == 1 and other["id"] != first["id"]


def _fake_peaks(gflops: float, contended: bool, at: float) -> dict:
    return {"peak_gflops": {"float32": gflops, "float64": gflops / 2}, "numpy_gflops": {"float32": gflops},
            "torch_gflops": {"float32": None}, "peak_gbps": gflops / 10, "measured_at": "then",
            "measured_unix": at, "others_pct": 50.0 if contended else 1.0, "contended": contended}


def test_a_peak_measured_under_load_is_flagged_and_measured_again(tmp_path, monkeypatch):
    """Found on a fresh VM: the peaks were first measured while the test suite's other worker ran,
    cached, and every later bench read 109-140 % of that peak."""
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    fp = dict(machine.fingerprint(), id="0123456789ab")
    now = [1000.0]
    monkeypatch.setattr(machine.time, "time", lambda: now[0])
    queue = [_fake_peaks(60.0, True, 1000.0), _fake_peaks(100.0, False, 1400.0), _fake_peaks(90.0, False, 0.0)]
    monkeypatch.setattr(machine, "measure_peaks", lambda: queue.pop(0))
    assert machine.peaks(fp)["peak_gflops"]["float32"] == 60.0     # measured under load: flagged
    now[0] = 1000.0 + machine.CONTENDED_RETRY_S - 1
    assert machine.peaks(fp)["contended"] and len(queue) == 2        # too soon to measure again
    now[0] = 1000.0 + machine.CONTENDED_RETRY_S
    again = machine.peaks(fp)
    assert again["peak_gflops"] == {"float32": 100.0, "float64": 50.0} and not again["contended"]
    now[0] += 10 * machine.CONTENDED_RETRY_S
    assert machine.peaks(fp) == again and len(queue) == 1            # a quiet measurement stays


def test_a_contended_remeasurement_keeps_the_higher_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    fp = dict(machine.fingerprint(), id="0123456789ab")
    old = dict(_fake_peaks(100.0, True, 0.0), torch_gflops={"float32": 95.0})
    (tmp_path / f"peaks-{fp['id']}.json").write_text(json.dumps(old))
    monkeypatch.setattr(machine, "measure_peaks", lambda: _fake_peaks(70.0, True, 1e12))
    pk = machine.peaks(fp)
    assert pk["peak_gflops"] == {"float32": 100.0, "float64": 50.0} and pk["torch_gflops"] == {"float32": 95.0}
    assert pk["peak_gbps"] == 10.0 and pk["contended"]   # both were taken under load: still flagged
    assert "measured while other processes took 50.0 % of the CPU" in machine.describe(fp, pk)
    assert "measured while" not in machine.describe(fp, _fake_peaks(70.0, False, 0.0))


def test_measuring_the_peaks_beside_a_busy_process_reads_contended():
    import subprocess
    import sys

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        pk = machine.measure_peaks(gemm_n=256, seconds=0.5, copy_bytes=4 << 20)
    finally:
        busy.kill()
        busy.wait()
    if pk["others_pct"] is None:
        pytest.skip("no /proc/stat here")
    assert pk["contended"] and pk["others_pct"] > machine.OTHERS_HEAVY_PCT


def test_machine_refresh_measures_again(tmp_path, monkeypatch, capsys):
    from convbench import cli

    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(machine, "measure_peaks", lambda: calls.append(1) or _fake_peaks(80.0, False, 0.0))
    assert cli.main(["machine"]) == 0 and cli.main(["machine"]) == 0 and len(calls) == 1
    assert cli.main(["machine", "--refresh"]) == 0 and len(calls) == 2
    assert "GEMM float32 80.0 GFLOP/s" in capsys.readouterr().out


def test_peaks_cached_before_the_load_was_looked_at_are_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    fp = dict(machine.fingerprint(), id="0123456789ab")
    old = {"peak_gflops": {"float32": 65.0, "float64": 35.0}, "peak_gbps": 28.0, "measured_at": "then"}
    (tmp_path / f"peaks-{fp['id']}.json").write_text(json.dumps(old))
    monkeypatch.setattr(machine, "measure_peaks", lambda: _fake_peaks(100.0, False, 1e12))
    assert machine.peaks(fp)["peak_gflops"] == {"float32": 100.0, "float64": 50.0}
