"""Run the checks of :mod:`convbench.verify.checks` over implementations x cases.

In-process for trusted code (the shipped families); in a :class:`~convbench.measure.isolate.Worker`
subprocess for implementations that declare ``isolate`` (loaded from files and entry points) or
whenever a timeout is asked for, so a hang becomes ``timeout`` and an abort ``crashed`` instead of
taking the harness down.
"""
from __future__ import annotations

import shlex
import time
from typing import Any, Iterable

from convbench._progress import progress
from convbench.cases import Case
from convbench.measure import guard
from convbench.measure.isolate import Worker, cut
from convbench.registry import availability
from convbench.verify.checks import CHECKS, run_check

__all__ = ["run_checks", "DEFAULT_TIMEOUT", "MAX_TIMEOUTS", "MAX_CRASHES", "repro_command"]

#: seconds per (case, check) call in a subprocess when no --timeout is given
DEFAULT_TIMEOUT = 60.0
#: after this many timeouts (crashes) of one implementation its remaining checks are skipped:
#: a hanging implementation costs a few timeouts, not one per case
MAX_TIMEOUTS = 2
MAX_CRASHES = 3
RECORD_KEYS = ("impl", "op", "case", "direction", "check", "status", "max_abs_err", "err_ratio",
               "tolerance", "message", "repro")


def _loadable(spec: str) -> bool:
    return bool(spec) and not spec.startswith("<")


def repro_command(impl: Any, case: Case) -> str:
    """The shell command that re-runs the checks of ``impl`` on ``case``."""
    spec = impl.info.spec or impl.info.name
    if not _loadable(spec):
        return (f"python -c \"import convbench; convbench.check_impl(YOUR_OBJECT, cases=['{case.descriptor}'])\""
                f"  # {impl.info.name} was given as an object")
    return f"convbench check --op {case.op} --impl {shlex.quote(spec)} --case {case.descriptor}"


def _full(impl: Any, case: Case, partial: dict[str, Any], repro: str | None = None) -> dict[str, Any]:
    rec = {"impl": impl.info.name, "op": case.op, "case": case.id, **partial,
           "repro": repro or repro_command(impl, case)}
    if isinstance(rec.get("message"), str):   # a 5 MB exception text is not a message
        rec["message"] = cut(rec["message"])
    return {k: rec.get(k) for k in RECORD_KEYS}


def _plain(status: str, message: str, direction: str = "all", check: str = "all") -> dict[str, Any]:
    return {"direction": direction, "check": check, "status": status, "max_abs_err": None,
            "err_ratio": None, "tolerance": None, "message": message}


class _Runner:
    """Runs one implementation's checks in-process or in a worker; counts its timeouts and crashes."""

    def __init__(self, impl: Any, timeout: float | None, isolate: bool | None,
                 deadline: _Deadline | None = None) -> None:
        self.impl, self.deadline = impl, deadline
        spec = impl.info.spec or impl.info.name
        want = impl.info.isolate if isolate is None else isolate
        if (timeout is not None or deadline is not None) and isolate is None:
            want = True
        self.isolated = want and _loadable(spec)
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        self.worker = None
        if self.isolated:  # an implementation loaded in a worker already (a user's file) keeps it
            self.worker = getattr(impl, "worker", None) or Worker(spec, impl.info.op)
        self.timeouts = self.crashes = 0

    @property
    def given_up(self) -> str | None:
        if self.deadline is not None and self.deadline.passed:
            return self.deadline.reason
        if self.timeouts >= MAX_TIMEOUTS:
            return f"skipped after {self.timeouts} timeouts of {self.impl.info.name}"
        if self.crashes >= MAX_CRASHES:
            return f"skipped after {self.crashes} crashes of {self.impl.info.name}"
        return None

    def run(self, case: Case, check: str, directions: list[str]) -> list[dict[str, Any]]:
        if self.worker is None:
            return run_check(self.impl, case, check, directions)
        timeout = self.timeout if self.deadline is None else self.deadline.cap(self.timeout)
        res = self.worker.call("convbench.verify.checks:run_check", case, check, directions, timeout=timeout)
        if res.ok:
            return res.value
        if res.status == "timeout":
            self.timeouts += 1
        elif res.status == "crashed":
            self.crashes += 1
        return [_plain(res.status, f"{check} {d}: {res.message}", d, check) for d in directions]

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


