"""Fake implementations and a mock clock shared by the measurement tests (none of them timed)."""
from __future__ import annotations

import numpy as np

from convbench.registry import ImplInfo, Implementation


class MockClock:
    """Seconds that pass only when a fake implementation says its call took them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeConv(Implementation):
    """Returns zeros of the right shapes; each call costs ``overhead + flops / rate`` mock seconds.

    ``log`` lists ``(direction, flops)`` of every call, so a test can see what ran.
    """

    def __init__(self, clock: MockClock, name: str = "fake", rate: float = 1e9, overhead: float = 2e-3,
                 **info) -> None:
        self.clock, self.rate, self.overhead, self.log = clock, rate, overhead, []
        self.info = ImplInfo(op="conv2d", name=name, **info)

    def _cost(self, p, direction):
        f = p.flops(direction)
        self.log.append((direction, f))
        self.clock.now += self.overhead + f / self.rate

    def forward(self, p, x, w, b):
        self._cost(p, "forward")
        return np.zeros(p.shapes()["y"], x.dtype)

    def backward(self, p, dy, x, w):
        self._cost(p, "backward")
        s = p.shapes()
        return (np.zeros(s["grad_input"], x.dtype), np.zeros(s["grad_weight"], x.dtype),
                np.zeros(s["grad_bias"], x.dtype) if p.bias else None)


MACHINE = {"id": "test", "hostname": "test", "cpu": "fake", "blas": None, "gpu": None,
           "peak_gflops": {"float32": 10.0, "float64": 5.0}, "peak_gbps": 10.0}
