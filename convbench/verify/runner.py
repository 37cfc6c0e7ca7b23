"""Run the checks of :mod:`convbench.verify.checks` over implementations x cases.

In-process for trusted code (the shipped families); in a :class:`~convbench.measure.isolate.Worker`
subprocess for implementations that declare ``isolate`` (loaded from files and entry points) or
whenever a timeout is asked for, so a hang becomes ``timeout`` and an abort ``crashed`` instead of
taking the harness down.
"""
from __future__ import annotations

import shlex
import sys
import time
from typing import Any, Iterable

from convbench._errors import ParamError
from convbench._progress import progress as progress_bar
from convbench.cases import Case
from convbench.execute import HOLD, Outcome, Unit, get_executor, ship_source
from convbench.measure import guard
from convbench.measure.isolate import Worker, cut
from convbench.measure.machine import fingerprint, here_worker
from convbench.ops import DIRECTIONS
from convbench.registry import availability
from convbench.verify.checks import CHECKS, run_check
from convbench.verify.shrink import shrink_case

__all__ = ["run_checks", "check_unit", "DEFAULT_TIMEOUT", "MAX_TIMEOUTS", "MAX_CRASHES", "repro_command"]

#: seconds per (case, check) call in a subprocess when no --timeout is given
DEFAULT_TIMEOUT = 60.0
#: after this many timeouts (crashes) of one implementation its remaining checks are skipped:
#: a hanging implementation costs a few timeouts, not one per case
MAX_TIMEOUTS = 2
MAX_CRASHES = 3
#: a unit that may shrink a failure gets this many times the check's timeout (shrinking repeats the
#: check on ever smaller cases, each cheaper than the first)
SHRINK_ALLOWANCE = 4
#: below this many checks the local executor's pool is not started (unless jobs are asked for):
#: its processes take a second or two to start (imports), more than a few hundred checks take
POOL_MIN_UNITS = 300
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


def full_record(impl: Any, case: Case, partial: dict[str, Any], repro: str | None = None) -> dict[str, Any]:
    """A check record from what a check filled in (``partial``): the implementation, case and repro added."""
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


def supported_directions(impl: Any, case: Case) -> tuple[list[str], list[dict[str, Any]]]:
    """(directions to check, unsupported records for the others)."""
    dirs, recs = [], []
    for d in DIRECTIONS:
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
               shrink: bool = True, deadline: float | None = None, executor: Any = "local",
               jobs: int | None = None, sink: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
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
        points), or on when ``timeout`` is given. ``False`` runs everything here, one check after
        another.
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
    executor : str or executor
        ``"local"`` (default): the checks of implementations named by a spec run in parallel in
        ``jobs`` isolated processes; ``"dask://HOST:PORT"``: on the workers of that Dask cluster
        (see :func:`convbench.execute.get_executor`). Implementations given as objects run here.
    jobs : int, optional
        Processes of the local executor (default: the cores; 1 checks one at a time, here). Without
        it, fewer than :data:`POOL_MIN_UNITS` checks run here, one at a time: starting the pool
        would cost more than it saves. A ``deadline`` runs the checks here, one at a time.
    sink : list, optional
        The records are also appended to it as their checks finish (a case at a time here, a unit
        at a time through an executor): what a caller interrupted by Ctrl-C or SIGTERM keeps.

    Returns
    -------
    list of dict
        Records with the keys ``impl, op, case, direction, check, status, max_abs_err,
        err_ratio, tolerance, message, repro``, plus ``worker`` and ``machine`` (the fingerprint
        id) where they were made, in the order of a serial run whichever executor made them.
        Never raises because an implementation misbehaves.
    """
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ParamError(f"checks must be names from {', '.join(CHECKS)}; got {', '.join(unknown)}")
    end = _Deadline(deadline) if deadline is not None else None
    ex = get_executor(executor, jobs)
    shippable = sum(1 for m in impls if _loadable(m.info.spec or m.info.name))
    pooled = isolate is not False and shippable and end is None and (
        ex.remote or (ex.jobs > 1 and (ex.explicit or shippable * len(cases) * len(names) >= POOL_MIN_UNITS)))
    try:
        with progress_bar(len(impls) * len(cases), "checking", stream=sys.stderr, show=progress) as advance:
            if not pooled:
                out: list[dict[str, Any]] = []
                for impl in impls:
                    out += _serial(impl, cases, names, timeout, isolate, shrink, advance, end, sink)
                return out
            return _pooled(ex, impls, cases, names, timeout, shrink, advance, sink)
    finally:
        if ex is not executor:  # made here from its name: its processes or connection end here
            ex.close()


def _serial(impl: Any, cases: list[Case], names: list[str], timeout: float | None, isolate: bool | None,
            shrink: bool, advance: Any, end: Any = None, sink: list[dict[str, Any]] | None = None
            ) -> list[dict[str, Any]]:
    """One implementation's checks here, one after another (in a worker when it is isolated);
    each case's records, marked as made here, go to ``sink`` too as soon as they are done."""
    why = availability(impl)
    if why:
        for c in cases:
            advance(f"{impl.info.name}")
        out = _mark([full_record(impl, c, _plain("skipped", why)) for c in cases], None)
        if sink is not None:
            sink += out
        return out
    out = []
    runner = _Runner(impl, timeout, isolate, end)
    try:
        for case in cases:
            advance(f"{impl.info.name} {case.id}")
            recs = _mark(_check_case(runner, impl, case, names, shrink), None)
            out += recs
            if sink is not None:
                sink += recs
    finally:
        runner.close()
    return out


