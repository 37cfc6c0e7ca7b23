"""The C heap's state during a measurement: torch_cpu as a plain process runs it, and its variant."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convbench.cases import parse_descriptor
from convbench.measure.heap import (DEFAULT_MMAP, MAX_MMAP, glibc_mallopt, heap_policy, minor_faults,
                                    thresholds_for)
from convbench.registry import get_impl

needs_glibc = pytest.mark.skipif(glibc_mallopt() is None, reason="the C library is not glibc")


def test_fresh_thresholds_follow_the_largest_buffer_of_the_call():
    mmap, trim = thresholds_for("fresh", [147456, 1605632, 1605632, 1000])
    assert mmap % 4096 == 0 and 1605632 < mmap <= 1605632 + 8192
    assert trim == 2 * mmap
    # buffers under glibc's starting threshold never move it; over its ceiling they are ignored
    assert thresholds_for("fresh", [1000, 64 * 1024]) == (DEFAULT_MMAP, DEFAULT_MMAP)
    assert thresholds_for("fresh", [MAX_MMAP * 2, 300_000])[0] < 400_000
    assert thresholds_for("kept") == (MAX_MMAP, 2 * MAX_MMAP)
    with pytest.raises(ValueError, match="heap policy must be one of"):
        thresholds_for("warm")


def test_the_policy_is_held_inside_and_kept_after_even_on_error():
    calls: list[tuple[int, int]] = []
    fake = lambda opt, value: calls.append((opt, value)) or 1  # noqa: E731
    with pytest.raises(RuntimeError):
        with heap_policy("fresh", lambda: [3 << 20], mallopt=fake) as st:
            assert st["policy"] == "fresh" and st["mmap_threshold"] == calls[0][1]
            raise RuntimeError("the measurement failed")
    assert dict(calls[:2]) == {-3: st["mmap_threshold"], -1: st["trim_threshold"]}
    assert dict(calls[2:]) == {-3: MAX_MMAP, -1: 2 * MAX_MMAP}
    calls.clear()
    with heap_policy(None, mallopt=fake) as st:
        assert st["policy"] is None
    assert calls == []  # no policy: the process's own state, nothing set


def _faults_per_call(policy: str, spec: str, case: str) -> float:
    import torch

    impl = get_impl(spec, "conv2d")
    p = parse_descriptor(case).params
    arrays = {k: np.random.default_rng(0).standard_normal(s).astype(np.float32) for k, s in p.shapes().items()}
    x, w = impl.prepare(arrays["x"], arrays["w"])
    assert impl.heap == policy
    big = np.ones(1 << 20); del big  # this process freed an 8 MiB buffer, as convbench's always has
    f = lambda: impl.forward(p, x, w, None)  # noqa: E731
    from convbench.measure.memory import torch_cpu_allocations

    with torch.inference_mode(), heap_policy(impl.heap, lambda: torch_cpu_allocations(f)):
        for _ in range(3):
            f()
        before = minor_faults()
        for _ in range(10):
            f()
        return (minor_faults() - before) / 10


@needs_glibc
def test_torch_cpu_pays_the_page_faults_of_a_plain_process_and_the_variant_does_not():
    """The cause of torch_cpu's two speeds: a fresh process returns the call's buffers to the kernel
    after each call and faults ~1000 pages in again on the next; one that freed a large buffer
    before keeps them. torch_cpu is measured in the first state, torch_cpu_heap in the second."""
    pytest.importorskip("torch")
    # in a fresh process: what earlier tests did to this one's heap (threads, arenas) stays out
    code = ("import sys; sys.path.insert(0, {tests!r}); from test_heap import _faults_per_call as f; "
            "print(f('fresh', 'torch_cpu', 'n8c64h28w28o64k3p1'), f('kept', 'torch_cpu_heap', 'n8c64h28w28o64k3p1'))")
    out = subprocess.run([sys.executable, "-c", code.format(tests=str(Path(__file__).parent))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh, kept = (float(v) for v in out.stdout.split()[-2:])
    assert fresh > 300 and kept < 20


def test_torch_cpu_inputs_are_torch_allocated_copies():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    for spec in ("torch_cpu", "torch_cpu_heap"):
        (t,) = get_impl(spec, "conv2d").prepare(a)
        assert isinstance(t, torch.Tensor) and not np.shares_memory(t.numpy(), a)
        assert t.data_ptr() % 64 == 0 and np.array_equal(t.numpy(), a)


class _Allocates:
    """A NumPy implementation whose call allocates (and frees) a 4 MiB buffer."""

    def __init__(self, name: str, heap: str | None) -> None:
        from convbench.registry import ImplInfo

        self.info, self.heap, self.faults = ImplInfo(op="conv2d", name=name), heap, []

    def forward(self, p, x, w, b):
        before = minor_faults()
        big = np.ones(1 << 19)  # 4 MiB, past glibc's starting mmap threshold
        self.faults.append(minor_faults() - before)
        return np.zeros(p.shapes()["y"], x.dtype) + big[0]

    def prepare(self, *arrays):
        return arrays

    def sync(self):
        pass


@needs_glibc
def test_rounds_hold_a_policyless_participant_in_the_kept_heap_it_was_timed_in():
    """In interleaved rounds, an implementation without a heap policy once ran in the thresholds the
    previous block left: after torch_cpu's "fresh" ones, a NumPy call's large buffers were given
    back and faulted in again on every call (its rounds 1.3-5x its own timing)."""
    # in a fresh process: this one's heap history must not decide
    code = ("import sys; sys.path.insert(0, {tests!r}); from test_heap import _faults_in_rounds as f; print(f())")
    out = subprocess.run([sys.executable, "-c", code.format(tests=str(Path(__file__).parent))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) < 20, out.stdout   # a 4 MiB buffer faulted in is ~1000


def _faults_in_rounds() -> float:
    from convbench.measure import rounds
    from convbench.measure.heap import set_thresholds
    from convbench.measure.rounds import run_rounds

    case = parse_descriptor("n1c2h8w8o2k3")
    fresh, plain = _Allocates("fresh_one", "fresh"), _Allocates("plain_one", None)
    parts = [rounds._participant(i, case, "forward", None, __import__("time").perf_counter, held=True)
             for i in (fresh, plain)]
    timed: list[int] = []

    class Timed:
        def block(self, number):   # the calls a block times: its last `number`
            t = parts[1].block(number)
            timed.extend(plain.faults[-number:])
            return t

    set_thresholds(*thresholds_for("kept"))
    run_rounds([parts[0], Timed()], [3, 3], 10, seed=1)
    return float(np.median(timed))
