"""Verification: the float64 oracle, the error bounds, the checks, and the ways to run them.

``run_checks(impls, cases)`` gives check records (``convbench check``); ``format_report`` turns
them into text; ``check_impl`` checks one implementation without pytest;
``parametrize_with_checks`` makes the same checks a pytest parametrization.
"""
from __future__ import annotations

from typing import Any

from convbench._errors import ParamError
from convbench.cases import Case, cases_from, with_dtype
from convbench.measure.remote import LoadError, is_user_spec, load_isolated
from convbench.registry import load_impl
from convbench.verify.checks import CHECKS
from convbench.verify.pytest import parametrize_with_checks
from convbench.verify.report import format_report
from convbench.verify.runner import run_checks

__all__ = ["run_checks", "format_report", "check_impl", "parametrize_with_checks", "CHECKS"]


def check_impl(spec_or_impl: Any, op: str | None = None, suite: str | None = "quick",
               cases: list[str | Case] | None = None, dtype: str = "all", **kwargs: Any) -> list[dict[str, Any]]:
    """Check one implementation; return its check records (no pytest needed).

    Parameters
    ----------
    spec_or_impl : str or object
        A spec (``NAME``, ``file.py:OBJ``, ``pkg.mod:OBJ``), an implementation, or an object an
        adapter takes (a function, a seed-style layer class, a torch module).
    op : str, optional
        The operator (default: the implementation's, else ``conv2d``).
    suite : str, optional
        Suite of cases (default ``quick``); ignored when ``cases`` is given.
    cases : list of str or Case, optional
        Descriptors (``n2c3h7w7o4k3``) or cases to check instead of a suite.
    dtype : {'all', 'float32', 'float64'}
        Every case at this dtype (code that computes in float64 is checked at its own precision
        with ``'float64'``), or ``'all'``: each case at the suite's own dtype.
    **kwargs
        Passed to :func:`run_checks` (``timeout``, ``isolate``, ``checks``, ...).

    Returns
    -------
    list of dict
        Check records; ``format_report(records)`` prints them.

    Raises
    ------
    ParamError
        The spec cannot be loaded (no such file or object, or its import raised, exited or hung);
        a file or module spec is imported only in an isolated worker (unless ``isolate=False``),
        so nothing it does at import reaches the calling process.

    Examples
    --------
    >>> import convbench                                          # doctest: +SKIP
    >>> recs = convbench.check_impl("layers.py:Conv2D", suite="edge")
    >>> print(convbench.verify.format_report(recs))
    """
    if is_user_spec(spec_or_impl) and kwargs.get("isolate", True) is not False:
        try:
            impl = load_isolated(spec_or_impl, op, kwargs.get("timeout"))
        except LoadError as exc:
            raise ParamError(f"impl spec {spec_or_impl!r}: {exc}") from None
    else:
        impl = load_impl(spec_or_impl, op=op)
    op = op or impl.info.op
    if isinstance(cases, (str, Case)):  # one descriptor or case, not a sequence of characters
        cases = [cases]
    if cases is not None:
        descs = [c for c in cases if isinstance(c, str)]
        chosen = [c for c in cases if isinstance(c, Case)] + cases_from(op, None, descs) if descs else list(cases)
    else:
        chosen = cases_from(op, [suite] if suite else None, None)
    return run_checks([impl], with_dtype(chosen, dtype), **kwargs)
