"""Peak extra memory of one call: NumPy through tracemalloc, torch CPU through the profiler."""
from __future__ import annotations

import numpy as np
import pytest

from convbench.cases import parse_descriptor
from convbench.measure.calls import prepared_call
from convbench.measure.memory import numpy_peak, peak_extra_bytes, torch_cpu_peak, workspace_bytes
from convbench.registry import get_impl

MB = 1 << 20


def test_numpy_peak_sees_a_temporary_freed_before_the_call_returns():
    def fn():
        tmp = np.ones(8 * MB // 8)  # 8 MiB, gone when fn returns
        return np.ones(MB // 8) + tmp[: MB // 8]  # 1 MiB output

    peak = numpy_peak(fn)
    assert 9 * MB <= peak < 9.2 * MB


def test_numpy_peak_does_not_count_what_existed_before():
    big = np.ones(16 * MB // 8)
    assert numpy_peak(lambda: big.sum()) < MB


def test_a_leaky_measure_is_caught():
    """Planted bug: measuring the final level instead of the peak misses the temporary."""
    import tracemalloc

    def wrong(fn):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        r = fn()
        end = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return end - base, r

    def fn():
        tmp = np.ones(8 * MB // 8)
        return tmp[:10].copy()

    assert wrong(fn)[0] < MB <= numpy_peak(fn)  # the real method sees what the wrong one misses


def _im2col_case():
    # no padding: the padded copy of x, a further temporary, is then absent
    return parse_descriptor("n4c16h32w32o16k3")


def test_im2col_forward_peak_is_patch_matrix_plus_output():
    case = _im2col_case()
    p = case.params
    oh, ow = p.out_hw
    itemsize = 4
    patch = p.n * oh * ow * p.c * p.kh * p.kw * itemsize
    out = p.n * p.o * oh * ow * itemsize
    impl = get_impl("im2col")
    peak, method = peak_extra_bytes(prepared_call(impl, case, "forward"), backend="numpy")
    assert method == "tracemalloc"
    assert peak >= patch
    assert peak <= 1.10 * (patch + out)


def test_torch_cpu_peak_is_measured_not_blank():
    case = parse_descriptor("n4c16h32w32o16k3")
    impl = get_impl("torch_cpu")
    if impl.availability() is not None:
        pytest.skip(impl.availability())
    peak, method = peak_extra_bytes(prepared_call(impl, case, "forward"), backend="torch")
    p = case.params
    oh, ow = p.out_hw
    assert method == "torch_profiler"
    assert peak is not None and peak >= p.n * p.o * oh * ow * 4  # at least the output


def test_torch_cpu_peak_counts_a_freed_torch_temporary():
    torch = pytest.importorskip("torch")

    def fn():
        tmp = torch.ones(4 * MB // 4)  # 4 MiB in torch's allocator, not traced by tracemalloc
        return (tmp[:10] * 2).clone()

    assert numpy_peak(fn) < MB  # why torch needs its own method
    assert torch_cpu_peak(fn) >= 4 * MB


def test_workspace_bytes_asks_the_implementation():
    class WithWs:
        def workspace_bytes(self, p, dtype, direction):
            return 123 if direction == "forward" else None

    class Broken:
        def workspace_bytes(self, p, dtype, direction):
            raise RuntimeError("no")

    p = parse_descriptor("n1c1h4w4o1k3").params
    assert workspace_bytes(WithWs(), p, "float32", "forward") == 123
    assert workspace_bytes(WithWs(), p, "float32", "backward") is None
    assert workspace_bytes(object(), p, "float32", "forward") is None
    assert workspace_bytes(Broken(), p, "float32", "forward") is None


def test_cuda_path_uses_the_allocator_statistics():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    x = torch.ones(1 << 20, device="cuda")
    peak, method = peak_extra_bytes(lambda: (x * 2) + 1, backend="torch", device="cuda")
    assert method == "cuda_allocator" and peak >= 4 << 20


def test_the_traced_call_runs_without_the_cycle_collector_and_without_a_full_collection(monkeypatch):
    """A full gc.collect() per memory call cost ~0.2 s once torch is loaded (more than the calls
    measured, and the budget overran by it); the collector is held off during the call instead
    and turned back on after."""
    import gc

    from convbench.measure import memory

    full = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda generation=2: (full.append(generation), real(0))[1])
    seen = []
    memory.numpy_peak(lambda: seen.append(gc.isenabled()))
    assert seen == [False] and gc.isenabled()
    assert 2 not in full


def test_memory_call_cost_counts_the_tracer_start_up():
    from convbench.measure.memory import FIXED_COST_S

    assert FIXED_COST_S["torch_profiler"] > FIXED_COST_S["tracemalloc"] > 0
