"""The pipes between a :class:`~convbench.measure.isolate.Worker` and its child: whole frames (a
length, then a pickle) over plain file descriptors, readiness with a deadline, and the child's own
output passed on, capped."""
from __future__ import annotations

import os
import pickle
import select
import struct
import sys
from typing import Any

__all__ = ["HEADER", "MAX_OUTPUT", "frame", "read_exact", "ChildPipe", "ready", "pass_output"]

HEADER = struct.Struct(">Q")
#: bytes of a child's own output (what the implementation prints) passed on to stderr; the rest
#: is counted and said in one line
MAX_OUTPUT = 64 << 10


def frame(obj: Any) -> bytes:
    """``obj`` as one frame: its pickle's length (8 bytes, big-endian), then the pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def read_exact(fd: int, n: int) -> bytes:
    """``n`` bytes from a blocking ``fd`` (the child's side); EOFError when the parent is gone."""
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


class ChildPipe:
    """The child's end: blocking reads and writes of whole frames."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def recv(self) -> Any:
        (n,) = HEADER.unpack(read_exact(self.rfd, HEADER.size))
        return pickle.loads(read_exact(self.rfd, n))

    def send(self, obj: Any) -> None:
        data = memoryview(frame(obj))
        while data:
            data = data[os.write(self.wfd, data):]


def pass_output(fd: int, who: str) -> None:
    """Pass a child's output on to this process's stderr, the first :data:`MAX_OUTPUT` bytes of
    it; then say how much more there was (it never reaches the command's stdout)."""
    passed = dropped = 0
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            keep = chunk[:max(MAX_OUTPUT - passed, 0)]
            dropped += len(chunk) - len(keep)
            passed += len(keep)
            if keep:
                _write_err(keep)
    except OSError:
        pass
    finally:
        os.close(fd)
    if dropped:
        _write_err(f"\n[convbench: {dropped} more bytes of output from {who} not shown]\n".encode())


def _write_err(data: bytes) -> None:
    try:
        err = getattr(sys.stderr, "buffer", None)
        if err is not None:
            err.write(data)
        else:
            sys.stderr.write(data.decode(errors="replace"))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def ready(fd: int, event: int, timeout: float) -> bool:
    """Whether ``fd`` can be read (``POLLIN``) or written (``POLLOUT``) within ``timeout`` seconds;
    a closed other end counts as ready (the read or write then says so)."""
    p = select.poll()
    p.register(fd, event)
    return bool(p.poll(max(timeout, 0) * 1000))
