"""Run code against an implementation in a separate process: hangs and crashes stay there.

A :class:`Worker` is a child process (a fresh interpreter talking over two pipes) that loads one
implementation by its spec once and then answers any number of calls. A call that raises comes
back as ``error`` with the message; one that runs past its timeout as ``timeout`` (the child is
killed); a child that dies (``os.abort()``, a segfault, ``sys.exit``) as ``crashed``. The next
call after a timeout or a crash starts a fresh child. Nothing here knows about checks or timing:
the verifier and the benchmark runner both send it functions by name.

Containment: each child leads its own process group, and a timeout or crash kills the whole group
(whatever the implementation forked dies with it); a child dies with the process that started it
(``PR_SET_PDEATHSIG`` on Linux), and so does what it forked (a guardian process in its group
kills the group once the parent or the child is gone; a watchdog thread where pidfds are
missing); every wait has a deadline, including the read of an answer, and a child that exits
while something it started still holds the pipe is ``crashed`` at once; the child runs under a memory
limit (:func:`memory_limit`) so a runaway allocation is a ``MemoryError``, not the machine's.
None of this is a sandbox: the implementation's code runs with the user's rights.

Examples
--------
>>> with Worker("im2col", "conv2d") as wk:                      # doctest: +SKIP
...     r = wk.call("mypkg.mod:run_one", case, timeout=10.0)    # run_one(impl, case)
>>> r.status, r.value, r.message                                # doctest: +SKIP
('ok', ..., '')
"""
from __future__ import annotations

import atexit
import importlib
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass
from typing import Any, Callable

from convbench._errors import MAX_MESSAGE, cut
from convbench.measure import guard
from convbench.measure.containment import die_with, kill_tree
from convbench.measure.pipes import HEADER, ChildPipe, frame, pass_output, ready
from convbench.registry import load_impl

__all__ = ["Result", "Worker", "run_isolated", "memory_limit", "cut", "STARTUP_TIMEOUT", "MAX_MESSAGE"]

#: seconds a child may take to start and load its implementation (imports torch, a user's file)
STARTUP_TIMEOUT = 120.0
#: seconds to wait for the rest of an answer once its first bytes came, and for a killed child
_GRACE = 5.0


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


def memory_limit() -> int | None:
    """Bytes of data a worker may allocate beyond what it holds once loaded: what this machine has
    available now (:func:`convbench.measure.guard.available_memory`), shared among the workers
    that run side by side (``$CONVBENCH_WORKER_SHARE``, set by :class:`Worker`: two pool workers
    each allocating nearly all of it once took the machine past its memory together), or
    ``$CONVBENCH_WORKER_MEMORY`` (bytes, or with a K/M/G/T suffix; ``off`` for none). None: no
    limit."""
    env = os.environ.get("CONVBENCH_WORKER_MEMORY", "").strip().lower()
    if env in ("off", "none", "0"):
        return None
    if env:
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(env[-1], 1)
        try:
            return int(float(env.rstrip("kmgtb") if mult > 1 else env) * mult)
        except ValueError:
            return None
    available = guard.available_memory()
    try:
        share = max(1, int(os.environ.get("CONVBENCH_WORKER_SHARE", "1")))
    except ValueError:
        share = 1
    return None if available is None else available // share


def _resolve(fn: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(fn):
        return fn
    mod, _, name = fn.partition(":")
    obj: Any = importlib.import_module(mod)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _describe(exc: BaseException) -> str:
    return cut(f"{type(exc).__name__}: {exc}")


# --- the child -----------------------------------------------------------------------------------

def _main() -> None:
    """Entry point of the child: ``python -c '...; _main()' READ_FD WRITE_FD SPEC OP PARENT DEATHSIG``."""
    rfd, wfd, spec, op = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] or None, sys.argv[4] or None
    parent, deathsig = int(sys.argv[5]), sys.argv[6] == "1"
    die_with(parent, deathsig, keep=(rfd, wfd))
    _child(ChildPipe(rfd, wfd), spec, op)


