"""The local executor: a pool of isolated worker processes on this machine.

Each job is a thread owning a :class:`~convbench.execute.slot.Slot` (a child process); units are
taken from one queue, so a slow unit never holds the others back. Checks run ``jobs`` at a time;
benchmarks one at a time (``parallel=False``): two timed calls on one machine disturb each other.
A unit whose child dies comes back ``crashed`` with the worker's name (on this machine that is
the implementation's doing, not a lost machine's: it is not run again), and the job goes on in a
fresh child.
"""
from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import Callable, Iterator

from convbench._errors import ParamError
from convbench.execute.slot import Slot
from convbench.execute.units import HOLD, Outcome, Unit

__all__ = ["LocalExecutor", "default_jobs"]


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs units in ``jobs`` isolated child processes on this machine.

    Parameters
    ----------
    jobs : int, optional
        Child processes for checks (default: the cores this process may use).
    """

    name = "local"
    remote = False

    def __init__(self, jobs: int | None = None) -> None:
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise ParamError(f"jobs must be an integer >= 1, got {jobs!r}")
        self.jobs = jobs or default_jobs()
        self.explicit = jobs is not None  # asked for, rather than the cores found
        self._slots: list[Slot] = []

    def run(self, units: list[Unit], *, skip: Callable[[Unit], str | None] | None = None,
            note: Callable[[Outcome], None] | None = None, parallel: bool = True) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per unit, as they finish.

        ``skip(unit)``, asked just before a unit starts, may give a reason not to run it (an
        outcome ``skipped`` with that message), or :data:`HOLD`: not yet, after the units running
        now (the unit goes to the back of the queue); ``note(outcome)`` is told of each outcome as soon
        as it is made, before its job starts another unit (so ``skip`` can count on it). Closing
        the iterator early (Ctrl-C) stops the children and drops the units not started.
        """
        lock = threading.Lock()

        def finish(out: Outcome) -> None:
            if note is not None:
                with lock:
                    note(out)
            done.put(out)

        if not units:
            return
        todo: queue.Queue[Unit] = queue.Queue()
        for u in units:
            todo.put(u)
        done: queue.Queue[Outcome | None] = queue.Queue()
        stop = threading.Event()
        host = socket.gethostname()
        n = min(self.jobs if parallel else 1, len(units))
        # the children are kept from one run to the next: starting one costs seconds (imports)
        self._slots += [Slot(f"{host}/local-{i}", share=n) for i in range(len(self._slots), n)]
        slots = self._slots[:n]

        def loop(slot: Slot) -> None:
            unit = None
            try:
                while not stop.is_set():
                    try:
                        unit = todo.get_nowait()
                    except queue.Empty:
                        return
                    with lock:
                        why = skip(unit) if skip is not None else None
                    if why == HOLD:
                        todo.put(unit)
                        time.sleep(0.02)
                        continue
                    if why:
                        finish(Outcome(unit, "skipped", message=why, worker=slot.name))
                        continue
                    out = slot.run(unit)
                    if out.status == "crashed":
                        out.message = f"{out.message} (worker {slot.name})"
                    finish(out)
            except BaseException as exc:  # a bug of the harness: say so rather than hang the run
                if unit is not None:
                    finish(Outcome(unit, "error", message=f"executor: {type(exc).__name__}: {exc}",
                                   worker=slot.name))
            finally:
                done.put(None)

        threads = [threading.Thread(target=loop, args=(s,), daemon=True, name=s.name) for s in slots]
        for t in threads:
            t.start()
        finished = 0
        try:
            while finished < n:
                out = done.get()
                if out is None:
                    finished += 1
                else:
                    yield out
        finally:
            if finished < n:  # interrupted: nothing new starts, running children are stopped
                stop.set()
                for s in slots:
                    s.kill()
            for t in threads:
                t.join(10)

    def close(self) -> None:
        """Stop the children."""
        for s in self._slots:
            s.close()
        self._slots = []

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
