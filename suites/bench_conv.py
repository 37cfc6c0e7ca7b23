"""conv2d under pytest-benchmark: every registered implementation on the asv subset of the catalogue.

Time and save JSON (see docs/frontends.md)::

    .venv/bin/python -m pytest suites/bench_conv.py --benchmark-only --benchmark-json=out.json

Under ``make test`` (pytest-xdist) or ``--benchmark-disable``, pytest-benchmark does not time: then
only the small cases are collected and each runs its call once, with its output shape and dtype
checked (a smoke test of every implementation through this suite, in seconds). Ids are ``<impl>-<case>``, groups are cases,
and ``extra_info`` carries what ``convbench report`` needs to turn a timing into a bench record
(FLOPs, bytes, the case's parameters). The pairs and the call come from ``asv_bench._common``, the
same as under asv: no shapes and no implementation code here.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from asv_bench import _common as common

_PAIRS = [(impl, case) for impl in common.impl_names() for case in common.bench_cases()]


def _timing(config: Any) -> bool:
    """Whether pytest-benchmark will time (its own rule: off when disabled or under xdist)."""
    if config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False):
        return False
    return not (os.environ.get("PYTEST_XDIST_WORKER") or config.getoption("dist", "no") != "no")


def pytest_generate_tests(metafunc: Any) -> None:
    if {"impl", "case"} <= set(metafunc.fixturenames):
        pairs = _PAIRS if _timing(metafunc.config) else [
            (i, c) for i, c in _PAIRS if c.params.macs <= common.SMALL_MACS]
        metafunc.parametrize(("impl", "case"), pairs, ids=[f"{i}-{c.id}" for i, c in pairs])


def _run(benchmark: Any, impl: str, case: Any, direction: str) -> Any:
    why = common.skip_reason(impl, case, direction)
    if why is not None:
        pytest.skip(why)
    call = common.prepared_call(impl, case, direction)
    benchmark.group = case.id
    benchmark.extra_info.update(common.extra_info(impl, case, direction))
    return benchmark(call)


def _check(impl: str, got: Any, shape: tuple[int, ...], dtype: str) -> None:
    a = common.get_impl(impl, common.OP).to_numpy(got)
    assert a.shape == shape and a.dtype == np.dtype(dtype), f"{impl}: got {a.shape} {a.dtype}, want {shape} {dtype}"


def test_forward(benchmark: Any, impl: str, case: Any) -> None:
    y = _run(benchmark, impl, case, "forward")
    _check(impl, y, case.params.shapes()["y"], case.dtype)


def test_backward(benchmark: Any, impl: str, case: Any) -> None:
    grads = _run(benchmark, impl, case, "backward")
    shp = case.params.shapes()
    for name, g in zip(("grad_input", "grad_weight", "grad_bias"), grads):
        if name in shp:
            _check(impl, g, shp[name], case.dtype)
