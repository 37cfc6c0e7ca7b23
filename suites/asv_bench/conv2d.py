"""conv2d under asv: time, peak memory, GFLOP/s and numerical error per (implementation, case).

Thin on purpose: the pairs come from the registry and the catalogue (``_common``), data is built
in ``setup`` from a fixed seed, and each benchmark makes exactly one call. What an implementation
cannot run here (unavailable, unsupported case, naive loops on a large case) raises
``SkipNotImplemented`` with the reason.
"""
from __future__ import annotations

from typing import Any

from asv_runner.benchmarks.mark import SkipNotImplemented

from . import _common as common

__all__ = ["Conv2dForward", "Conv2dBackward"]

_IMPLS = common.impl_names()
_CASES = [common.case_label(c) for c in common.bench_cases()]


class _Conv2d:
    params = [_IMPLS, _CASES]
    param_names = ["impl", "case"]
    timeout = 300
    direction = "forward"

    def setup(self, impl: str, case: str) -> None:
        self.case = common.case_from_label(case)
        why = common.skip_reason(impl, self.case, self.direction)
        if why is not None:
            raise SkipNotImplemented(why)
        self.impl = impl
        self.call = common.prepared_call(impl, self.case, self.direction)


class Conv2dForward(_Conv2d):
    def time_forward(self, impl: str, case: str) -> None:
        self.call()

    def peakmem_forward(self, impl: str, case: str) -> None:
        self.call()

    def track_gflops(self, impl: str, case: str) -> float:
        return self.case.params.flops("forward") / common.best_time(self.call) / 1e9

    track_gflops.unit = "GFLOP/s"  # type: ignore[attr-defined]

    def track_err_ratio(self, impl: str, case: str) -> float:
        return common.err_ratio(impl, self.case)

    track_err_ratio.unit = "error / rounding bound"  # type: ignore[attr-defined]


class Conv2dBackward(_Conv2d):
    direction = "backward"

    def time_backward(self, impl: str, case: str) -> Any:
        self.call()
