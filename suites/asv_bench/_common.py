"""What the asv and pytest-benchmark suites share: which (implementation, case) pairs, and one call.

No shapes and no implementation code live here: cases come from the catalogue
(:mod:`convbench.cases`), implementations from the registry (:mod:`convbench.registry`), so an
implementation registered once (a module in ``impls/``, an entry point) shows up in both suites.
pytest imports this module as ``asv_bench._common`` (``suites/`` is on its path); asv as part of
the benchmark package.
"""
from __future__ import annotations

import abc
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from convbench.cases import Case, get_suite, parse_descriptor
from convbench.measure.bench import measure_one
from convbench.measure.calls import prepared_call as measure_call
from convbench.measure.instructions import count_instructions, valgrind_missing
from convbench.ops import get_op
from convbench.registry import availability, get_impl, registered
from convbench.verify.checks import check_random

try:
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:  # pytest-benchmark alone: its suite skips through pytest.skip, never this
    class SkipNotImplemented(Exception):  # type: ignore[no-redef]
        pass

__all__ = ["OPS", "BENCH_CASES", "SMALL_FLOPS", "impl_names", "bench_cases", "bench_params", "case_label",
           "case_from_label", "get_case", "get_impl", "skip_reason", "prepared_call", "gflops", "err_ratio",
           "extra_info", "ForwardBench", "BackwardBench", "InstructionsBench", "INSTRUCTION_CASES",
           "instruction_params"]

#: the asv / pytest-benchmark subset of the catalogue, per operator, by id: one case per kind of
#: layer, each taking well under a second in NumPy so that ``asv run --quick`` stays a few minutes
#: on 2 cores. The first case of each op is small: the one pure-Python loops run.
BENCH_CASES = {
    "conv2d": (
        "lenet5.c3",                      # small: the one naive loops run
        "cifar10cnn.conv2",               # the course CNN
        "resnet50.layer1.0.conv2",        # 3x3, 64 channels, 56x56
        "resnet50.layer2.0.downsample",   # strided 1x1
        "mobilenetv2.dw.144x56.s2",       # depthwise, strided
        "alexnet.conv2",                  # grouped 5x5 (groups=2)
    ),
    "conv1d": (
        "all.at.once",                    # small: stride, padding, dilation, groups at once
        "textcnn.k3",                     # a text CNN
        "tcn.k3.d4",                      # dilated temporal block, 'same' padding
        "wav2vec2.fe.conv1",              # strided speech feature encoder
        "separable.dw.k5",                # depthwise
    ),
    "max_pool2d": (
        "cifar.k2s2.c32",                 # small: the course CNN's pool
        "resnet50.maxpool",               # 3x3 stride 2, padded
        "alexnet.pool2",                  # overlapping 3x3 stride 2
        "vgg16.pool1",                    # 2x2 on 224x224x64
    ),
    "avg_pool2d": (
        "lenet5.s2",                      # small: LeNet's subsampling
        "resnet50.avgpool",               # global 7x7 over 2048 channels
        "inception_v3.mixed5b.pool",      # 3x3 stride 1, padded
        "k2s2.c64.h112",                  # 2x2 stride 2
    ),
}
OPS = tuple(BENCH_CASES)

#: the few small cases whose forward call is counted in instructions (valgrind runs code ~50-500x
#: slower, so only small ones): a CI runner too noisy to see a 5 % slowdown in time still sees the
#: work added in the count
INSTRUCTION_CASES = {"conv2d": ("lenet5.c3", "cifar10cnn.conv2")}

#: cases of at most this many FLOPs (element operations for pooling) are "small": the only ones
#: pure-Python loops take on, at roughly a microsecond per operation
SMALL_FLOPS = 2_000_000
_SMALL_ONLY = frozenset({"naive"})