def _check_case(runner: _Runner, impl: Any, case: Case, names: list[str], shrink: bool) -> list[dict[str, Any]]:
    given_up = runner.given_up
    if given_up:   # said without asking the implementation anything (its worker may be gone)
        return [full_record(impl, case, _plain("skipped", given_up, d, name)) for name in names
                for d in sorted(impl.info.directions)]
    dirs, unsup = supported_directions(impl, case)
    recs = [full_record(impl, case, r) for r in unsup]
    if not dirs:
        return recs
    too_big = guard.too_big(case)
    if too_big:   # before any array is made
        return recs + [full_record(impl, case, _plain("skipped", too_big, d, name)) for name in names for d in dirs]
    for name in names:
        given_up = runner.given_up
        if given_up:
            recs += [full_record(impl, case, _plain("skipped", given_up, d, name)) for d in dirs]
            continue
        recs += _check_one(runner, impl, case, name, dirs, shrink)
    return recs


def _check_one(runner: _Runner, impl: Any, case: Case, name: str, dirs: list[str], shrink: bool) -> list[dict[str, Any]]:
    """The records of one check of ``case`` (its failure on a random case shrunk)."""
    partial = runner.run(case, name, dirs)
    if shrink and "random" in case.tags and any(r["status"] == "failed" for r in partial):
        small = shrink_case(case, lambda c: _still_fails(runner, c, name, partial))
        if small.descriptor != case.descriptor:
            repro = repro_command(impl, small)
            return [full_record(impl, case, {**r, "message": r["message"] + f" (shrunk: still fails on {small.descriptor})"}
                          if r["status"] == "failed" else r, repro if r["status"] == "failed" else None)
                    for r in partial]
    return [full_record(impl, case, r) for r in partial]


def check_unit(impl: Any, unit: Unit) -> list[dict[str, Any]]:
    """Run one unit of kind ``check`` here: ``unit.options["check"]`` on ``unit.case`` in
    ``unit.directions`` (a failure on a random case shrunk when ``options["shrink"]``)."""
    runner = _Runner(impl, None, False)
    return _check_one(runner, impl, unit.case, unit.options["check"], list(unit.directions),
                      unit.options.get("shrink", True))


# --- many checks at once, through an executor ---------------------------------------------------

_HERE: dict[str, Any] = {}


def _mark(records: list[dict[str, Any]], out: Outcome | None) -> list[dict[str, Any]]:
    """Give each record the worker and machine that made it (this process when ``out`` is None)."""
    if out is None:
        if not _HERE:
            fp = fingerprint()
            _HERE.update(worker=here_worker(), machine=fp["id"])
        worker, machine = _HERE["worker"], _HERE["machine"]
    else:
        worker, machine = out.worker, out.machine
    for r in records:
        r["worker"], r["machine"] = worker, machine
    return records


