"""Looking suites up by name, and the cases a command line names (``--suite``, ``--case``)."""
from __future__ import annotations

from convbench._errors import ParamError
from convbench.cases import catalogue  # noqa: F401  - importing the catalogue registers its suites
from convbench.cases.case import Case
from convbench.cases.descriptor import parse_descriptor
from convbench.cases.table import names, registered
from convbench.ops import get_op

__all__ = ["get_suite", "suite_names", "cases_from", "with_dtype", "DTYPE_CHOICES"]


def suite_names(op: str = "conv2d") -> list[str]:
    """The names of the suites defined for ``op``, sorted."""
    return names(op)


def get_suite(name: str, op: str = "conv2d") -> list[Case]:
    """The cases of suite ``name``; ``ParamError`` naming the known suites otherwise."""
    get_op(op)
    fn = registered(op, name)
    if fn is None:
        raise ParamError(f"suite {name!r} is not defined for {op}; known: {', '.join(suite_names(op))}")
    return fn()


def cases_from(op: str, suites: list[str] | None = None, descriptors: list[str] | None = None,
               default: str = "quick") -> list[Case]:
    """Cases named by ``--suite`` and ``--case`` arguments (``default`` suite when neither given)."""
    out: list[Case] = []
    for s in suites or []:
        out += get_suite(s, op)
    for d in descriptors or []:
        out.append(parse_descriptor(d, op))
    if not suites and not descriptors:
        out = get_suite(default, op)
    seen, uniq = set(), []
    for c in out:
        if c.descriptor not in seen:  # the same call named twice runs once
            seen.add(c.descriptor)
            uniq.append(c)
    return uniq


#: what ``--dtype`` takes: one dtype for every case, or each case at the suite's own dtype
DTYPE_CHOICES = ("float32", "float64", "all")


def with_dtype(cases: list[Case], dtype: str | None) -> list[Case]:
    """``cases`` at ``dtype`` (``float32``, ``float64``), or as they are for ``all`` or None (the
    suite's own dtypes: mostly float32, a few float64); a case named twice runs once.

    Raises
    ------
    ParamError
        ``dtype`` is none of :data:`DTYPE_CHOICES`.
    """
    if dtype is None or dtype == "all":
        return list(cases)
    if dtype not in DTYPE_CHOICES:
        raise ParamError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    seen, out = set(), []
    for c in cases:
        c = c.with_dtype(dtype)
        if c.descriptor not in seen:
            seen.add(c.descriptor)
            out.append(c)
    return out
