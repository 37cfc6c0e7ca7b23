"""Units of work and how one is run where it lands.

A :class:`Unit` is one implementation x one case x a set of directions, of one kind: ``check``
(every check of that case) or ``bench`` (one timed measurement). The kind's function is named by
a string (:data:`KINDS`) and imported where the unit runs: the executors carry units without
knowing what checking or timing is.

:func:`run_unit` is what runs inside a worker's isolated child process: it loads the
implementation (from the source shipped with the unit when its file is not there), calls the
kind's function and returns its records with the machine and worker that made them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import os
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from convbench._errors import ParamError
from convbench.cases import Case
from convbench.measure.machine import fingerprint, machine_record, peaks
from convbench.registry import get_impl, load_impl

__all__ = ["Unit", "Outcome", "KINDS", "HOLD", "run_unit", "ship_source", "UnitLoadError", "worker_machine"]

#: the function that runs a unit of each kind, ``f(impl, unit) -> list of records``
KINDS = {"check": "convbench.verify.runner:check_unit", "bench": "convbench.measure.fleet:bench_unit"}


#: what a ``skip`` callback returns for "not yet": the unit waits until others have finished
HOLD = "hold"


@dataclass(frozen=True)
class Unit:
    """One unit of work: an implementation x a case x directions, of one kind.

    ``spec`` is the implementation's spec as the client resolved it (an absolute path for a file),
    ``name`` the implementation it names (a file may register several), ``source`` the file's
    ``(name, text)`` shipped for workers that do not have it, ``index`` the unit's place in the
    run (results are put back in that order), ``timeout`` the seconds it may take, and
    ``options`` the kind's own settings.
    """

    kind: str
    spec: str
    name: str
    op: str
    case: Case
    directions: tuple[str, ...]
    index: int = 0
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    source: tuple[str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} {self.case.id} {'+'.join(self.directions)}"


@dataclass
class Outcome:
    """What came back for a unit: ``status`` ``ok`` (``records`` holds its records), or ``error``,
    ``timeout``, ``crashed``, ``unloadable`` (the worker could not load the implementation) and
    ``skipped`` with ``message``; ``worker`` and ``machine`` (the fingerprint id) say where it ran."""

    unit: Unit
    status: str
    records: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    worker: str | None = None
    machine: Any = None


class UnitLoadError(Exception):
    """A worker could not load a unit's implementation."""


def ship_source(spec: str) -> tuple[str, str] | None:
    """``(file name, text)`` of a file spec (``/abs/file.py:OBJ``), else None."""
    target, sep, _ = spec.rpartition(":")
    if not sep or not target.endswith(".py"):
        return None
    try:
        return Path(target).name, Path(target).read_text()
    except OSError:
        return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _local_spec(unit: Unit) -> str:
    """The spec to load here: the file itself when it is here with the same text, else a copy of
    the shipped source (kept per content, so a changed file is never mistaken for the old one)."""
    if unit.source is None:
        return unit.spec
    target, _, obj = unit.spec.rpartition(":")
    name, text = unit.source
    try:
        if Path(target).read_text() == text:
            return unit.spec
    except OSError:
        pass
    where = Path(tempfile.gettempdir()) / f"convbench-shipped-{_digest(text)}"
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    if not path.exists():
        tmp = where / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text)
        tmp.replace(path)
    return f"{path}:{obj}"


_LOADED: dict[tuple[str, str, str, str], Any] = {}


def _load(unit: Unit, worker: str) -> Any:
    key = (unit.spec, unit.name, unit.op, _digest(unit.source[1]) if unit.source else "")
    if key in _LOADED:
        return _LOADED[key]
    try:
        impl = load_impl(_local_spec(unit), op=unit.op)
        if impl.info.name != unit.name:
            impl = get_impl(unit.name, unit.op)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ParamError) else str(exc)
        if unit.source is None and (":" not in unit.spec or not unit.spec.partition(":")[0].endswith(".py")):
            why += (f"; a registered name or module needs the package that provides it installed on every "
                    f"worker (here: {worker})")
        raise UnitLoadError(f"worker {worker} cannot load {unit.spec!r}: {why}") from None
    # records name the implementation as the client knows it (repro commands use its spec)
    impl.info = dataclasses.replace(impl.info, spec=unit.spec)
    _LOADED[key] = impl
    return impl


