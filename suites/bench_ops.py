"""Every operator under pytest-benchmark: each registered implementation on the asv subset of the catalogue.

Time and save JSON (see docs/frontends.md)::

    .venv/bin/python -m pytest suites/bench_ops.py --benchmark-only --benchmark-json=out.json
    .venv/bin/python -m pytest suites/bench_ops.py --benchmark-only -k max_pool2d   # one operator

Under ``make test`` (pytest-xdist) or ``--benchmark-disable``, pytest-benchmark does not time: then
only the small cases are collected and each runs its call once, with its output shapes and dtypes
checked (a smoke test of every implementation of every operator through this suite, in seconds).
Ids are ``<op>-<impl>-<case>``, groups are ``<op> <case>``, and ``extra_info`` carries what
``convbench report`` needs to turn a timing into a bench record (op, FLOPs, bytes, the case's
parameters). The triples and the call come from ``asv_bench._common``, the same as under asv: no
shapes and no implementation code here.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from asv_bench import _common as common
from convbench.ops import get_op

_TRIPLES = [(op, impl, case) for op in common.OPS for impl in common.impl_names(op)
            for case in common.bench_cases(op)]


def _timing(config: Any) -> bool:
    """Whether pytest-benchmark will time (its own rule: off when disabled or under xdist)."""
    if config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False):
        return False
    return not (os.environ.get("PYTEST_XDIST_WORKER") or config.getoption("dist", "no") != "no")


def _small(case: Any) -> bool:
    # half the naive bound: the smoke run stays seconds even with naive loops in it
    return case.params.flops("forward") <= common.SMALL_FLOPS // 2


def pytest_generate_tests(metafunc: Any) -> None:
    if {"op", "impl", "case"} <= set(metafunc.fixturenames):
        triples = _TRIPLES if _timing(metafunc.config) else [t for t in _TRIPLES if _small(t[2])]
        metafunc.parametrize(("op", "impl", "case"), triples, ids=[f"{o}-{i}-{c.id}" for o, i, c in triples])


def _run(benchmark: Any, impl: str, case: Any, direction: str) -> Any:
    why = common.skip_reason(impl, case, direction)
    if why is not None:
        pytest.skip(why)
    call = common.prepared_call(impl, case, direction)
    benchmark.group = f"{case.op} {case.id}"
    benchmark.extra_info.update(common.extra_info(impl, case, direction))
    return benchmark(call)


def _check(op: str, impl: str, name: str, got: Any, shape: tuple[int, ...], dtype: str) -> None:
    a = common.get_impl(impl, op).to_numpy(got)
    assert a.shape == shape and a.dtype == np.dtype(dtype), \
        f"{op} {impl} {name}: got {a.shape} {a.dtype}, want {shape} {dtype}"


def test_forward(benchmark: Any, op: str, impl: str, case: Any) -> None:
    y = _run(benchmark, impl, case, "forward")
    _check(op, impl, "y", y, case.params.shapes()["y"], case.dtype)


def test_backward(benchmark: Any, op: str, impl: str, case: Any) -> None:
    grads = _run(benchmark, impl, case, "backward")
    shp = case.params.shapes()
    assert len(grads) == len(get_op(op).grads), f"{op} {impl}: {len(grads)} gradients, want {get_op(op).grads}"
    for name, g in zip(get_op(op).grads, grads):
        if name in shp:
            _check(op, impl, name, g, shp[name], case.dtype)