def impl_names(op: str = "conv2d") -> list[str]:
    """Every registered implementation of ``op``, available or not (unavailable ones skip).

    Availability is resolved here, once: under asv's fork server every benchmark then inherits
    the imports an availability check makes (torch: seconds) instead of paying them per fork.
    """
    impls = registered(op)
    for i in impls:
        availability(i)
    return [i.info.name for i in impls]


@lru_cache(maxsize=None)
def _catalogue(op: str) -> dict[str, Case]:
    return {c.id: c for s in ("edge", "models", "quick", "scaling") for c in get_suite(s, op)}


def get_case(case_id: str, op: str = "conv2d") -> Case:
    """The catalogue case ``case_id`` of ``op`` (edge, models, quick or scaling suite)."""
    try:
        return _catalogue(op)[case_id]
    except KeyError:
        raise KeyError(f"case {case_id!r} is not in the {op} edge, models, quick or scaling suites") from None


def bench_cases(op: str = "conv2d") -> list[Case]:
    return [get_case(c, op) for c in BENCH_CASES[op]]


def bench_params(op: str) -> list[list[str]]:
    """asv's ``params`` for ``op``: [implementation names, case labels]."""
    return [impl_names(op), [case_label(c) for c in bench_cases(op)]]


def case_label(case: Case) -> str:
    """``<id> <descriptor>``: the asv parameter value, so results say which call they timed even
    after the catalogue changes (and :func:`case_from_label` needs no catalogue)."""
    return f"{case.id} {case.descriptor}"


def case_from_label(label: str, op: str = "conv2d") -> Case:
    cid, _, desc = label.strip("'\"").partition(" ")
    c = parse_descriptor(desc, op)
    return Case(id=cid, params=c.params, dtype=c.dtype)


def skip_reason(impl_name: str, case: Case, direction: str) -> str | None:
    """Why ``impl_name`` does not run ``case`` in ``direction`` here, or None when it does."""
    impl = get_impl(impl_name, case.op)
    why = availability(impl)
    if why is not None:
        return why
    why = impl.unsupported(case.params, case.dtype, direction)
    if why is not None:
        return why
    work = case.params.flops(direction)
    if impl_name in _SMALL_ONLY and work > SMALL_FLOPS:
        return f"{impl_name} runs only cases of at most {SMALL_FLOPS:,} FLOPs ({case.id} {direction} has {work:,})"
    return None


@lru_cache(maxsize=8)
def _inputs(case: Case) -> dict[str, np.ndarray]:
    # fixed seed: every implementation and every commit times the same numbers (the bench
    # runner's inputs too); cached, since asv calls setup before every repeat
    return get_op(case.op).make_inputs(case.params, case.dtype, fill="random", seed=0)


def prepared_call(impl_name: str, case: Case, direction: str) -> Callable[[], Any]:
    """A no-argument function making exactly one call of ``direction`` on native inputs: the
    bench runner's prepared call (:func:`convbench.measure.calls.prepared_call`).

    Conversion to native arrays happens here, untimed; the call ends with ``sync`` so a device
    implementation is timed to completion, not to the queueing of its kernels (asv and
    pytest-benchmark time the call alone).
    """
    return measure_call(get_impl(impl_name, case.op), case, direction, inputs=_inputs(case), sync=True)


def gflops(impl_name: str, case: Case, direction: str = "forward", budget_s: float = 1.0) -> float:
    """GFLOP/s (element operations for pooling) as ``convbench bench`` measures it: the median
    of the bench timer (:func:`convbench.measure.bench.measure_one`, no memory call), within
    ``budget_s`` seconds."""
    t = measure_one(get_impl(impl_name, case.op), case, direction, budget_s=budget_s, memory=False)
    return case.params.flops(direction) / t["t_median_s"] / 1e9


def err_ratio(impl_name: str, case: Case) -> float:
    """Forward error against the float64 reference, as a ratio to the verification layer's bound.

    The number ``convbench check`` reports for the random tier
    (:func:`convbench.verify.checks.check_random`): below 1 passes, and a drift upward over commits
    is a numerical regression even while it still passes. A forward that raises or gives no
    comparable array raises here with the check's message.
    """
    rec = check_random(get_impl(impl_name, case.op), case, ["forward"])[0]
    if rec["err_ratio"] is None:
        raise RuntimeError(f"{impl_name} {case.id}: {rec['status']}: {rec['message']}")
    return float(rec["err_ratio"])