_MACHINE: dict[str, Any] = {}


def worker_machine(with_peaks: bool = False) -> dict[str, Any]:
    """This process's machine: the fingerprint, and with ``with_peaks`` the record bench records
    carry (peaks measured afresh once per worker process, then kept)."""
    if "fp" not in _MACHINE:
        _MACHINE["fp"] = fingerprint()
    if with_peaks and "record" not in _MACHINE:
        fp = _MACHINE["fp"]
        _MACHINE["record"] = machine_record(fp, peaks(fp, refresh=True))
    return _MACHINE["record"] if with_peaks else {"id": _MACHINE["fp"]["id"], "hostname": _MACHINE["fp"]["hostname"]}


_THREADS: dict[str, Any] = {}


def _one_thread(on: bool, impl: Any = None) -> None:
    """Checks run one thread each (BLAS, OpenMP, torch): a pool of processes is the parallelism,
    and their thread pools on top would fight for the same cores (OpenBLAS's threads busy-wait).
    torch is imported first for a torch implementation (its own calls would import it after the
    limit, with its default threads), and a library some other code loaded since the last unit is
    limited at the next one: a check's numbers must not depend on which units its process ran
    before (torch's rounding differs between one thread and two). Benchmarks get the machine's
    threads back (their runner sets what ``--threads`` asks)."""
    if not on:
        if _THREADS:
            _THREADS.pop("limiter").restore_original_limits()
            if "torch" in _THREADS:
                sys.modules["torch"].set_num_threads(_THREADS["torch"])
            _THREADS.clear()
        return
    from threadpoolctl import threadpool_limits  # deferred: only worker processes need it

    if impl is not None and impl.info.backend == "torch" and "torch" not in sys.modules:
        with contextlib.suppress(ImportError):
            import torch  # noqa: F401  (deferred: seconds, and only torch implementations need it)
    torch = sys.modules.get("torch")
    if not _THREADS:
        _THREADS["limiter"] = threadpool_limits(limits=1)
    elif torch is not None and "torch" not in _THREADS:
        threadpool_limits(limits=1)   # the libraries loaded since (torch's OpenMP)
    if torch is not None and "torch" not in _THREADS:
        _THREADS["torch"] = torch.get_num_threads()
        torch.set_num_threads(1)


def _resolve(fn: str) -> Callable[..., Any]:
    mod, _, name = fn.partition(":")
    return getattr(importlib.import_module(mod), name)


def run_unit(unit: Unit, worker: str | None = None) -> dict[str, Any]:
    """Run ``unit`` here; return ``{"records", "worker", "machine"}`` (``machine`` the fingerprint id).

    When the implementation cannot be loaded here, ``{"unloadable": message, ...}`` instead of
    records; the kind's function never raises for what an implementation does.
    """
    worker = worker or f"{socket.gethostname()}-{os.getpid()}"
    if unit.kind not in KINDS:
        raise ParamError(f"unit kind must be one of {', '.join(KINDS)}, got {unit.kind!r}")
    try:
        impl = _load(unit, worker)
    except UnitLoadError as exc:
        return {"unloadable": str(exc), "worker": worker, "machine": worker_machine()["id"]}
    machine = worker_machine()["id"]  # fingerprinted with the machine's threads, before limiting them
    _one_thread(unit.kind == "check", impl)
    records = _resolve(KINDS[unit.kind])(impl, unit)
    return {"records": records, "worker": worker, "machine": machine}
