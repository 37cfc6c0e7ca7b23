"""The ``convbench`` command line's parser: commands, options, and its usage errors (one line, exit 2).

:mod:`convbench.cli` runs the commands; this module only says what they take.
"""
from __future__ import annotations

import argparse
import math
from typing import NoReturn

__all__ = ["build_parser", "UsageError", "AlreadySaid", "SECURITY_NOTE", "DEFAULT_REPORT_DIR"]

DEFAULT_REPORT_DIR = "convbench-report"
SECURITY_NOTE = ("Security: no sandbox. --impl FILE.py:OBJ and --impl pkg.module:OBJ run that code as you, with "
                 "your files and network (importing and calling it is how it is checked); the worker subprocess "
                 "keeps its crashes and hangs away from convbench, nothing more. Check code you do not trust only "
                 "inside a container or VM.")


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""


class AlreadySaid(UsageError):
    """A usage error whose lines are already on stderr: exit status 2, nothing more said."""


class _Parser(argparse.ArgumentParser):
    """argparse, its errors as :class:`UsageError` (one line, exit status 2)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)", self.prog)


def _seconds(value: str) -> float:
    """A positive, finite number of seconds (``--timeout``, ``--budget``, ``--deadline``)."""
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {value!r}") from None
    if not math.isfinite(s) or s <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a finite number > 0), got {value!r}")
    return s


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", default=None,
                   help="operator (default: the one the --impl objects implement, else conv2d)")
    p.add_argument("--impl", action="append", metavar="SPEC",
                   help="implementation: NAME, path/to/file.py:OBJ or pkg.module:OBJ (repeatable; default all)")
    p.add_argument("--suite", action="append", metavar="S",
                   help="suite of cases (repeatable; default: edge for check, quick for bench)")
    p.add_argument("--case", action="append", metavar="D",
                   help="one case as a descriptor, e.g. n8c64h56w56o64k3s1p1 (repeatable)")


def _add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local", metavar="E",
                   help="where units run: local (a pool of isolated processes here, the default) or "
                        "dask://HOST:PORT (the workers of a Dask cluster)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes of the local executor for checks (default: the cores; 1 = one at a time)")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The ``convbench`` command line: its commands and options."""
    ap = _Parser(prog="convbench", description=description)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="implementations, available or not, and why")
    p.add_argument("--op", default=None, help="only this operator")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("check", help="check implementations against the float64 oracle",
                       description="Check implementations against the float64 oracle.",
                       epilog=SECURITY_NOTE)
    _add_selection(p)
    p.add_argument("--dtype", default="all", choices=("float32", "float64", "all"),
                   help="every case at this dtype, or each at the suite's own (default: all)")
    p.add_argument("--json", metavar="FILE", help="write the check records as a JSON array")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                   help="seconds one check may take before it is a timeout")
    p.add_argument("--deadline", type=_seconds, default=None, metavar="S",
                   help="seconds for the whole run: what is left then is skipped (runs implementations in subprocesses)")
    _add_executor(p)

    p = sub.add_parser("bench", help="time implementations; append JSON-lines records", epilog=SECURITY_NOTE)
    _add_selection(p)
    p.add_argument("--out", metavar="FILE", help="append bench records (JSON lines) to FILE")
    p.add_argument("--budget", type=_seconds, default=None, metavar="S", help="seconds for the whole run")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="BLAS and torch threads")
    p.add_argument("--resume", action="store_true", help="skip what --out already holds")
    p.add_argument("--deadline", type=_seconds, default=None, metavar="S",
                   help="seconds for the whole run, whatever the budget: an item still running then is a timeout, "
                        "the rest skipped")
    _add_executor(p)
    p.add_argument("--baseline", default=None, metavar="SPEC",
                   help="time SPEC interleaved with the implementations (old code against new) and compare")
    p.add_argument("--threshold", default="10", metavar="PCT",
                   help="with --baseline: the change in %% that counts as a regression (default 10)")
    p.add_argument("--metric", default="time", choices=("time", "instructions"),
                   help="instructions: also count one call of each unit under valgrind")
    p.add_argument("--no-interleave", action="store_true",
                   help="do not time the implementations of a case again in interleaved rounds")

    p = sub.add_parser("report", help="tables and plots from records")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="convbench records (.jsonl/.json), pytest-benchmark JSON, asv results directories")
    p.add_argument("--out", default=DEFAULT_REPORT_DIR, metavar="DIR")
    p.add_argument("--format", default="md,html,csv", metavar="FMTS", help="comma-separated: md, html, csv")
    p.add_argument("--baseline", default=None,
                   help="implementation speedups are measured against (default: torch_cpu, where measured)")

    p = sub.add_parser("compare", help="compare two sets of bench records, or a --baseline run's baseline "
                                       "with its other implementations")
    p.add_argument("old")
    p.add_argument("new", nargs="?", default=None, help="omitted: OLD is a bench --baseline run")
    p.add_argument("--threshold", default="10", metavar="PCT", help="regression threshold in %% (default 10)")

    p = sub.add_parser("machine", help="fingerprint and measured peaks of this machine")
    p.add_argument("--json", action="store_true")
    p.add_argument("--refresh", action="store_true",
                   help="measure the peaks again now (they are cached per machine; one measured "
                        "while other processes were busy reads low)")

    p = sub.add_parser("run", help="the main job: check, bench and report the shipped implementations "
                                   "(and yours, with --impl)", epilog=SECURITY_NOTE)
    p.add_argument("--impl", action="append", metavar="SPEC",
                   help="your implementation (path/to/file.py:OBJ, pkg.module:OBJ): checked, benchmarked beside the "
                        "shipped families and first in the report (repeatable)")
    p.add_argument("--out", default=DEFAULT_REPORT_DIR, metavar="DIR")
    p.add_argument("--budget", type=_seconds, default=100.0, metavar="S",
                   help="seconds for benchmarking (default 100)")
    p.add_argument("--op", action="append", default=None, help="operators (default: all with implementations)")
    _add_executor(p)
    return ap