def extra_info(impl_name: str, case: Case, direction: str) -> dict[str, Any]:
    """What a timing needs to become a bench record: op, impl, case, FLOPs, bytes."""
    info = get_impl(impl_name, case.op).info
    p = case.params
    return {"op": case.op, "direction": direction, "impl": impl_name, "backend": info.backend,
            "device": info.device, "case": case.id, "descriptor": case.descriptor, "dtype": case.dtype,
            "params": case.as_dict()["params"], "count": case.count, "flops": p.flops(direction),
            "bytes_min": p.bytes_min(direction, np.dtype(case.dtype).itemsize)}


# --- asv benchmark classes, one pair per operator (suites/asv_bench/<op>.py) ----------------------

class _OpBench(abc.ABC):
    """Setup shared by every operator's benchmarks. Abstract (no ``op``) so that asv's discovery,
    which imports this module too, passes over it and the two classes below."""

    param_names = ["impl", "case"]
    timeout = 300
    direction = "forward"

    @property
    @abc.abstractmethod
    def op(self) -> str:
        """The operator: a class attribute in each concrete benchmark."""

    def setup(self, impl: str, case: str) -> None:
        self.case = case_from_label(case, self.op)
        why = skip_reason(impl, self.case, self.direction)
        if why is not None:
            raise SkipNotImplemented(why)
        self.impl = impl
        self.call = prepared_call(impl, self.case, self.direction)


class ForwardBench(_OpBench):
    """Forward: time, peak memory, GFLOP/s (element operations for pooling) and numerical error."""

    def time_forward(self, impl: str, case: str) -> None:
        self.call()

    def peakmem_forward(self, impl: str, case: str) -> None:
        self.call()

    def track_gflops(self, impl: str, case: str) -> float:
        return gflops(impl, self.case)

    track_gflops.unit = "GFLOP/s"  # type: ignore[attr-defined]

    def track_err_ratio(self, impl: str, case: str) -> float:
        return err_ratio(impl, self.case)

    track_err_ratio.unit = "error / rounding bound"  # type: ignore[attr-defined]


def instruction_params(op: str) -> list[list[str]]:
    """asv's ``params`` of :class:`InstructionsBench` for ``op``: [implementation names, the small
    cases of :data:`INSTRUCTION_CASES`]."""
    return [impl_names(op), [case_label(get_case(c, op)) for c in INSTRUCTION_CASES.get(op, ())]]


class InstructionsBench(_OpBench):
    """Forward: instructions of one call, counted under valgrind (:mod:`convbench.measure.instructions`).

    A count the machine's load cannot move (two counts agree within 0.5 %). It is not a time:
    valgrind hides AVX-512 paths from the program and costs no cache miss, so a change in speed
    without a change in work does not show. Skipped where valgrind is missing, saying how to get it.
    """

    timeout = 900

    def setup(self, impl: str, case: str) -> None:
        why = valgrind_missing()
        if why is not None:
            raise SkipNotImplemented(why)
        self.case = case_from_label(case, self.op)
        why = skip_reason(impl, self.case, self.direction)
        if why is None and impl in _SMALL_ONLY:
            why = f"{impl}'s pure-Python loops take minutes under valgrind"
        if why is not None:
            raise SkipNotImplemented(why)

    def track_instructions(self, impl: str, case: str) -> float:
        return float(count_instructions(impl, self.case, "forward"))

    track_instructions.unit = "instructions per call"  # type: ignore[attr-defined]


class BackwardBench(_OpBench):
    """Backward: time of every gradient the operator has."""

    direction = "backward"

    def time_backward(self, impl: str, case: str) -> None:
        self.call()
