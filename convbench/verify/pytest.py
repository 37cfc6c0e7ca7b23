"""``parametrize_with_checks``: the conformance suite as a pytest parametrization.

Modelled on scikit-learn's ``parametrize_with_checks``::

    from convbench import parametrize_with_checks

    @parametrize_with_checks(["mypkg.conv:MyConv"], suite="edge")
    def test_conv(impl, check):
        check(impl)

Each test is one (implementation, case, check); ``check(impl)`` raises ``AssertionError`` with
the formatted failure, and calls ``pytest.skip`` when the case is unsupported or the
implementation unavailable, so missing features show as skips, not failures.
"""
from __future__ import annotations

from typing import Any

from convbench.cases import Case, get_suite
from convbench.registry import availability, load_impl
from convbench.verify.checks import CHECKS, run_check
from convbench.records import FAILING
from convbench.verify.report import format_failure
from convbench.verify.runner import full_record, supported_directions

__all__ = ["parametrize_with_checks", "ConformanceCheck"]


class ConformanceCheck:
    """One check on one case, callable as ``check(impl)``; its ``repr`` is the test id."""

    def __init__(self, case: Case, name: str) -> None:
        self.case, self.name = case, name

    def __repr__(self) -> str:
        return f"{self.name}[{self.case.id}]"

    def records(self, impl: Any) -> list[dict[str, Any]]:
        """The check records, without raising."""
        why = availability(impl)
        if why:
            return [full_record(impl, self.case, {"direction": "all", "check": self.name, "status": "skipped",
                                            "max_abs_err": None, "err_ratio": None, "tolerance": None,
                                            "message": why})]
        dirs, unsup = supported_directions(impl, self.case)
        recs = [full_record(impl, self.case, r) for r in unsup]
        if dirs:
            recs += [full_record(impl, self.case, r) for r in run_check(impl, self.case, self.name, dirs)]
        return recs

    def __call__(self, impl: Any) -> list[dict[str, Any]]:
        recs = self.records(impl)
        bad = [r for r in recs if r["status"] in FAILING]
        if bad:
            raise AssertionError("\n\n".join(format_failure(r) for r in bad))
        if not any(r["status"] == "passed" for r in recs):
            import pytest  # deferred: only a check that runs inside a test session skips

            pytest.skip("; ".join(f"{r['direction']}: {r['message']}" for r in recs) or "nothing to check")
        return recs


def _impl_id(impl: Any) -> str:
    return impl.info.name


def parametrize_with_checks(impls_or_specs: list[Any], op: str = "conv2d", suite: str | list[Case] = "edge",
                            checks: list[str] | None = None) -> Any:
    """A ``pytest.mark.parametrize("impl, check", ...)`` over implementations x cases x checks.

    Parameters
    ----------
    impls_or_specs : list
        Implementations, specs (``NAME``, ``file.py:OBJ``, ``pkg.mod:OBJ``) or objects an adapter
        takes (functions, layer classes, torch modules).
    op : str
        The operator.
    suite : str or list of Case
        A suite name (``edge``, ``random``, ``quick``) or the cases themselves.
    checks : list of str, optional
        Names from :data:`convbench.verify.checks.CHECKS` (default all).

    Returns
    -------
    pytest.MarkDecorator
        Decorate ``def test_x(impl, check): check(impl)``.
    """
    import pytest  # deferred: `import convbench` must not load pytest; only this decorator needs it

    impls = [load_impl(s, op=op) for s in impls_or_specs]
    cases = get_suite(suite, op) if isinstance(suite, str) else list(suite)
    names = list(checks) if checks is not None else list(CHECKS)
    params = [pytest.param(impl, ConformanceCheck(case, name), id=f"{_impl_id(impl)}-{case.id}-{name}")
              for impl in impls for case in cases for name in names]
    return pytest.mark.parametrize("impl, check", params)
