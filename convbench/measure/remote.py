"""A user's implementation file, imported only inside an isolated worker.

``convbench check --impl my_conv.py:conv`` must survive whatever the file does when it is
imported: loop forever, call ``sys.exit`` or ``os._exit``, print megabytes, raise. So the command
line never imports a user's file (or module) itself: :func:`load_isolated` starts a
:class:`~convbench.measure.isolate.Worker` that loads the spec, learns there what the object is
(its :class:`ImplInfo`: operator, name, directions, ...), and returns a :class:`RemoteImpl` that
stands for it in this process. Every question about the implementation (``unsupported``) and every
call (``forward``, ``backward``) goes to the worker; a failed load is a :class:`LoadError` with
one line saying why, for that spec alone.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from convbench.measure.isolate import STARTUP_TIMEOUT, Worker
from convbench.registry import availability

__all__ = ["LoadError", "RemoteImpl", "load_isolated", "is_user_spec"]

#: seconds a worker may take to answer a question about the implementation (``unsupported``)
QUESTION_TIMEOUT = 60.0


class LoadError(Exception):
    """A spec whose loading failed in its worker (raised, exited, hung, crashed); one line."""


def is_user_spec(spec: Any) -> bool:
    """Whether ``spec`` names a user's file or module (``path.py:OBJ``, ``pkg.mod:OBJ``), code
    that is loaded only inside a worker, rather than a registered implementation's name."""
    return isinstance(spec, str) and ":" in spec


def _describe_impl(impl: Any) -> tuple[Any, str | None]:
    """In the worker: the loaded implementation's info (marked isolated, with its spec) and why it
    cannot run here (None when it can)."""
    return impl.info, availability(impl)


def _unsupported(impl: Any, p: Any, dtype: str, direction: str) -> str | None:
    return impl.unsupported(p, dtype, direction)


def _forward(impl: Any, p: Any, *inputs: Any) -> Any:
    out = impl.forward(p, *impl.prepare(*inputs))
    impl.sync()
    return None if out is None else impl.to_numpy(out)


def _backward(impl: Any, p: Any, *inputs: Any) -> Any:
    grads = impl.backward(p, *impl.prepare(*inputs))
    impl.sync()
    if not isinstance(grads, (tuple, list)):
        return grads
    return tuple(None if g is None else impl.to_numpy(g) for g in grads)


class RemoteImpl:
    """Stands in this process for an implementation loaded in ``worker``.

    ``info`` is the implementation's own (with ``isolate`` set and ``spec`` the spec that loads
    it); ``worker`` is the live worker, which the checker reuses rather than loading the file
    again. ``forward``/``backward`` run in the worker and raise ``RuntimeError`` with its message
    when the call fails there.
    """

    def __init__(self, info: Any, reason: str | None, worker: Worker) -> None:
        self.info, self._reason, self.worker = info, reason, worker

    def availability(self) -> str | None:
        return self._reason

    def unsupported(self, p: Any, dtype: str, direction: str) -> str | None:
        res = self.worker.call("convbench.measure.remote:_unsupported", p, dtype, direction,
                               timeout=QUESTION_TIMEOUT)
        if res.ok:
            return res.value
        return f"unsupported() failed in the worker ({res.status}): {res.message.splitlines()[0]}"

    def _run(self, fn: str, p: Any, inputs: tuple[Any, ...]) -> Any:
        res = self.worker.call(fn, p, *inputs)
        if not res.ok:
            raise RuntimeError(f"{self.info.name} {res.status} in its worker: {res.message}")
        return res.value

    def prepare(self, *arrays: np.ndarray | None) -> tuple[Any, ...]:
        return arrays

    def forward(self, p: Any, *inputs: Any) -> Any:
        return self._run("convbench.measure.remote:_forward", p, inputs)

    def backward(self, p: Any, *inputs: Any) -> Any:
        return self._run("convbench.measure.remote:_backward", p, inputs)

    def sync(self) -> None:
        """The worker synchronises before it answers."""

    def to_numpy(self, a: Any) -> np.ndarray:
        return a if a is None else np.asarray(a)

    def close(self) -> None:
        self.worker.close()

    def __repr__(self) -> str:
        return f"<RemoteImpl {self.info.op}/{self.info.name} from {self.info.spec}>"


def load_isolated(spec: str, op: str | None = None, timeout: float | None = None) -> RemoteImpl:
    """Load ``spec`` in a fresh worker; return what stands for it here.

    Parameters
    ----------
    spec : str
        ``path/to/file.py:OBJECT`` or ``package.module:OBJECT``.
    op : str, optional
        The operator (default: what the object declares, else conv2d).
    timeout : float, optional
        Seconds the import and adaptation may take (default
        :data:`~convbench.measure.isolate.STARTUP_TIMEOUT`).

    Raises
    ------
    LoadError
        The spec could not be loaded; the message says why (the exception, the exit status, the
        timeout) in one line.
    """
    worker = Worker(spec, op, startup_timeout=timeout or STARTUP_TIMEOUT)
    res = worker.call("convbench.measure.remote:_describe_impl", timeout=timeout or STARTUP_TIMEOUT)
    if not res.ok:
        worker.close()
        msg = res.message.replace("starting the worker: ", "", 1)
        msg = msg.replace(f"loading {spec!r} failed: ", "", 1)
        if msg.startswith("ParamError: "):   # the spec's own fault: said plainly, without the prefixes
            msg = msg[len("ParamError: "):]
            if msg.startswith(f"impl spec {spec!r}: "):
                msg = msg[len(f"impl spec {spec!r}: "):]
        if msg.startswith("SystemExit: "):
            msg = f"importing it called sys.exit({msg[len('SystemExit: '):]})"
        if res.status == "timeout":
            msg = f"loading took more than {timeout or STARTUP_TIMEOUT:g} s (its import never finished); stopped"
        elif res.status == "crashed":
            msg = f"loading it ended the process: {msg}"
        raise LoadError(" ".join(msg.split("\n", 1)[0].split()))
    info, reason = res.value
    info = dataclasses.replace(info, isolate=True, spec=info.spec if ":" in (info.spec or "") else _absolute(spec))
    return RemoteImpl(info, reason, worker)


def _absolute(spec: str) -> str:
    """``spec`` with its file made absolute (the repro command works from any directory)."""
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        return f"{Path(target).resolve()}:{attr}"
    return spec