class _Tally:
    """Timeouts and crashes per implementation, and the implementations to run here instead.

    Once an implementation has timed out or crashed, its units run one at a time (``exact``: the
    local executor asks before each start), so it gives up after as many timeouts (crashes) as a
    serial run would, plus at most those already running elsewhere at the first one.
    """

    def __init__(self, exact: bool) -> None:
        self.exact = exact
        self.timeouts: dict[str, int] = {}
        self.crashes: dict[str, int] = {}
        self.running: dict[str, set[int]] = {}  # units started and not yet back, by index
        self.here: set[str] = set()

    def note(self, out: Outcome) -> None:
        name = out.unit.name
        self.running.get(name, set()).discard(out.unit.index)
        if out.status == "timeout":
            self.timeouts[name] = self.timeouts.get(name, 0) + 1
        elif out.status == "crashed":
            self.crashes[name] = self.crashes.get(name, 0) + 1

    def given_up(self, name: str) -> str | None:
        if self.timeouts.get(name, 0) >= MAX_TIMEOUTS:
            return f"skipped after {self.timeouts[name]} timeouts of {name}"
        if self.crashes.get(name, 0) >= MAX_CRASHES:
            return f"skipped after {self.crashes[name]} crashes of {name}"
        return None

    def skip(self, unit: Unit) -> str | None:
        name = unit.name
        why = _RUN_HERE if name in self.here else self.given_up(name)
        if why or not self.exact:
            return why
        if (self.timeouts.get(name) or self.crashes.get(name)) and self.running.get(name):
            return HOLD
        self.running.setdefault(name, set()).add(unit.index)  # a unit run again is still one
        return None


_RUN_HERE = "run in the client: workers cannot load it"


def _pooled(ex: Any, impls: list[Any], cases: list[Case], names: list[str], timeout: float | None,
            shrink: bool, advance: Any, sink: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every check of the implementations named by a spec as units through ``ex``; the others (given
    as objects) here. Records come back in the order of a serial run."""
    per = timeout if timeout is not None else DEFAULT_TIMEOUT
    cells: dict[tuple[int, int], list[dict[str, Any]]] = {}
    parts: dict[int, list[dict[str, Any]]] = {}
    left: dict[tuple[int, int], int] = {}
    units: list[Unit] = []
    here: list[int] = []
    nc, nn = len(cases), len(names)
    for i, impl in enumerate(impls):
        spec = impl.info.spec or impl.info.name
        if availability(impl) or not _loadable(spec):
            here.append(i)
            continue
        source = ship_source(spec)
        for j, case in enumerate(cases):
            dirs, unsup = supported_directions(impl, case)
            cells[i, j] = _mark([full_record(impl, case, r) for r in unsup], None)
            left[i, j] = len(names) if dirs else 0
            if not dirs:
                advance(f"{impl.info.name} {case.id}")
                if sink is not None:
                    sink += cells[i, j]
            for k, name in enumerate(names):
                if dirs:
                    units.append(Unit("check", spec, impl.info.name, case.op, case, tuple(dirs), index=(i * nc + j) * nn + k,
                                      timeout=per * (SHRINK_ALLOWANCE if shrink and "random" in case.tags else 1),
                                      options={"check": name, "shrink": shrink}, source=source))
    tally = _Tally(exact=not ex.remote)
    for out in ex.run(units, skip=tally.skip, note=tally.note):
        u = out.unit
        i, rest = divmod(u.index, nc * nn)
        j, k = divmod(rest, nn)
        parts[u.index] = _unit_records(ex, impls[i], out, tally)
        if sink is not None:
            sink += parts[u.index] + (cells[i, j] if left[i, j] == len(names) else [])
        left[i, j] -= 1
        if not left[i, j]:
            advance(f"{u.name} {u.case.id}")
    serial = {i: _serial(impls[i], cases, names, timeout, None, shrink, advance, sink=sink) for i in here}
    records: list[dict[str, Any]] = []
    for i in range(len(impls)):
        if i in serial:
            records += serial[i]
            continue
        for j in range(nc):
            records += cells[i, j]
            for k in range(nn):
                records += parts.get((i * nc + j) * nn + k, [])
    return records


def _unit_records(ex: Any, impl: Any, out: Outcome, tally: _Tally) -> list[dict[str, Any]]:
    u, check = out.unit, out.unit.options["check"]
    if out.status == "ok":
        return _mark(out.records, out)
    if out.status == "unloadable" and not ex.remote or out.message == _RUN_HERE:
        # a name registered in this process only (a script's own @register): run it here
        tally.here.add(u.name)
        return _mark(check_unit(impl, u), None)
    status = "error" if out.status == "unloadable" else out.status
    message = out.message if status == "skipped" else f"{check} {'+'.join(u.directions)}: {out.message}"
    return _mark([full_record(impl, u.case, _plain(status, message, d, check)) for d in u.directions], out)


def _still_fails(runner: _Runner, case: Case, name: str, original: list[dict[str, Any]]) -> bool:
    dirs, _ = supported_directions(runner.impl, case)
    failed = {(r["direction"]) for r in original if r["status"] == "failed"}
    if not dirs or runner.given_up:
        return False
    return any(r["status"] == "failed" and r["direction"] in failed for r in runner.run(case, name, dirs))
