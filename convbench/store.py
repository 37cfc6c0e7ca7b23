"""Result records: JSON lines, appended atomically, read back whole, resumable.

Every record is one line written by a single ``os.write`` on a file opened with ``O_APPEND``, then
flushed to disk: a run killed at any moment leaves whole lines plus at most one truncated last
line, which :func:`read` ignores. Nothing is ever rewritten in place.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

__all__ = ["budget_skipped", "SCHEMA_VERSION", "append", "read", "done_keys", "record_key", "crossover_path",
           "crossover_line", "compact_crossover"]

#: version of the bench record format (DESIGN.md "Bench record"); bumped on incompatible changes
SCHEMA_VERSION = 1

#: statuses that count as done for ``--resume`` (timeouts and crashes are retried)
DONE_STATUSES = ("ok", "skipped", "error")


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: non-finite floats become None so every reader can parse the line."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy scalars
        return _clean(obj.item())
    return obj


def _line(record: dict[str, Any]) -> str:
    """``record`` as one JSON line (non-finite floats as null)."""
    return json.dumps(_clean(record), default=str, allow_nan=False, separators=(",", ":")) + "\n"


def append(path: str | Path, record: dict[str, Any], *, fsync: bool = True) -> None:
    """Append ``record`` to ``path`` as one JSON line, atomically.

    Parameters
    ----------
    path : str or Path
        The records file (created, with its parent directory, if missing).
    record : dict
        A JSON-serialisable record (non-finite floats are written as null).
    fsync : bool
        Flush the line to disk before returning (default), so a crash of the machine keeps it.
    """
    path = Path(path)
    if not isinstance(record, dict):
        raise TypeError(f"record must be a dict, got {type(record).__name__}")
    line = _line(record).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # a file an earlier run left with a truncated last line: start on a fresh line, so the
        # new record is not glued onto the fragment
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
        # one write of the whole line: with O_APPEND, concurrent or interrupted writers never
        # interleave within a line on a local file system
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every whole record of ``path``, in order.

    A line that does not parse (the truncated last line of a killed run, or a fragment an earlier
    crash left mid-file) is skipped; a missing file reads as no records.
    """
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def record_key(rec: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """What identifies a measurement for ``--resume``: op, impl, case, descriptor, direction, dtype."""
    return (str(rec.get("op")), str(rec.get("impl")), str(rec.get("case")), str(rec.get("descriptor", "")),
            str(rec.get("direction")), str(rec.get("dtype")))


def budget_skipped(rec: dict[str, Any]) -> bool:
    """Whether ``rec`` was skipped for time (an estimate over its share, or the budget spent), a
    decision of that run's budget rather than a fact about the implementation."""
    if rec.get("status") != "skipped":
        return False
    if rec.get("budget_skip"):
        return True
    reason = str(rec.get("reason", ""))
    return reason.startswith("est. ") or reason.startswith("budget spent")


def done_keys(records: Iterable[dict[str, Any]]) -> set[tuple[str, ...]]:
    """Keys of the records a resumed run need not repeat: status ok, error, or skipped for a reason
    that holds whatever the budget (unsupported, unavailable). Items skipped for time, timeouts
    and crashes are tried again."""
    return {record_key(r) for r in records if r.get("status") in DONE_STATUSES and not budget_skipped(r)}


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
    from convbench.measure.machine import cache_dir, fingerprint

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
    latest: dict[tuple[str, ...], dict[str, Any]] = {}
    for rec in read(path):
        key = tuple(str(rec.get(k)) for k in ("op", "impl", "descriptor", "direction", "dtype"))
        latest.pop(key, None)   # re-inserted last: the file keeps the order of the latest lines
        latest[key] = rec
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.writelines(_line(r) for r in latest.values())
    os.replace(tmp, path)
    return True
