"""Instructions of one call, counted under valgrind: a figure the machine's load cannot move.

``count_instructions(spec, case, direction)`` runs a fresh Python (hash seed fixed) under ``valgrind
--tool=callgrind --instr-atstart=no``: nothing is instrumented while the child imports, loads
the implementation, prepares the inputs and makes one warm-up call (valgrind still runs that
~5-10x slower than native). The parent then switches instrumentation on with
``callgrind_control`` (valgrind's gdbserver) around two windows of the child: an empty one and
one holding :data:`CALLS` calls. The count is the difference of the two windows' executed
instructions (``Ir``) per call, so the protocol's own few thousand instructions are not in it. One thread
(BLAS, OpenMP and torch pools set to one), so that no spinning worker adds to it.

What it is not: a time. valgrind runs the code ~50-500x slower on a synthetic CPU that reports
no AVX-512 to the program, so libraries that dispatch on the CPU take their AVX2 (or older)
paths under it; memory stalls, cache misses and vector width cost nothing in the count. Use it
on small cases to see that a change added or removed work, never as a speed or a % of peak.
"""
from __future__ import annotations

import dataclasses
import gc
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from convbench.cases import parse_descriptor
from convbench.measure.calls import prepared_call
from convbench.registry import load_impl


__all__ = ["valgrind_missing", "count_instructions", "instruction_fields", "read_total", "VALGRIND_HINT"]

VALGRIND_HINT = ("valgrind is not installed: --metric instructions needs it (Debian/Ubuntu: "
                 "apt-get install valgrind; Fedora: dnf install valgrind; not available on macOS "
                 "or Windows)")
_TOTAL = re.compile(r"^(?:totals|summary):\s+(\d+)", re.M)
_TOOLS = ("valgrind", "callgrind_control")
#: calls counted (the count is per call): the allocator's and the library's small variations
#: from call to call average out
CALLS = 3


def valgrind_missing() -> str | None:
    """None where valgrind and callgrind_control are on PATH, else how to get them."""
    return VALGRIND_HINT if any(shutil.which(t) is None for t in _TOOLS) else None


def read_total(text: str) -> int:
    """The instruction total of a callgrind output file."""
    m = _TOTAL.findall(text)
    if not m:
        raise ValueError("callgrind wrote no totals line")
    return int(m[-1])


def count_instructions(spec: str, case: Any, direction: str, *, timeout: float = 600.0) -> int:
    """Instructions of one ``direction`` call of implementation ``spec`` on ``case`` (the mean of
    :data:`CALLS` calls).

    Raises
    ------
    RuntimeError
        valgrind is missing (the message says how to get it), or the child failed (the
        implementation raised, valgrind stopped it, or ``timeout`` seconds passed).
    """
    why = valgrind_missing()
    if why is not None:
        raise RuntimeError(why)
    with tempfile.TemporaryDirectory(prefix="convbench-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        code = "from convbench.measure.instructions import _child; _child()"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--instr-atstart=no",
               sys.executable, "-c", code, spec, case.op, case.id, case.params.descriptor, case.dtype, direction]
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        try:
            _expect(proc, "ready", deadline)
            for window in ("empty", "call"):
                _control(proc.pid, "-i", "on")
                proc.stdin.write(window + "\n")
                proc.stdin.flush()
                _expect(proc, "done", deadline)
                _control(proc.pid, "-i", "off")
                if window == "empty":
                    _control(proc.pid, "-d")  # dumps the empty window to OUT.1, zeroes the counters
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(max(deadline - time.monotonic(), 1.0))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            proc.kill()
            err = proc.communicate()[1] or ""
            tail = "\n".join(line for line in err.strip().splitlines()[-5:])
            raise RuntimeError(f"counting instructions under valgrind failed: {exc}\n{tail}") from None
        empty = Path(f"{out}.1")
        if not (out.exists() and empty.exists()):
            raise RuntimeError("callgrind wrote no counts")
        return round((read_total(out.read_text()) - read_total(empty.read_text())) / CALLS)


def instruction_fields(impl: Any, case: Any, direction: str) -> dict[str, Any]:
    """A record's ``instructions`` for one call of ``impl``, or ``instructions_error`` saying why
    there is none (the record stays as measured)."""
    spec = getattr(impl.info, "spec", None) or impl.info.name
    try:
        return {"instructions": count_instructions(spec, case, direction)}
    except Exception as exc:
        return {"instructions": None, "instructions_error": f"{type(exc).__name__}: {exc}"[:300]}


def _expect(proc: Any, word: str, deadline: float) -> None:
    """Wait for the child's ``word`` line (it may print other lines on stderr only)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"no {word!r} from the child in time")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the child exited (code {proc.wait()}) before {word!r}")
        if line.strip() == word:
            return
        if line.startswith("error:"):
            raise RuntimeError(line[6:].strip())


def _control(pid: int, *args: str) -> None:
    r = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed: {(r.stderr or r.stdout).strip()}")


def _child() -> None:
    """In valgrind: ``-c ... SPEC OP CASE_ID DESCRIPTOR DTYPE DIRECTION``; answers on stdout."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the implementation prints goes to stderr, not into the protocol
    spec, op, case_id, descriptor, dtype, direction = sys.argv[1:7]
    try:
        impl = load_impl(spec, op=op)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        case = dataclasses.replace(parse_descriptor(descriptor, op=op), id=case_id, dtype=dtype)
        call = prepared_call(impl, case, direction)
        for _ in range(2):  # lazy set-up (oneDNN primitives, plans) and the heap's first layout
            call()
        impl.sync()
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=proto, flush=True)
        return
    gc.collect()
    gc.disable()
    print("ready", file=proto, flush=True)
    for line in sys.stdin:
        if line.strip() == "call":
            for _ in range(CALLS):
                call()
            impl.sync()
        elif line.strip() != "empty":
            return
        print("done", file=proto, flush=True)
