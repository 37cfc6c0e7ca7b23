"""Shrink a failing case to the smallest case that still fails (greedy, like hypothesis does).

Works on any operator's parameter dataclass: integers are lowered (to their minimum, halved, minus
one), pairs one side at a time, string paddings replaced by numbers, flags switched off. A
candidate that is invalid (``ParamError``) is skipped; one that still fails is kept and the
search starts over from it, until no candidate fails or ``max_tries`` calls were spent.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

from convbench.cases import Case

__all__ = ["shrink_case", "size"]

_MIN = {"n": 1, "c": 1, "h": 1, "w": 1, "o": 1, "kh": 1, "kw": 1, "l": 1, "k": 1,
        "stride": 1, "dilation": 1, "groups": 1, "padding": 0}


def size(case: Case) -> tuple[int, ...]:
    """Sort key: smaller means simpler (elements of the output, then the sum of the parameters)."""
    p = case.params
    flat = []
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if isinstance(v, bool):
            flat.append(int(v))
        elif isinstance(v, int):
            flat.append(v)
        elif isinstance(v, tuple):
            flat += [x for x in v if isinstance(x, int)]
        elif isinstance(v, str):
            flat.append(1)
    shp = p.shapes()
    elems = sum(int(__import__("math").prod(s)) for s in shp.values())
    return (elems, sum(flat))


def _lower(v: int, lo: int) -> list[int]:
    return sorted({x for x in (lo, v // 2, v - 1) if lo <= x < v})


def _candidates(p: Any) -> Iterator[dict[str, Any]]:
    for f in dataclasses.fields(p):
        v, lo = getattr(p, f.name), _MIN.get(f.name, 0)
        if isinstance(v, bool):
            if v:
                yield {f.name: False}
        elif isinstance(v, int):
            for x in _lower(v, lo):
                yield {f.name: x}
                if f.name in ("c", "o"):  # keep groups dividing both
                    yield {f.name: x, "groups": 1}
        elif isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
            for i in (0, 1):
                for x in _lower(v[i], lo):
                    yield {f.name: (x, v[1]) if i == 0 else (v[0], x)}
        elif isinstance(v, str) and f.name == "padding":
            yield {f.name: (0, 0)}
            pads = getattr(p, "pads", None)
            if pads:
                yield {f.name: (pads[0], pads[2])}


def shrink_case(case: Case, still_fails: Callable[[Case], bool], max_tries: int = 60) -> Case:
    """The smallest case reachable from ``case`` on which ``still_fails`` is true.

    Parameters
    ----------
    case : Case
        A case known to fail.
    still_fails : callable
        ``still_fails(candidate) -> bool``; should not raise (exceptions count as "does not fail").
    max_tries : int
        Most calls of ``still_fails``.
    """
    best, tries = case, 0
    improved = True
    while improved and tries < max_tries:
        improved = False
        cands = []
        for change in _candidates(best.params):
            try:
                q = dataclasses.replace(best.params, **change)
            except (ValueError, TypeError):
                continue
            cands.append(dataclasses.replace(best, id=q.descriptor, params=q, tags=()))
        cands.sort(key=size)
        for c in cands:
            if tries >= max_tries:
                break
            if size(c) >= size(best):
                continue
            tries += 1
            try:
                ok = still_fails(c)
            except Exception:
                ok = False
            if ok:
                best, improved = c, True
                break
    return best
