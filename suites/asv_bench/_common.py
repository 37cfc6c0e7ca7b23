"""What the asv and pytest-benchmark suites share: which (implementation, case) pairs, and one call.

No shapes and no implementation code live here: cases come from the catalogue
(:mod:`convbench.cases`), implementations from the registry (:mod:`convbench.registry`), so an
implementation registered once (a module in ``impls/``, an entry point) shows up in both suites.
pytest imports this module as ``asv_bench._common`` (``suites/`` is on its path); asv as part of
the benchmark package.
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from convbench.cases import Case, get_suite, parse_descriptor
from convbench.registry import availability, get_impl, registered

__all__ = ["OP", "BENCH_CASES", "SMALL_MACS", "impl_names", "bench_cases", "case_label", "case_from_label",
           "get_case", "get_impl", "skip_reason", "prepared_call", "best_time", "err_ratio", "extra_info"]

OP = "conv2d"

#: the asv / pytest-benchmark subset of the catalogue, by id: one case per kind of layer, each
#: taking well under a second in NumPy so that ``asv run --quick`` stays a few minutes on 2 cores
BENCH_CASES = (
    "lenet5.c3",                      # small: the one naive loops run
    "cifar10cnn.conv2",               # the course CNN
    "resnet50.layer1.0.conv2",        # 3x3, 64 channels, 56x56
    "resnet50.layer2.0.downsample",   # strided 1x1
    "mobilenetv2.dw.144x56.s2",       # depthwise, strided
    "alexnet.conv2",                  # grouped 5x5 (groups=2)
)

#: cases at most this many multiply-adds are "small": the only ones pure-Python loops take on,
#: at roughly a microsecond per multiply-add
SMALL_MACS = 1_000_000
_SMALL_ONLY = frozenset({"naive"})


def impl_names() -> list[str]:
    """Every registered implementation of the op, available or not (unavailable ones skip).

    Availability is resolved here, once: under asv's fork server every benchmark then inherits
    the imports an availability check makes (torch: seconds) instead of paying them per fork.
    """
    impls = registered(OP)
    for i in impls:
        availability(i)
    return [i.info.name for i in impls]


@lru_cache(maxsize=None)
def _catalogue() -> dict[str, Case]:
    return {c.id: c for s in ("models", "quick", "scaling") for c in get_suite(s, OP)}


def get_case(case_id: str) -> Case:
    """The catalogue case ``case_id`` (models, quick or scaling suite)."""
    try:
        return _catalogue()[case_id]
    except KeyError:
        raise KeyError(f"case {case_id!r} is not in the models, quick or scaling suites") from None


def bench_cases() -> list[Case]:
    return [get_case(c) for c in BENCH_CASES]


def case_label(case: Case) -> str:
    """``<id> <descriptor>``: the asv parameter value, so results say which call they timed even
    after the catalogue changes (and :func:`case_from_label` needs no catalogue)."""
    return f"{case.id} {case.descriptor}"


def case_from_label(label: str) -> Case:
    cid, _, desc = label.strip("'\"").partition(" ")
    c = parse_descriptor(desc, OP)
    return Case(id=cid, params=c.params, dtype=c.dtype)


def skip_reason(impl_name: str, case: Case, direction: str) -> str | None:
    """Why ``impl_name`` does not run ``case`` in ``direction`` here, or None when it does."""
    impl = get_impl(impl_name, OP)
    why = availability(impl)
    if why is not None:
        return why
    why = impl.unsupported(case.params, case.dtype, direction)
    if why is not None:
        return why
    if impl_name in _SMALL_ONLY and case.params.macs > SMALL_MACS:
        return f"{impl_name} runs only cases of at most {SMALL_MACS:,} multiply-adds ({case.id} has {case.params.macs:,})"
    return None


@lru_cache(maxsize=8)
def _inputs(case: Case) -> dict[str, np.ndarray]:
    from convbench.ops import get_op

    # fixed seed: every implementation and every commit times the same numbers
    return get_op(case.op).make_inputs(case.params, case.dtype, fill="random", seed=0)


def prepared_call(impl_name: str, case: Case, direction: str) -> Callable[[], Any]:
    """A no-argument function making exactly one call of ``direction`` on native inputs.

    Conversion to native arrays happens here, untimed; the call ends with ``sync`` so a device
    implementation is timed to completion, not to the queueing of its kernels.
    """
    from convbench.ops import get_op

    impl = get_impl(impl_name, OP)
    op = get_op(case.op)
    data = _inputs(case)
    names = op.forward_inputs if direction == "forward" else op.backward_inputs
    args = impl.prepare(*(data.get(n) for n in names))
    fn = impl.forward if direction == "forward" else impl.backward
    p, sync = case.params, impl.sync

    def call() -> Any:
        out = fn(p, *args)
        sync()
        return out

    return call


def best_time(call: Callable[[], Any], budget_s: float = 0.2, max_calls: int = 10) -> float:
    """Fastest of a few calls after one warm-up, within ``budget_s``.

    The minimum, because every other run measures the machine's noise on top of the code.
    """
    call()
    best, spent, calls = float("inf"), 0.0, 0
    while calls < max_calls and (calls < 1 or spent < budget_s):
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return best


def err_ratio(impl_name: str, case: Case) -> float:
    """Forward error against the float64 reference, as a ratio to the verification layer's bound.

    ``max(|y - ref| / bound)`` with the bound of the implementation's algorithm family
    (:mod:`convbench.verify.tolerance`; direct methods: ``2 u L conv(|x|, |w|)``), the same number
    ``convbench check`` reports: below 1 passes, and a drift upward over commits is a numerical
    regression even while it still passes.
    """
    from convbench.ops import get_op
    from convbench.verify import tolerance

    impl = get_impl(impl_name, OP)
    op, p = get_op(case.op), case.params
    data = _inputs(case)
    y = np.asarray(impl.to_numpy(prepared_call(impl_name, case, "forward")()), np.float64)
    ref = op.reference_forward(p, *(data.get(n) for n in op.forward_inputs))
    bnd = tolerance.bound(impl.info.algorithm, case.op, p, "forward", case.dtype, data)
    return float(np.max(tolerance.err_ratio(np.abs(y - ref), bnd)))


def extra_info(impl_name: str, case: Case, direction: str) -> dict[str, Any]:
    """What a timing needs to become a bench record: op, impl, case, FLOPs, bytes."""
    info = get_impl(impl_name, OP).info
    p = case.params
    return {"op": case.op, "direction": direction, "impl": impl_name, "backend": info.backend,
            "device": info.device, "case": case.id, "descriptor": case.descriptor, "dtype": case.dtype,
            "params": case.as_dict()["params"], "count": case.count, "flops": p.flops(direction),
            "bytes_min": p.bytes_min(direction, np.dtype(case.dtype).itemsize)}
