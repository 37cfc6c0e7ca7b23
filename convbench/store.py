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

__all__ = ["budget_skipped", "SCHEMA_VERSION", "append", "read", "done_keys", "record_key"]

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
    line = (json.dumps(_clean(record), default=str, allow_nan=False, separators=(",", ":")) + "\n").encode()
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
