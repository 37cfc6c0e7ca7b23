"""Run code against an implementation in a separate process: hangs and crashes stay there.

A :class:`Worker` is a child process (a fresh interpreter talking over two pipes) that loads one
implementation by its spec once and then answers any number of calls. A call that raises comes
back as ``error`` with the message; one that runs past its timeout as ``timeout`` (the child is
killed); a child that dies (``os.abort()``, a segfault, ``sys.exit``) as ``crashed``. The next
call after a timeout or a crash starts a fresh child. Nothing here knows about checks or timing:
the verifier and the benchmark runner both send it functions by name.

Examples
--------
>>> with Worker("im2col", "conv2d") as wk:                      # doctest: +SKIP
...     r = wk.call("mypkg.mod:run_one", case, timeout=10.0)    # run_one(impl, case)
>>> r.status, r.value, r.message                                # doctest: +SKIP
('ok', ..., '')
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Result", "Worker", "run_isolated", "STARTUP_TIMEOUT"]

#: seconds a child may take to start and load its implementation (imports torch, a user's file)
STARTUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Result:
    """The outcome of one isolated call.

    ``status`` is ``ok`` (``value`` holds the return value), ``error`` (the call raised;
    ``message`` is ``Type: text``), ``timeout`` or ``crashed`` (``message`` says how the child died).
    """

    status: str
    value: Any = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _resolve(fn: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(fn):
        return fn
    mod, _, name = fn.partition(":")
    obj: Any = importlib.import_module(mod)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _main() -> None:
    """Entry point of the child: ``python -c '...; _main()' READ_FD WRITE_FD SPEC OP``."""
    rfd, wfd, spec, op = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] or None, sys.argv[4] or None
    _child(_Duplex(Connection(rfd, writable=False), Connection(wfd, readable=False)), spec, op)


class _Duplex:
    """Two one-way connections as one (``send`` on one pipe, ``recv``/``poll`` on the other)."""

    def __init__(self, rx: Connection, tx: Connection) -> None:
        self.rx, self.tx = rx, tx

    def send(self, obj: Any) -> None:
        self.tx.send(obj)

    def recv(self) -> Any:
        return self.rx.recv()

    def poll(self, timeout: float | None = None) -> bool:
        return self.rx.poll(timeout)

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


def _child(conn: Any, spec: str | None, op: str | None) -> None:
    impl = None
    try:
        if spec is not None:
            from convbench.registry import load_impl

            impl = load_impl(spec, op=op)
        conn.send(("ok", None, ""))
    except BaseException as exc:  # report a failed load instead of dying silently
        conn.send(("error", None, f"loading {spec!r} failed: {_describe(exc)}"))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        fn, args, kwargs = msg
        try:
            f = _resolve(fn)
            value = f(impl, *args, **kwargs) if spec is not None else f(*args, **kwargs)
            conn.send(("ok", value, ""))
        except BaseException as exc:
            tb = traceback.format_exc(limit=-3)
            try:
                conn.send(("error", None, f"{_describe(exc)}\n{tb}"))
            except Exception as send_exc:  # the exception itself would not pickle
                conn.send(("error", None, f"{_describe(exc)} (unpicklable: {send_exc})"))


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker process stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker process died from {name} (exit code {exitcode})"
    return f"the worker process exited with code {exitcode}"


class Worker:
    """A child process holding one loaded implementation (or none), answering calls.

    Parameters
    ----------
    spec : str, optional
        Implementation spec (``NAME``, ``/abs/file.py:OBJ``, ``pkg.mod:OBJ``) loaded in the child
        with :func:`convbench.registry.load_impl`; it is passed as the first argument of every
        call. None: calls get only their own arguments.
    op : str, optional
        The operator, for loading.
    startup_timeout : float
        Seconds allowed for starting the child and loading the implementation.

    Notes
    -----
    The child is ``python -c`` with the parent's ``sys.path``; its stdout goes to the parent's
    stderr, so an implementation that prints cannot corrupt the protocol (which uses its own
    pipes). Functions given by name are imported in the child; callables must be picklable.
    """

    def __init__(self, spec: str | None = None, op: str | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.spec, self.op, self.startup_timeout = spec, op, startup_timeout
        self._proc: Any = None
        self._conn: Any = None
        self.starts = 0  # how many children this worker has started

    # --- lifecycle -------------------------------------------------------------------------
    def _start(self) -> Result:
        # a fresh interpreter rather than multiprocessing's spawn, which re-imports the parent's
        # __main__ (a user's script) in the child; rather than fork, whose child inherits the
        # parent's BLAS and torch threads in whatever state they were, and can deadlock
        to_child, from_child = os.pipe(), os.pipe()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        code = "from convbench.measure.isolate import _main; _main()"
        proc = subprocess.Popen([sys.executable, "-c", code, str(to_child[0]), str(from_child[1]),
                                 self.spec or "", self.op or ""],
                                pass_fds=(to_child[0], from_child[1]), env=env, stdin=subprocess.DEVNULL,
                                stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None)
        os.close(to_child[0])
        os.close(from_child[1])
        self._proc = proc
        self._conn = _Duplex(Connection(from_child[0], writable=False), Connection(to_child[1], readable=False))
        res = self._receive(self.startup_timeout)
        if res.status != "ok":
            self._kill()
            return Result(res.status, None, f"starting the worker: {res.message}")
        return res

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the child (politely, then by force)."""
        if self._conn is not None and self.alive:
            try:
                self._conn.send(None)
                self._proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._kill()
        except Exception:
            pass

    # --- calls -----------------------------------------------------------------------------
    def _receive(self, timeout: float | None) -> Result:
        try:
            ready = self._conn.poll(timeout)
        except (OSError, EOFError):
            ready = True
        if not ready:
            self._kill()
            return Result("timeout", None, f"no answer within {timeout:g} s; the worker was killed")
        try:
            status, value, message = self._conn.recv()
        except (EOFError, OSError):
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            why = _death(self._proc.poll())
            self._kill()
            return Result("crashed", None, why)
        return Result(status, value, message)

    def call(self, fn: str | Callable[..., Any], *args: Any, timeout: float | None = None,
             **kwargs: Any) -> Result:
        """Run ``fn(impl, *args, **kwargs)`` in the child (``fn(*args, **kwargs)`` without a spec).

        Parameters
        ----------
        fn : str or callable
            ``"package.module:function"`` (resolved in the child), or a picklable module-level
            function.
        timeout : float, optional
            Seconds to wait for the answer; past it the child is killed and the result is
            ``timeout``. None waits forever (a crash is still noticed).

        Returns
        -------
        Result
            Never raises because of what the child did.
        """
        if not self.alive:
            if self._proc is not None or self._conn is not None:
                self._kill()
            res = self._start()
            self.starts += 1
            if not res.ok:
                return res
        try:
            self._conn.send((fn, args, kwargs))
        except (OSError, BrokenPipeError) as exc:
            self._kill()
            return Result("crashed", None, f"the worker process is gone ({exc})")
        return self._receive(timeout)


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def run_isolated(fn: str | Callable[..., Any], *args: Any, timeout: float | None = None,
                 **kwargs: Any) -> Result:
    """Run ``fn(*args, **kwargs)`` once in a fresh child process; see :meth:`Worker.call`."""
    with Worker() as wk:
        return wk.call(fn, *args, timeout=timeout, **kwargs)
