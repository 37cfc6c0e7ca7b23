"""A slot: one isolated child process that runs units one after another, for one named worker.

Both executors run units through slots: the local executor owns one per job, a Dask worker one
per thread. An implementation that hangs or dies takes its child down, never the slot's owner;
benchmarks take the host's lock first, so no two timed calls on one machine overlap.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

from convbench.execute.units import Outcome, Unit
from convbench.measure.isolate import Worker

__all__ = ["Slot", "bench_lock", "bench_lock_path"]


def bench_lock_path() -> Path:
    """The per-host lock every benchmark unit holds while it runs: ``convbench-bench-HOST.lock`` in
    the temporary directory (``$CONVBENCH_BENCH_LOCK`` names another file, e.g. one every
    worker of a host sees when their ``TMPDIR`` differ)."""
    env = os.environ.get("CONVBENCH_BENCH_LOCK")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"convbench-bench-{socket.gethostname()}.lock"


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """Hold the host's benchmark lock (``fcntl.flock``: released when the holder dies, too)."""
    path = bench_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


class Slot:
    """Runs units in a child process of its own; ``name`` is the worker name records carry.

    Parameters
    ----------
    name : str
        The worker's name (``HOST/local-0``, a Dask worker's name).
    share : int
        Slots running side by side on this machine: the child's memory limit is that share of
        what the machine has available.
    """

    def __init__(self, name: str, share: int = 1) -> None:
        self.name = name
        self.machine: Any = None  # the fingerprint id the child last reported
        self._worker = Worker(share=share)

    def run(self, unit: Unit) -> Outcome:
        """Run ``unit`` in the child; never raises because of what the implementation did."""
        guard = bench_lock() if unit.kind == "bench" else contextlib.nullcontext()
        with guard:
            res = self._worker.call("convbench.execute.units:run_unit", unit, self.name, timeout=unit.timeout)
        if res.ok:
            value = res.value
            self.machine = value.get("machine")
            if "unloadable" in value:
                return Outcome(unit, "unloadable", message=value["unloadable"], worker=self.name, machine=self.machine)
            return Outcome(unit, "ok", value["records"], worker=self.name, machine=self.machine)
        message = res.message if res.status != "error" else _first_line(res.message)
        return Outcome(unit, res.status, message=message, worker=self.name, machine=self.machine)

    def kill(self) -> None:
        """Stop the child now (a unit it was running is abandoned)."""
        self._worker._kill()

    def close(self) -> None:
        self._worker.close()
