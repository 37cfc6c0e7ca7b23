"""SIGTERM as the command line meets it: unwound as Ctrl-C is.

SIGTERM's default ends a process where it stands. A batch system sends it at its time limit, and
``kill`` sends it by default: the workers' guardian would stop the workers, but records waiting
for their case's interleaved rounds would be lost. Raised as :class:`Terminated`, a
``KeyboardInterrupt``, it runs the same cleanup as Ctrl-C.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, NoReturn

__all__ = ["Terminated", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwound as Ctrl-C is; the command's exit status is 143."""


def _terminate(signum: int, frame: Any) -> NoReturn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # once: a second one must not cut the unwinding short
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (main thread only: where signals go);
    the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
