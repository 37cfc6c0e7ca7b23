"""Containment of an isolate worker's processes: what an implementation starts dies with it.

Each worker (:mod:`convbench.measure.isolate`) leads its own process group and, on Linux, is the
subreaper of its descendants, so a daemon the implementation double forks into a session of its
own stays below it. :func:`kill_tree` stops and kills that whole tree, then the group; a
:func:`start_guardian` process in the worker's group does it once convbench or the worker is gone
(SIGKILL included, which no handler in the worker would see). Where pidfds are missing, the
kernel's parent-death signal and a watchdog thread kill the group instead.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time

__all__ = ["die_with", "start_guardian", "descendants", "kill_tree"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def die_with(parent: int, deathsig: bool, keep: tuple[int, ...] = ()) -> None:
    """Kill this process and everything it started once ``parent`` is gone.

    This process becomes its descendants' subreaper (Linux): a daemon an implementation double
    forks, or starts in a session of its own, stays below it instead of going to init. A guardian
    process (:func:`start_guardian`) then takes the whole tree down when the parent or this
    process ends.
    Where pidfds are missing, the kernel's parent-death signal and a watchdog thread that sees
    this process adopted by another kill this process group instead. ``keep``: this process's
    pipes, which the guardian closes.
    """
    libc = None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    if os.getppid() != parent:  # the parent died before the guard was set
        os.killpg(os.getpgid(0), signal.SIGKILL)
    # before any thread starts: forking is safe only then
    if not start_guardian(parent, keep) and deathsig and libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    threading.Thread(target=watch, name="convbench-watchdog", daemon=True).start()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first), whatever its group or session, from
    ``/proc`` (empty where there is none)."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue   # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_tree(pid: int, keep: int | None = None) -> None:
    """SIGKILL what ``pid`` started (not ``pid`` itself, nor ``keep``), stopped first so that
    nothing forks meanwhile, then ``pid``'s process group."""
    below = [p for p in descendants(pid) if p != keep]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in below:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_guardian(parent: int, keep: tuple[int, ...]) -> bool:
    """Fork a guardian that kills this worker and everything below it once ``parent``
    (convbench) or this worker ends; True when it is in place.

    The kernel's parent-death signal would kill this worker at once when convbench is SIGKILLed,
    and its watchdog thread with it, leaving what the implementation forked running. The guardian
    waits on both processes' pidfds (Linux 5.3 and later; elsewhere False, and the caller falls
    back on the parent-death signal) and takes the tree down while it is still a tree.
    """
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return False
    worker = os.getpid()
    try:
        fds = [opener(parent), opener(worker)]
    except ProcessLookupError:   # convbench is already gone
        os.killpg(os.getpgid(0), signal.SIGKILL)
        return False
    except OSError:
        return False   # pidfds not supported by this kernel
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return True
    try:   # the guardian: holds none of the worker's pipes (their ends must close with it)
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)
        for fd in keep:
            os.close(fd)
        select.select(fds, [], [])
        kill_tree(worker, keep=os.getpid())
    finally:
        os.killpg(os.getpgid(0), signal.SIGKILL)
        os._exit(0)
