"""This machine's crossover file: the times ``convbench bench`` measures, for ``fastest`` to choose from.

Every ``ok`` bench record a run makes is added to the file as one slim line
(:func:`crossover_line`), through the bench runner's record-listener hook
(:func:`bench_listener`, declared by :class:`impls.fastest.FastestConv2d`): the engine knows
nothing of the file. One file per machine fingerprint (:func:`crossover_path`), kept bounded by
:func:`compact_crossover` at the start of each run.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from convbench import store
from convbench.measure.machine import cache_dir, fingerprint

__all__ = ["CROSSOVER_FIELDS", "crossover_path", "crossover_line", "compact_crossover", "bench_listener"]

#: what a crossover line keeps of a bench record: enough to say which implementation took how long
#: on which call (raw samples and the rest stay in the run's own records)
CROSSOVER_FIELDS = ("op", "impl", "case", "descriptor", "params", "direction", "dtype", "status", "t_median_s",
                    "t_min_s", "threads", "time")


def crossover_path(machine_id: str | None = None) -> Path | None:
    """This machine's crossover file: every ``ok`` time ``convbench bench`` measures is added to it
    (:func:`crossover_line`), and the ``fastest`` implementation chooses from it.

    ``$CONVBENCH_CROSSOVER`` names another file (``off`` or empty: none at all), else
    ``<cache dir>/crossover-<machine id>.jsonl``: one file per machine fingerprint, so a different
    BLAS kernel, thread count or library version starts a file of its own (``machine_id``
    defaults to this process's fingerprint)."""
    env = os.environ.get("CONVBENCH_CROSSOVER")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "0") else Path(env)
    return cache_dir() / f"crossover-{machine_id or fingerprint()['id']}.jsonl"


def crossover_line(rec: dict[str, Any]) -> dict[str, Any]:
    """The slim copy of a bench record that goes to the crossover file."""
    return {k: rec[k] for k in CROSSOVER_FIELDS if k in rec}


def compact_crossover(path: str | Path, max_bytes: int = 8 << 20) -> bool:
    """Keep a crossover file that grows run after run bounded: once it is over ``max_bytes``, it
    is replaced (atomically, by a rename) with the latest line of each (op, impl, descriptor,
    direction, dtype), the only lines anything reads. Returns whether it was rewritten."""
    path = Path(path)
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except OSError:
        return False
    # under the file's lock: a line another run appends meanwhile waits, then goes to the new file
    with _locked(path, fcntl.LOCK_EX):
        latest: dict[tuple[str, ...], dict[str, Any]] = {}
        for rec in store.read(path):
            key = tuple(str(rec.get(k)) for k in ("op", "impl", "descriptor", "direction", "dtype"))
            latest.pop(key, None)   # re-inserted last: the file keeps the order of the latest lines
            latest[key] = rec
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.writelines(store.encode_line(r) for r in latest.values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)   # the rename itself on disk
        finally:
            os.close(dir_fd)
    return True


@contextlib.contextmanager
def _locked(path: Path, how: int) -> Iterator[None]:
    """Hold ``path``'s lock file (``<path>.lock``, beside it): exclusive to rewrite the file,
    shared to append to it."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)


def bench_listener(machine: dict[str, Any]) -> Callable[[dict[str, Any]], None] | None:
    """The record listener of a bench run on ``machine``: the machine's crossover file compacted,
    then every ``ok`` record added to it as it is made. None when the machine has no id or the
    file is off. A file that cannot be written is said once (a ``RuntimeWarning``) and then left
    alone for the rest of the run, never failing it."""
    path = crossover_path(str(machine.get("id"))) if machine.get("id") else None
    if path is None:
        return None
    try:
        compact_crossover(path)
    except OSError:
        pass  # unreadable or unwritable: the first append says so
    writable = [True]

    def add(rec: dict[str, Any]) -> None:
        if not writable[0] or rec.get("status") != "ok":
            return
        try:
            with _locked(path, fcntl.LOCK_SH):
                store.append(path, crossover_line(rec), fsync=False)
        except OSError as exc:
            writable[0] = False
            warnings.warn(f"convbench: cannot add to the crossover file {path} ({exc}); set CONVBENCH_CROSSOVER "
                          f"to another file, or to 'off'", RuntimeWarning, stacklevel=2)

    return add