class _Deadline:
    """The whole run's end: ``seconds`` from now."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.end = seconds, time.monotonic() + seconds

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.end

    @property
    def reason(self) -> str:
        return "not run: the run's deadline passed"

    def cap(self, timeout: float) -> float:
        """``timeout``, or less so that a call ends by the deadline."""
        return max(min(timeout, self.end - time.monotonic()), 0.1)


def _supported(impl: Any, case: Case) -> tuple[list[str], list[dict[str, Any]]]:
    """(directions to check, unsupported records for the others)."""
    dirs, recs = [], []
    for d in ("forward", "backward"):
        try:
            why = impl.unsupported(case.params, case.dtype, d)
        except Exception as exc:
            why = f"unsupported() raised {type(exc).__name__}: {exc}"
        if why:
            recs.append(_plain("unsupported", why, d))
        else:
            dirs.append(d)
    return dirs, recs


def run_checks(impls: list[Any], cases: list[Case], *, timeout: float | None = None, isolate: bool | None = None,
               progress: bool | None = None, checks: Iterable[str] | None = None,
               shrink: bool = True, deadline: float | None = None) -> list[dict[str, Any]]:
    """Check every implementation on every case; return the check records.

    Parameters
    ----------
    impls : list
        Implementation objects (``convbench.registry.resolve_impls``).
    cases : list of Case
    timeout : float, optional
        Seconds one (case, check) may take. Giving it runs every implementation in a subprocess
        (unless ``isolate=False``); without it, isolated implementations get
        :data:`DEFAULT_TIMEOUT`.
    isolate : bool, optional
        Force subprocess isolation on or off; default: ``ImplInfo.isolate`` (files and entry
        points), or on when ``timeout`` is given.
    progress : bool, optional
        Draw a progress bar; default only on a terminal.
    checks : iterable of str, optional
        Names from :data:`convbench.verify.checks.CHECKS` (default all).
    shrink : bool
        Shrink failures of cases tagged ``random`` to the smallest case still failing.
    deadline : float, optional
        Seconds for the whole run: a check still running then is a ``timeout``, what is left is
        ``skipped`` with that reason. Giving it runs implementations in subprocesses, as
        ``timeout`` does (an in-process check cannot be stopped).

    Returns
    -------
    list of dict
        Records with the keys ``impl, op, case, direction, check, status, max_abs_err,
        err_ratio, tolerance, message, repro``. Never raises because an implementation misbehaves.
    """
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        from convbench._errors import ParamError

        raise ParamError(f"checks must be names from {', '.join(CHECKS)}; got {', '.join(unknown)}")
    out: list[dict[str, Any]] = []
    end = _Deadline(deadline) if deadline is not None else None
    total = len(impls) * len(cases)
    import sys

    stream = sys.stderr if progress is None else (_Tty(sys.stderr) if progress else _NoTty())
    with _progress_bar(total, stream) as advance:
        for impl in impls:
            why = availability(impl)
            if why:
                out += [_full(impl, c, _plain("skipped", why)) for c in cases]
                for c in cases:
                    advance(f"{impl.info.name}")
                continue
            runner = _Runner(impl, timeout, isolate, end)
            try:
                for case in cases:
                    advance(f"{impl.info.name} {case.id}")
                    out += _check_case(runner, impl, case, names, shrink)
            finally:
                runner.close()
    return out


def _check_case(runner: _Runner, impl: Any, case: Case, names: list[str], shrink: bool) -> list[dict[str, Any]]:
    given_up = runner.given_up
    if given_up:   # said without asking the implementation anything (its worker may be gone)
        return [_full(impl, case, _plain("skipped", given_up, d, name)) for name in names
                for d in sorted(impl.info.directions)]
    dirs, unsup = _supported(impl, case)
    recs = [_full(impl, case, r) for r in unsup]
    if not dirs:
        return recs
    too_big = guard.too_big(case)
    if too_big:   # before any array is made
        return recs + [_full(impl, case, _plain("skipped", too_big, d, name)) for name in names for d in dirs]
    for name in names:
        given_up = runner.given_up
        if given_up:
            recs += [_full(impl, case, _plain("skipped", given_up, d, name)) for d in dirs]
            continue
        partial = runner.run(case, name, dirs)
        if shrink and "random" in case.tags and any(r["status"] == "failed" for r in partial):
            from convbench.verify.shrink import shrink_case

            small = shrink_case(case, lambda c: _still_fails(runner, c, name, partial))
            if small.descriptor != case.descriptor:
                repro = repro_command(impl, small)
                recs += [_full(impl, case, {**r, "message": r["message"] + f" (shrunk: still fails on {small.descriptor})"}
                               if r["status"] == "failed" else r, repro if r["status"] == "failed" else None)
                         for r in partial]
                continue
        recs += [_full(impl, case, r) for r in partial]
    return recs


def _still_fails(runner: _Runner, case: Case, name: str, original: list[dict[str, Any]]) -> bool:
    dirs, _ = _supported(runner.impl, case)
    failed = {(r["direction"]) for r in original if r["status"] == "failed"}
    if not dirs or runner.given_up:
        return False
    return any(r["status"] == "failed" and r["direction"] in failed for r in runner.run(case, name, dirs))


class _Tty:
    def __init__(self, s: Any) -> None:
        self._s = s

    def isatty(self) -> bool:
        return True

    def __getattr__(self, k: str) -> Any:
        return getattr(self._s, k)


class _NoTty:
    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def _progress_bar(total: int, stream: Any) -> Any:
    return progress(total, "checking", stream=stream)
