"""max_pool2d under asv: time, peak memory, G element-ops/s and numerical error per (implementation, case).

Thin on purpose: the pairs come from the registry and the catalogue (``_common``), data is built
in ``setup`` from a fixed seed, and each benchmark makes exactly one call. What an implementation
cannot run here (unavailable, unsupported case, naive loops on a large case) raises
``SkipNotImplemented`` with the reason. The module's name is the operator: the results reader
(:func:`reports.external.read_asv_results`) takes it from there.
"""
from __future__ import annotations

from . import _common as common

__all__ = ["MaxPool2dForward", "MaxPool2dBackward"]

_PARAMS = common.bench_params("max_pool2d")


class MaxPool2dForward(common.ForwardBench):
    op = "max_pool2d"
    params = _PARAMS


class MaxPool2dBackward(common.BackwardBench):
    op = "max_pool2d"
    params = _PARAMS
