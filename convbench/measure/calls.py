"""The prepared call: one call of an implementation, inputs made and converted beforehand.

Every front end times this one function: the bench runner (:mod:`convbench.measure.bench`), the
asv suite and the pytest-benchmark suite. Making the inputs and converting them to the
implementation's native arrays (``prepare``) happen here, untimed; what is returned makes exactly
one call of ``forward`` or ``backward``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from convbench._errors import ParamError
from convbench.ops import DIRECTIONS, get_op

__all__ = ["prepared_call"]


def prepared_call(impl: Any, case: Any, direction: str, *, inputs: dict[str, np.ndarray] | None = None,
                  seed: int = 0, sync: bool = False) -> Callable[[], Any]:
    """A no-argument function making one call of ``direction`` on prepared, native inputs.

    Parameters
    ----------
    impl : Implementation
        The implementation (``prepare``, ``forward``, ``backward``, ``sync``).
    case : Case
        The call: operator, parameters, dtype.
    direction : str
        ``forward`` or ``backward``.
    inputs : dict of str to ndarray, optional
        The operator's named inputs (``make_inputs``); default: random normal data from ``seed``.
    seed : int
        Seed of the inputs made when ``inputs`` is not given (fixed, so every implementation and
        every commit times the same numbers).
    sync : bool
        End each call with ``impl.sync()``, so a device implementation is timed to completion by
        a caller that times the call alone (asv, pytest-benchmark). The bench timer syncs around
        its blocks itself and takes the call without it.

    Returns
    -------
    callable
        ``call()`` returning what the implementation returns.
    """
    if direction not in DIRECTIONS:
        raise ParamError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    op = get_op(case.op)
    p = case.params
    arrays = inputs if inputs is not None else op.make_inputs(p, case.dtype, fill="random", seed=seed)
    names = op.forward_inputs if direction == "forward" else op.backward_inputs
    native = impl.prepare(*[arrays.get(n) for n in names])
    fn = impl.forward if direction == "forward" else impl.backward
    impl.sync()   # the preparation's device work is done before any timing starts
    if not sync:
        return lambda: fn(p, *native)
    barrier = impl.sync

    def call() -> Any:
        out = fn(p, *native)
        barrier()
        return out

    return call
