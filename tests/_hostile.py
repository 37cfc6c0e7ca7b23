"""Functions a hostile or careless implementation might run, called by name inside isolated workers
(tests/test_hardening_isolate.py)."""
from __future__ import annotations

import os
import subprocess
import time


def fork_and_hang(pidfile: str) -> None:
    """Start a grandchild, write its pid, then hang."""
    p = subprocess.Popen(["sleep", "1000"])
    with open(pidfile, "w") as f:
        f.write(str(p.pid))
    time.sleep(1000)


def leave_a_pipe_holder_and_exit(pidfile: str) -> None:
    """Start a grandchild that inherits every descriptor (the answer pipe too), then exit."""
    p = subprocess.Popen(["sleep", "1000"], close_fds=False)
    with open(pidfile, "w") as f:
        f.write(str(p.pid))
    os._exit(3)


def allocate(nbytes: int) -> int:
    """Allocate and touch ``nbytes``."""
    import numpy as np

    a = np.ones(nbytes // 8)
    return int(a.size)


def raise_long(n: int) -> None:
    raise ValueError("x" * n)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def daemonize_and_hang(pidfile: str) -> None:
    """Start a daemon the classic way (fork, setsid, fork again, the middle one exits), write its
    pid, then hang: the daemon is in no process group of the worker's."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open(pidfile, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(1000)
        os._exit(0)
    time.sleep(1000)
