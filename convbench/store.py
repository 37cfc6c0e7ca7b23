"""Result records: JSON lines, appended atomically, read back whole, resumable.

Every record is one line written by a single ``os.write`` on a file opened with ``O_APPEND``, then
flushed to disk: a run killed at any moment leaves whole lines plus at most one truncated last
line. :func:`read` skips a torn line wherever it sits (a resumed run leaves it mid-file) and says how
many it skipped; it refuses a file that is not JSON lines or holds records of a newer schema.
Nothing is appended to a file that is not JSON lines; nothing is ever rewritten in place.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

__all__ = ["budget_skipped", "SCHEMA_VERSION", "append", "read", "read_lines", "RecordFileError",
           "check_appendable", "check_schema", "write_json", "check_writable_json", "done_keys", "record_key",
           "encode_line"]

#: version of the bench record format (DESIGN.md "Bench record"); bumped on incompatible changes
SCHEMA_VERSION = 1

#: statuses that count as done for ``--resume`` (timeouts and crashes are retried)
DONE_STATUSES = ("ok", "skipped", "error")


class RecordFileError(ValueError):
    """A records file that cannot be read or appended to as JSON lines (the message is one line,
    naming the file)."""


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


def encode_line(record: dict[str, Any]) -> str:
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
    line = encode_line(record).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory; give a file for the records")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        st = os.fstat(fd)
        regular = stat.S_ISREG(st.st_mode)
        if regular and st.st_size:
            with open(path, "rb") as f:
                # never add lines to a file that is something else (a JSON array, a report)
                head = f.read(4096).lstrip()
                if head and not head.startswith(b"{"):
                    raise RecordFileError(f"{path}: is not a JSON-lines records file; not appending to it")
                # a file an earlier run left with a truncated last line: start on a fresh line, so
                # the new record is not glued onto the fragment
                f.seek(st.st_size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
        # one write of the whole line: with O_APPEND, concurrent or interrupted writers never
        # interleave within a line on a local file system
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        if fsync and regular:
            os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | Path, *, warn: bool = True) -> list[dict[str, Any]]:
    """Every whole record of ``path``, in order (see :func:`read_lines`).

    Parameters
    ----------
    path : str or Path
        A JSON-lines records file; a missing file reads as no records.
    warn : bool
        Say on stderr how many lines were skipped (one line), when any were.

    Raises
    ------
    RecordFileError
        The file is not JSON lines, cannot be read, or holds a record of a newer schema.
    """
    records, skipped = read_lines(path)
    if skipped and warn:
        where = ", ".join(str(n) for n in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        print(f"convbench: warning: {path}: skipped {len(skipped)} torn or unreadable "
              f"line{'s' if len(skipped) != 1 else ''} (line{'s' if len(skipped) != 1 else ''} {where})",
              file=sys.stderr)
    return records


def read_lines(path: str | Path) -> tuple[list[dict[str, Any]], list[int]]:
    """(whole records, numbers of the lines skipped) of the JSON-lines file ``path``.

    A line that does not parse as a JSON object (the truncated last line of a killed run, a
    fragment an earlier crash left mid-file, bytes that are not UTF-8) is skipped wherever it
    sits and its number returned. A file in which no line is a record, a JSON array (the check
    records of ``convbench check --json``), a directory, or a record whose ``schema`` is newer
    than :data:`SCHEMA_VERSION` is refused with :class:`RecordFileError`.
    """
    path = Path(path)
    if not path.exists():
        return [], []
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory, not a JSON-lines records file")
    out: list[dict[str, Any]] = []
    skipped: list[int] = []
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                raw = raw.strip()
                if not raw:
                    continue
                if n == 1 and raw.startswith(b"["):
                    raise RecordFileError(f"{path}: holds a JSON array (check records?), not JSON lines of "
                                          f"bench records")
                try:
                    rec = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    rec = None
                if not isinstance(rec, dict):
                    skipped.append(n)
                    continue
                check_schema(rec, path, n)
                out.append(rec)
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if skipped and not out:
        raise RecordFileError(f"{path}: not a JSON-lines records file (none of its {len(skipped)} "
                              f"lines is a JSON record)")
    return out, skipped


def check_schema(rec: dict[str, Any], path: str | Path, n: int) -> None:
    """Refuse (:class:`RecordFileError`) record ``n`` of ``path`` when its schema is newer than this
    convbench reads."""
    schema = rec.get("schema")
    if isinstance(schema, (int, float)) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
        raise RecordFileError(f"{path}, line {n}: a record of schema {schema:g}; this convbench reads "
                              f"schema {SCHEMA_VERSION} and older (upgrade convbench to read it)")


def check_appendable(path: str | Path) -> None:
    """Refuse, before anything is measured, an output that :func:`append` could not write.

    ``path`` must be a JSON-lines file, an empty or missing file in a writable directory, or a
    device such as ``/dev/null``; never a directory or a file holding something else.

    Raises
    ------
    RecordFileError
        Why not, in one line.
    """
    path = Path(path)
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory; give a file for the records")
    if path.exists() and path.is_file() and path.stat().st_size:
        read_lines(path)   # raises when it is not JSON lines or is of a newer schema
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    if not existed:
        try:
            os.unlink(path)
        except OSError:
            pass


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path``, replacing a regular file atomically.

    A regular file (or a missing one) is replaced by a rename of a fresh temporary file beside it,
    so a reader never sees half a file; a symlink is followed (its target is replaced); a device
    or pipe (``/dev/null``, ``/dev/stdout``) is written in place, never renamed over. Returns the
    path written.

    Raises
    ------
    RecordFileError
        ``path`` is a directory or cannot be written.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory; give a file for the JSON")
    data = (json.dumps(obj, indent=1, default=str) + "\n").encode()
    try:
        if path.exists() and not path.is_file():
            with open(path, "wb") as f:
                f.write(data)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # the replaced file's permissions, else a new file's (mkstemp's own are owner-only)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable_json(path: str | Path) -> None:
    """Refuse, before any work, a ``--json`` path :func:`write_json` could not write."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory; give a file for the JSON")
    if path.exists() and not path.is_file():
        return   # a device or pipe, written in place
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot be written ({exc.strerror or exc})") from None


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
