"""The table of suites: :func:`suite` registers a function returning a suite's cases under
``(op, name)``. The catalogue registers its suites here; code outside convbench may add its own."""
from __future__ import annotations

from typing import Callable

from convbench.cases.case import Case

__all__ = ["suite", "registered", "names"]

_SUITES: dict[tuple[str, str], Callable[[], list[Case]]] = {}


def suite(op: str, name: str) -> Callable[[Callable[[], list[Case]]], Callable[[], list[Case]]]:
    """Register a function returning the cases of suite ``name`` for ``op``."""

    def deco(fn: Callable[[], list[Case]]) -> Callable[[], list[Case]]:
        _SUITES[(op, name)] = fn
        return fn

    return deco


def registered(op: str, name: str) -> Callable[[], list[Case]] | None:
    """The function registered for suite ``name`` of ``op``, or None."""
    return _SUITES.get((op, name))


def names(op: str) -> list[str]:
    """The names of the suites registered for ``op``, sorted."""
    return sorted(n for o, n in _SUITES if o == op)