def _limit_memory(impl: Any) -> None:
    """Cap the data this child may allocate (not for GPU implementations, whose drivers map
    large regions of address space)."""
    if getattr(getattr(impl, "info", None), "device", "cpu") == "cuda":
        return
    limit = memory_limit()
    if limit is None:
        return
    try:
        with open("/proc/self/status") as f:
            held = next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmData:")), 0)
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        want = held + limit
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        if soft == resource.RLIM_INFINITY or want < soft:
            resource.setrlimit(resource.RLIMIT_DATA, (want, hard))
    except (OSError, ValueError, AttributeError):
        pass


def _child(conn: ChildPipe, spec: str | None, op: str | None) -> None:
    impl = None
    try:
        if spec is not None:
            impl = load_impl(spec, op=op)
        _limit_memory(impl)
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
            if not isinstance(exc, Exception):
                # KeyboardInterrupt, SystemExit raised by the implementation: no Ctrl-C reaches this
                # session, so it is the code's; said in one line, where it was raised
                last = traceback.extract_tb(exc.__traceback__)[-1:]
                where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
                what = type(exc).__name__ + (f"({cut(str(exc))})" if str(exc) else "")
                conn.send(("error", None, f"{what} raised inside the call{where}"))
                continue
            tb = traceback.format_exc(limit=-3)
            try:
                conn.send(("error", None, f"{_describe(exc)}\n{cut(tb)}"))
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


class _Dead(Exception):
    """The child is gone (or stopped reading) while a frame was in transit."""


#: workers with a live child: their process groups are killed when this process exits
_LIVE: "weakref.WeakSet[Worker]" = weakref.WeakSet()


