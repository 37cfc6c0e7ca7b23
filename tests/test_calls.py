"""The prepared call every front end times: inputs prepared beforehand, one call, sync on request."""
from __future__ import annotations

import numpy as np
import pytest

from convbench import ParamError
from convbench.cases import parse_descriptor
from convbench.measure.calls import prepared_call

from _fakes import FakeConv, MockClock


class _Logged(FakeConv):
    def __init__(self) -> None:
        super().__init__(MockClock(), "logged")
        self.events = []

    def prepare(self, *arrays):
        self.events.append(("prepare", len(arrays)))
        return arrays

    def sync(self):
        self.events.append(("sync",))

    def forward(self, p, x, w, b):
        self.events.append(("forward", x.shape))
        return super().forward(p, x, w, b)

    def backward(self, p, dy, x, w):
        self.events.append(("backward", dy.shape))
        return super().backward(p, dy, x, w)


def test_preparation_is_done_before_the_call_and_each_call_is_one_call():
    impl, case = _Logged(), parse_descriptor("n2c3h6w6o4k3")
    call = prepared_call(impl, case, "forward")
    assert impl.events == [("prepare", 3), ("sync",)]     # x, w, b converted once, untimed
    impl.events.clear()
    y = call()
    assert impl.events == [("forward", (2, 3, 6, 6))] and y.shape == (2, 4, 4, 4)
    call = prepared_call(impl, case, "backward")
    impl.events.clear()
    call()
    assert impl.events == [("backward", (2, 4, 4, 4))]


def test_sync_ends_every_call_when_asked():
    impl = _Logged()
    call = prepared_call(impl, parse_descriptor("n1c2h5w5o2k3"), "forward", sync=True)
    impl.events.clear()
    call()
    call()
    assert impl.events == [("forward", (1, 2, 5, 5)), ("sync",)] * 2


def test_inputs_are_fixed_by_the_seed_or_given():
    seen = []

    class Keep(_Logged):
        def forward(self, p, x, w, b):
            seen.append(x.copy())
            return super().forward(p, x, w, b)

    case = parse_descriptor("n1c2h5w5o2k3")
    prepared_call(Keep(), case, "forward")()
    prepared_call(Keep(), case, "forward")()
    prepared_call(Keep(), case, "forward", seed=1)()
    mine = {"x": np.ones((1, 2, 5, 5), np.float32), "w": np.ones((2, 2, 3, 3), np.float32), "b": None}
    prepared_call(Keep(), case, "forward", inputs=mine)()
    assert np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[0], seen[2])
    assert np.array_equal(seen[3], mine["x"])


def test_a_bad_direction_is_named():
    with pytest.raises(ParamError, match="direction must be one of forward, backward, got 'sideways'"):
        prepared_call(_Logged(), parse_descriptor("n1c2h5w5o2k3"), "sideways")
