"""conv2d under asv: time, peak memory, GFLOP/s and numerical error per (implementation, case);
instructions per call on two small cases.

Thin on purpose: the pairs come from the registry and the catalogue (``_common``), data is built
in ``setup`` from a fixed seed, and each benchmark makes exactly one call. What an implementation
cannot run here (unavailable, unsupported case, naive loops on a large case) raises
``SkipNotImplemented`` with the reason. The module's name is the operator: the results reader
(:func:`reports.external.read_asv_results`) takes it from there.
"""
from __future__ import annotations

from . import _common as common

__all__ = ["Conv2dForward", "Conv2dBackward", "Conv2dInstructions"]

_PARAMS = common.bench_params("conv2d")


class Conv2dForward(common.ForwardBench):
    op = "conv2d"
    params = _PARAMS


class Conv2dBackward(common.BackwardBench):
    op = "conv2d"
    params = _PARAMS


class Conv2dInstructions(common.InstructionsBench):
    op = "conv2d"
    params = common.instruction_params("conv2d")