@atexit.register
def _kill_all() -> None:
    for wk in list(_LIVE):
        try:
            wk._kill()
        except Exception:
            pass


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
    The child is ``python -c`` with the parent's ``sys.path``, in a process group of its own; its
    stdout and stderr go to the parent's stderr (the first :data:`~convbench.measure.pipes.MAX_OUTPUT` bytes; the rest is
    counted), so an implementation that prints cannot corrupt the protocol (which uses its own
    pipes) or the command's output. Functions given by name are
    imported in the child; callables must be picklable.
    """

    def __init__(self, spec: str | None = None, op: str | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT, share: int = 1) -> None:
        self.spec, self.op, self.startup_timeout = spec, op, startup_timeout
        self.share = share  # workers running side by side: each may take this share of the memory
        self._proc: Any = None
        self._rx = self._tx = -1
        self.starts = 0  # how many children this worker has started

    # --- lifecycle -------------------------------------------------------------------------
    def _start(self) -> Result:
        # a fresh interpreter rather than multiprocessing's spawn, which re-imports the parent's
        # __main__ (a user's script) in the child; rather than fork, whose child inherits the
        # parent's BLAS and torch threads in whatever state they were, and can deadlock
        to_child, from_child = os.pipe(), os.pipe()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                   CONVBENCH_WORKER_SHARE=str(max(1, self.share)))
        code = "from convbench.measure.isolate import _main; _main()"
        # the kernel's parent-death signal follows the thread that started the child: only from
        # the main thread, which lives as long as this process (the watchdog covers the rest)
        deathsig = threading.current_thread() is threading.main_thread()
        output = os.pipe()
        try:
            proc = subprocess.Popen([sys.executable, "-c", code, str(to_child[0]), str(from_child[1]),
                                     self.spec or "", self.op or "", str(os.getpid()), "1" if deathsig else "0"],
                                    pass_fds=(to_child[0], from_child[1]), env=env, stdin=subprocess.DEVNULL,
                                    stdout=output[1], stderr=output[1], start_new_session=True)
        except OSError as exc:
            for fd in (*to_child, *from_child, *output):
                os.close(fd)
            return Result("crashed", None, f"starting the worker: {exc}")
        os.close(to_child[0])
        os.close(from_child[1])
        os.close(output[1])
        threading.Thread(target=pass_output, args=(output[0], self.spec or "worker"), daemon=True,
                         name="convbench-worker-output").start()
        os.set_blocking(from_child[0], False)
        os.set_blocking(to_child[1], False)
        self._proc, self._rx, self._tx = proc, from_child[0], to_child[1]
        _LIVE.add(self)
        res = self._receive(self.startup_timeout)
        if res.status != "ok":
            self._kill()
            return Result(res.status, None, f"starting the worker: {res.message}")
        return res

    def _kill(self) -> None:
        """Kill the child's whole process group (what it forked too) and reap the child."""
        proc = self._proc
        if proc is not None:
            kill_tree(proc.pid)   # what it started, in any group or session, then its group (pgid == pid)
            try:
                proc.wait(_GRACE)
            except subprocess.TimeoutExpired:
                pass
        for fd in (self._rx, self._tx):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._proc, self._rx, self._tx = None, -1, -1
        _LIVE.discard(self)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the child (politely, then by force, with its group)."""
        if self._proc is not None and self.alive:
            try:
                self._send(None, time.monotonic() + 2)
                self._proc.wait(2)
            except (_Dead, OSError, subprocess.TimeoutExpired):
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

    # --- the pipes, with deadlines -----------------------------------------------------------
    def _send(self, obj: Any, deadline: float | None) -> None:
        data = memoryview(frame(obj))
        while data:
            if self._proc.poll() is not None:
                raise _Dead
            wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError
            if ready(self._tx, select.POLLOUT, wait):
                try:
                    data = data[os.write(self._tx, data):]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError):
                    raise _Dead from None

    def _read(self, n: int, deadline: float | None, started: list[bool]) -> bytes:
        """``n`` bytes of an answer, or TimeoutError past ``deadline`` (``_GRACE`` past the first
        byte), or _Dead once the child has exited and nothing more is coming."""
        chunks, got = [], 0
        while got < n:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError
            wait = 0.2 if deadline is None else min(0.2, deadline - now)
            if ready(self._rx, select.POLLIN, wait):
                try:
                    b = os.read(self._rx, min(n - got, 1 << 20))
                except BlockingIOError:
                    continue
                if not b:
                    raise _Dead
                if not started[0]:
                    started[0] = True
                    deadline = max(deadline or 0, time.monotonic() + _GRACE) if deadline is not None else None
                chunks.append(b)
                got += len(b)
            elif self._proc.poll() is not None:
                # exited, nothing readable: a grandchild may hold the pipe open, EOF may never come
                raise _Dead
        return b"".join(chunks)

    def _receive(self, timeout: float | None) -> Result:
        deadline = None if timeout is None else time.monotonic() + timeout
        started = [False]
        try:
            (n,) = HEADER.unpack(self._read(HEADER.size, deadline, started))
            status, value, message = pickle.loads(self._read(n, deadline, started))
        except TimeoutError:
            self._kill()
            return Result("timeout", None, f"no answer within {timeout:.3g} s; the worker was killed")
        except (_Dead, OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
            proc = self._proc
            try:
                proc.wait(_GRACE)
            except subprocess.TimeoutExpired:
                pass
            why = _death(proc.poll())
            if not isinstance(exc, (_Dead, OSError, EOFError)):
                why += f" (its answer could not be read: {type(exc).__name__})"
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
            if self._proc is not None:
                self._kill()
            res = self._start()
            self.starts += 1
            if not res.ok:
                return res
        try:
            self._send((fn, args, kwargs), None if timeout is None else time.monotonic() + timeout)
        except TimeoutError:
            self._kill()
            return Result("timeout", None, f"the worker took no call within {timeout:.3g} s; it was killed")
        except _Dead:
            code = self._proc.poll() if self._proc is not None else None
            self._kill()
            return Result("crashed", None, f"the worker process is gone ({_death(code)})")
        return self._receive(timeout)


def run_isolated(fn: str | Callable[..., Any], *args: Any, timeout: float | None = None,
                 **kwargs: Any) -> Result:
    """Run ``fn(*args, **kwargs)`` once in a fresh child process; see :meth:`Worker.call`."""
    with Worker() as wk:
        return wk.call(fn, *args, timeout=timeout, **kwargs)
