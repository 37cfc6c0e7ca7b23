"""The conformance suite: every registered implementation through every check, on the edge and random suites.

Unavailable implementations (torch_cuda without a GPU) and unsupported cases show as skips.
"""
from __future__ import annotations

from convbench.registry import registered
from convbench.verify import parametrize_with_checks


@parametrize_with_checks(registered("conv2d"), op="conv2d", suite="edge")
def test_conv2d_edge(impl, check):
    check(impl)


@parametrize_with_checks(registered("conv2d"), op="conv2d", suite="random")
def test_conv2d_random(impl, check):
    check(impl)
