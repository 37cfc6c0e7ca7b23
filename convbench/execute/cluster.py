"""The Dask executor: units go to the workers of a ``dask.distributed`` cluster.

The client submits every unit as a task; on a worker the task runs the unit in a
:class:`~convbench.execute.slot.Slot` of that worker thread (a child process, so an implementation
that hangs or aborts costs a ``timeout`` or ``crashed`` record, not the worker). Results come back
as they finish. A worker that dies mid-unit: the scheduler runs the task again on another worker;
the client hears of each death from the scheduler's ``remove-worker`` events and, at the second
death under one unit, cancels it: the unit is ``crashed``, named with the worker that died last
(a scheduler whose ``distributed.scheduler.allowed-failures`` is 0 gives up after one death
itself). A unit that kills every worker it runs on so takes two workers down, not the scheduler's
default four. No scheduling is done here.

``distributed`` is imported only when a cluster is used: every other command stays as quick to
start as before.
"""
from __future__ import annotations

import re
import socket
import threading
import uuid
from typing import Any, Callable, Iterator

from convbench._errors import ParamError
from convbench.execute.slot import Slot
from convbench.execute.units import HOLD, Outcome, Unit

__all__ = ["DaskExecutor", "parse_address", "run_on_worker"]

_ADDRESS = re.compile(r"^dask://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
#: seconds to reach the scheduler before the executor is a usage error
CONNECT_TIMEOUT_S = 10.0
#: seconds to wait for a first worker on a scheduler that has none yet
WORKER_WAIT_S = 30.0


def parse_address(spec: str) -> str:
    """``dask://HOST:PORT`` -> ``tcp://HOST:PORT``; ``ParamError`` naming the value otherwise."""
    m = _ADDRESS.match(spec)
    if not m or not 0 < int(m["port"]) < 65536:
        raise ParamError(f"executor must be 'local' or 'dask://HOST:PORT', got {spec!r}")
    return f"tcp://{m['host']}:{m['port']}"


def _listening(address: str, tcp: str, timeout: float) -> None:
    """A usage error at once where nothing listens at ``tcp`` or its host name does not resolve
    (the client would retry for the whole ``timeout``); anything else is left to the client."""
    host, _, port = tcp[6:].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except ConnectionRefusedError:
        raise ParamError(f"executor {address!r}: cannot reach a Dask scheduler at {tcp[6:]} "
                         f"(nothing listens there: connection refused)") from None
    except socket.gaierror as exc:
        raise ParamError(f"executor {address!r}: cannot reach a Dask scheduler at {tcp[6:]} "
                         f"(the host name does not resolve: {exc.strerror or exc})") from None
    except OSError:
        pass  # unroutable, slow: the client's own attempt says what it found


_THREAD = threading.local()

#: worker deaths under one unit after which it is ``crashed`` rather than run again
DEATHS_PER_UNIT = 2


class _Deaths:
    """The handler of the scheduler's events: counts the deaths of workers under this run's units
    and cancels a unit at its :data:`DEATHS_PER_UNIT`-th (the run then records it ``crashed``)."""

    def __init__(self, client: Any, futures: dict[str, Any], names: dict[str, str]) -> None:
        self.client, self.futures, self.names = client, futures, names
        self.count: dict[str, int] = {}
        self.last: dict[str, str] = {}

    async def __call__(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker" or msg.get("expected"):
            return   # a worker that leaves when told to (retired, closed) gives its units back unharmed
        worker = str(msg.get("worker"))
        gone = [k for k in msg.get("processing-tasks", ()) if k in self.futures]
        for key in gone:
            self.count[key] = self.count.get(key, 0) + 1
            self.last[key] = self.names.get(worker, worker)
        over = [self.futures[k] for k in gone if self.count[k] >= DEATHS_PER_UNIT]
        if over:  # in the client's own loop: the asynchronous form of cancel
            await self.client.cancel(over, asynchronous=True, reason="its workers died")

    def outcome(self, key: str, unit: Unit) -> Outcome | None:
        """The ``crashed`` outcome of a unit cancelled here, else None."""
        n = self.count.get(key, 0)
        if n < DEATHS_PER_UNIT:
            return None
        name = self.last[key]
        return Outcome(unit, "crashed", worker=name,
                       message=f"the worker running it died, {n} times (last on worker {name})")


def run_on_worker(unit: Unit) -> Outcome:
    """The task a Dask worker runs: ``unit`` in this worker thread's slot."""
    from distributed import get_worker  # deferred: only ever called inside a Dask worker

    slot = getattr(_THREAD, "slot", None)
    if slot is None:
        w = get_worker()
        slot = _THREAD.slot = Slot(str(w.name if w.name is not None else w.address),
                                   share=int(getattr(getattr(w, "state", w), "nthreads", 1) or 1))
    return slot.run(unit)


class DaskExecutor:
    """Runs units on the workers of the Dask cluster at ``address`` (``dask://HOST:PORT``).

    Parameters
    ----------
    address : str
        ``dask://HOST:PORT`` of the cluster's scheduler.
    connect_timeout : float
        Seconds to reach it; an unreachable scheduler is a :class:`~convbench.ParamError` naming
        the address.

    Notes
    -----
    Workers need convbench (and the registered implementations' packages) installed; a file
    spec's source travels with its units.
    """

    name = "dask"
    remote = True

    def __init__(self, address: str, connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.address = address
        tcp = parse_address(address)
        try:   # deferred: distributed takes a second to import, and only this executor needs it
            from distributed import Client
        except ImportError as exc:   # a dependency of convbench, yet an environment may lack it
            raise ParamError(f"executor {address!r} needs the Dask package 'distributed', which this Python "
                             f"cannot import ({exc}); install it: pip install distributed") from None

        _listening(address, tcp, connect_timeout)
        try:
            self.client = Client(tcp, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ParamError(f"executor {address!r}: cannot reach a Dask scheduler at {tcp[6:]} "
                             f"({type(exc).__name__}: {exc})") from None
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (OSError, TimeoutError):
            self.client.close()
            raise ParamError(f"executor {address!r}: the scheduler has no workers "
                             f"(none joined within {WORKER_WAIT_S:g} s)") from None

    @property
    def workers(self) -> list[str]:
        """The names of the cluster's workers now."""
        return sorted(self._names().values())

    def run(self, units: list[Unit], *, skip: Callable[[Unit], str | None] | None = None,
            note: Callable[[Outcome], None] | None = None, parallel: bool = True) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per unit as they finish (``parallel`` is the cluster's: the
        per-host lock keeps benchmarks on one machine apart). ``skip(unit)`` is asked after every
        outcome for the units still pending: those it gives a reason for are cancelled and come
        back ``skipped``; ``note(outcome)`` is told of each outcome first. Closing the iterator early
        (Ctrl-C) cancels every pending unit."""
        from distributed import KilledWorker, as_completed  # deferred: see the module's notes

        if not units:
            return
        token = uuid.uuid4().hex[:8]
        pending: dict[Any, Unit] = {}
        by_key: dict[str, Any] = {}
        deaths = _Deaths(self.client, by_key, self._names())
        # before the units go: the subscription and the submissions share one ordered stream
        self.client.subscribe_topic("all", deaths)
        for u in units:
            fut = self.client.submit(run_on_worker, u, key=f"convbench-{u.kind}-{token}-{u.index}", pure=False)
            pending[fut] = u
            by_key[fut.key] = fut
        try:
            for fut in as_completed(list(pending), loop=self.client.loop):
                unit = pending.pop(fut, None)
                if unit is None:  # cancelled below
                    continue
                out = self._settled(fut, unit, deaths, KilledWorker)
                if note is not None:
                    note(out)
                yield out
                if skip is not None:
                    for other, u in list(pending.items()):
                        why = skip(u)
                        if why and why != HOLD:
                            other.cancel()
                            del pending[other]
                            out = Outcome(u, "skipped", message=why)
                            if note is not None:
                                note(out)
                            yield out
        finally:
            self.client.unsubscribe_topic("all")
            if pending:  # interrupted: the cluster drops what has not run
                self.client.cancel(list(pending))

    def _names(self) -> dict[str, str]:
        """Worker address -> name, for the workers the scheduler has now."""
        info = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return {a: str(w.get("name", a)) for a, w in info.items()}

    @classmethod
    def _settled(cls, fut: Any, unit: Unit, deaths: "_Deaths", killed: type) -> Outcome:
        """A finished unit's result (even if a worker died under it after it came), else the
        ``crashed`` of a unit cancelled at its second worker death, else what the future holds."""
        if fut.status == "finished":
            return cls._outcome(fut, unit, killed)
        return deaths.outcome(fut.key, unit) or cls._outcome(fut, unit, killed)

    @staticmethod
    def _outcome(fut: Any, unit: Unit, killed: type) -> Outcome:
        try:
            return fut.result()
        except killed as exc:
            last = exc.last_worker
            name = str(getattr(last, "name", None) or getattr(last, "address", last))
            return Outcome(unit, "crashed", worker=name,
                           message=f"the worker running it died, {exc.allowed_failures + 1} times "
                                   f"(last on worker {name})")
        except Exception as exc:
            return Outcome(unit, "error", message=f"the cluster could not run it: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Disconnect from the cluster (its workers go on)."""
        self.client.close()

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
