"""The ``convbench`` command: list, check, bench, report, compare, machine, run.

Exit status: 0 success, 1 a check failed or a regression was found, 2 a usage error.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from convbench import store
from convbench._errors import ParamError, one_line
from convbench._interrupt import Terminated, sigterm_as_interrupt
from convbench._parser import AlreadySaid, UsageError, build_parser
from convbench.cases import cases_from, get_suite, parse_descriptor, with_dtype
from convbench.execute import get_executor
from convbench.main_job import run_main_job
from convbench.measure.bench import run_bench
from convbench.measure.fleet import run_bench_on
from convbench.measure.instructions import valgrind_missing
from convbench.measure.machine import describe, fingerprint, peaks
from convbench.measure.remote import LoadError, is_user_spec, load_isolated
from convbench.measure.summary import format_summary
from convbench.ops import get_op
from convbench.records import FAILING
from convbench.registry import implementations, load_impl, registered
from convbench.verify import format_report, run_checks
from convbench.verify.report import checked_in, verdict_lines

__all__ = ["main"]

def _executor(args: argparse.Namespace) -> Any:
    """The executor ``--executor``/``--jobs`` name (a usage error when they are wrong)."""
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    try:
        return get_executor(args.executor, args.jobs)
    except ParamError as exc:
        raise UsageError(f"--executor {args.executor}: {exc}") from None


# --- commands ----------------------------------------------------------------------------------

#: seconds at least that loading a user's file may take when --timeout is shorter (imports torch)
MIN_LOAD_TIMEOUT = 20.0
#: --threads at most (more only oversubscribes; tens of thousands crash the thread libraries)
MAX_THREADS = max(1024, 4 * (os.cpu_count() or 1))
#: seconds loading a user's file may take without --timeout
LOAD_TIMEOUT = 60.0


def _selection(args: argparse.Namespace, default_suite: str) -> tuple[list[Any], list[Any]]:
    """(implementations, cases) the command line names. A user's file or module is loaded only in
    an isolated worker; one that fails to load is said on one line and left out
    (``args.load_failed``), the others go on."""
    if args.op is not None:
        _named("--op", args.op, get_op)
    timeout = getattr(args, "timeout", None)
    load_timeout = max(timeout, MIN_LOAD_TIMEOUT) if timeout else LOAD_TIMEOUT
    if getattr(args, "deadline", None):
        load_timeout = min(load_timeout, max(_left(args), 0.1))
    impls, args.load_failed = [], []
    for spec in args.impl or []:
        try:
            inst = _named("--impl", spec, lambda v: _load_spec(v, args.op, "--impl", load_timeout))
        except LoadError as exc:
            print(f"convbench {args.command}: error: --impl {spec}: {one_line(str(exc))}", file=sys.stderr)
            args.load_failed.append(spec)
            continue
        if args.op is None:  # a pooling layer class names its operator itself
            args.op = inst.info.op
        if inst.info.op != args.op:
            raise ParamError(f"impl {spec!r} is a {inst.info.op} implementation, not {args.op}")
        impls.append(inst)
    if args.impl and not impls:
        raise AlreadySaid()
    args.op = args.op or "conv2d"
    get_op(args.op)
    for flag, given, get in (("--suite", args.suite, get_suite), ("--case", args.case, parse_descriptor)):
        for value in given or []:   # each said with its option, before the cases are put together
            _named(flag, value, lambda v: get(v, args.op))
    cases = cases_from(args.op, args.suite, args.case, default=default_suite)
    if not args.impl:
        impls = registered(args.op)
    if not impls:
        raise UsageError(f"no {args.op} implementation is registered")
    for i in impls:  # a form convbench drives piece by piece: said before its results
        if "(inside the timed call)" in i.info.description:
            print(f"note: {i.info.name} is a {i.info.description}", flush=True)
    return impls, cases


def cmd_list(args: argparse.Namespace) -> int:
    infos = implementations(args.op)
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    rows = [(i.op, i.name, i.backend, i.device, ",".join(sorted(i.directions)),
             "yes" if i.available else f"no: {i.reason}") for i in infos]
    _print_table(("op", "name", "backend", "device", "directions", "available"), rows)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    # checking wants small cases that cover every parameter: the edge suite
    if args.json:  # refused before anything runs, not after
        _named("--json", args.json, store.check_writable_json)
    impls, cases = _selection(args, "edge")
    done: list[dict] = []
    try:
        with _executor(args) as ex:
            t0 = time.perf_counter()
            records = run_checks(impls, with_dtype(cases, args.dtype), timeout=args.timeout, executor=ex,
                                 deadline=None if args.deadline is None else max(_left(args), 0.1), sink=done)
            took = time.perf_counter() - t0
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finished checks are reported and kept
        if done:
            print(f"the {len(done)} check records finished before the interruption:\n{format_report(done)}", flush=True)
            if args.json:
                _named("--json", args.json, lambda v: store.write_json(v, done))
                args.kept = args.json
        raise
    # the results are printed first: a --json that fails to write loses none of them
    print(format_report(records), flush=True)
    # what it cost where it ran (compare --jobs 1, the default and a cluster on the same checks)
    print(checked_in(records, took), file=sys.stderr)
    if args.json:
        _named("--json", args.json, lambda v: store.write_json(v, records))
    if args.load_failed:
        return 2
    return 1 if any(r["status"] in FAILING for r in records) else 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.resume and not args.out:
        raise UsageError("--resume needs --out FILE (the records to resume from)")
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        # tens of thousands of threads end the process in the thread libraries (a segfault)
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS} (this machine has {os.cpu_count()} "
                         f"cores), got {args.threads}")
    if args.out:  # an output that cannot take the records is refused before anything is measured
        _named("--out", args.out, store.check_appendable)
    threshold = _threshold(args.threshold)
    impls, cases = _selection(args, "quick")
    if args.metric == "instructions" and valgrind_missing():
        raise UsageError(str(valgrind_missing()))
    if args.executor and args.executor != "local" and (args.baseline or args.metric != "time" or args.deadline):
        raise UsageError(f"--executor {args.executor}: --baseline, --deadline and --metric instructions are for runs on "
                         f"this machine; run them without a cluster")
    baseline = _load_baseline(args) if args.baseline else None
    if baseline is not None and any(baseline is i for i in impls):
        # a registered name is one object: it cannot be timed against itself (a file can: each
        # spec is loaded in a worker of its own, so an unchanged copy can be checked for noise)
        raise UsageError(f"--baseline {args.baseline!r} is also an --impl: the baseline is the old code, "
                         f"--impl the new")
    out = Path(args.out) if args.out else None
    with _executor(args) as ex:
        if ex.remote:
            records = run_bench_on(ex, impls, cases, out=out, budget=args.budget, threads=args.threads,
                                   resume=args.resume)
        else:  # here, one benchmark at a time
            records = run_bench(impls, cases, out=out, budget=args.budget, threads=args.threads, resume=args.resume,
                                baseline=baseline, interleave_rounds=not args.no_interleave, metric=args.metric,
                                deadline=None if args.deadline is None else max(_left(args), 0.1))
    print(format_summary(records))
    if args.load_failed:
        return 2
    if baseline is not None:
        from reports.compare import compare  # deferred: pandas, as for report

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ab.jsonl"
            for r in records:
                store.append(path, r)
            text, regressed = compare(path, None, threshold_pct=threshold, title="compare in this run")
        print(text)
        if regressed:
            return 1
    if records and not any(r.get("status") == "ok" for r in records):
        print("nothing was measured (the reasons are above)", file=sys.stderr)
        return 1
    return 0


def _named(flag: str, value: str, fn: Any) -> Any:
    """``fn(value)``; its refusal of ``value`` as a usage error naming the option and the value."""
    try:
        return fn(value)
    except (ParamError, store.RecordFileError) as exc:
        text = str(exc)
        for head in (f"{value}: ", f"{Path(value).resolve()}: "):
            text = text[len(head):] if text.startswith(head) else text
        raise UsageError(f"{flag} {value!r}: {text}") from None


def _load_spec(spec: str, op: str | None, flag: str, timeout: float, name_op: str | None = "conv2d") -> Any:
    """The implementation ``spec`` names (``flag`` says which option gave it): a registered name
    here, a user's file or module only in an isolated worker, where its import cannot hang, end or
    print into the command; a registered name is looked up under ``op``, else ``name_op`` (None:
    every operator). Raises LoadError when it cannot be loaded."""
    if is_user_spec(spec):
        if not all(spec.rpartition(":")[::2]):
            raise UsageError(f"{flag} {spec!r}: expected NAME, path/to/file.py:OBJECT or package.module:OBJECT")
        return load_isolated(spec, op, timeout)
    return load_impl(spec, op=op or name_op)


def _load_baseline(args: argparse.Namespace) -> Any:
    """The implementation ``--baseline`` names, loaded as ``--impl`` is; one that cannot be loaded
    is a usage error."""
    try:
        return _load_spec(args.baseline, args.op, "--baseline", max(_left(args), 0.1) if args.deadline else LOAD_TIMEOUT)
    except (LoadError, ParamError) as exc:
        raise UsageError(f"--baseline {args.baseline!r}: {one_line(str(exc))}") from None


def _threshold(text: str) -> float:
    try:
        value = float(str(text).rstrip("%"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--threshold must be a percentage >= 0 like 10 or 10%, got {text!r}")
    return value


def cmd_report(args: argparse.Namespace) -> int:
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = sorted(set(formats) - {"md", "html", "csv"})
    if bad:
        raise UsageError(f"--format takes md, html, csv; got {', '.join(bad)}")
    for i in args.inputs:
        if not Path(i).exists():
            raise UsageError(f"report input {i!r} does not exist")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out!r} is an existing file; give a directory for the report")
    import reports  # deferred: pandas, scipy and matplotlib load in seconds; only reports need them

    frame = _read_inputs(reports.load, [Path(i) for i in args.inputs])
    if frame.empty:   # an empty file (a run that ended before its first record): nothing to report
        raise UsageError(f"report input{'s' if len(args.inputs) > 1 else ''} "
                         f"{', '.join(repr(i) for i in args.inputs)}: no records in {'them' if len(args.inputs) > 1 else 'it'}")
    held = sorted(set(frame["impl"].dropna())) if "impl" in frame else []
    if args.baseline is not None and args.baseline not in held:   # the default may be absent; a name given may not
        raise UsageError(f"--baseline {args.baseline!r}: no implementation of that name in the records "
                         f"(they hold {', '.join(held[:12]) or 'none'}{' ...' if len(held) > 12 else ''})")
    args.baseline = args.baseline or "torch_cpu"
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        paths = reports.write_report(frame, Path(args.out), formats=formats, baseline=args.baseline)
    except OSError as exc:
        raise UsageError(f"--out {args.out!r}: the report cannot be written there "
                         f"({exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''})") from None
    print(reports.summary_text(frame, baseline=args.baseline))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    threshold = _threshold(args.threshold)
    for i in (args.old, args.new):
        if i is not None and not Path(i).exists():
            raise UsageError(f"compare input {i!r} does not exist")
    from reports.compare import compare  # deferred: pandas and scipy, as for cmd_report

    text, regressed = _read_inputs(compare, Path(args.old), None if args.new is None else Path(args.new),
                                   threshold_pct=threshold)
    print(text)
    return 1 if regressed else 0


def cmd_machine(args: argparse.Namespace) -> int:
    fp = fingerprint()
    pk = peaks(fp, refresh=args.refresh)
    if args.json:
        print(json.dumps({"fingerprint": fp, "peaks": pk}, indent=2))
    else:
        print(describe(fp, pk))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Check, bench and report every operator's shipped implementations into ``--out``; with
    ``--impl``, the user's own beside them, first in the report."""
    import reports  # deferred: pandas and matplotlib, as for report

    for op in args.op or []:
        get_op(op)
    # the user's implementations, loaded before anything is measured (a file only in a worker): one
    # that cannot be loaded is a usage error
    mine = []
    for spec in args.impl or []:
        try:
            mine.append(_load_spec(spec, args.op[0] if args.op and len(args.op) == 1 else None, "--impl", LOAD_TIMEOUT,
                                   name_op=None))
        except LoadError as exc:
            raise UsageError(f"--impl {spec!r}: {one_line(str(exc))}") from None
    for spec, impl in zip(args.impl or [], mine):
        if args.op and impl.info.op not in args.op:
            raise UsageError(f"--impl {spec} is a {impl.info.op} implementation; --op names {', '.join(args.op)}")
    highlight = [m.info.name for m in mine]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out!r} is an existing file; give a directory for the run")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out!r} cannot be created ({exc.strerror or exc})") from None
    with _executor(args) as ex:
        job = run_main_job(out, args.budget, args.op, mine=mine, executor=ex, say=lambda line: print(line, flush=True),
                           note=lambda line: print(line, file=sys.stderr))
    check_records = job.check_records
    frame = reports.load([job.bench_path])
    # written whatever the checks said: a failing implementation's report is the one most needed
    paths = reports.write_report(frame, out, formats=["md", "html", "csv"], check_records=check_records,
                                 highlight=highlight)
    bad = [r for r in check_records if r["status"] in FAILING]
    if bad:  # the failures in full first, so the verdict and the speed table end the output
        print()
        print(format_report(bad))
    print()
    order = highlight + [r["impl"] for r in check_records if r["impl"] not in highlight]
    print("\n".join(verdict_lines(sorted(check_records, key=lambda r: order.index(r["impl"])),
                                   warn=highlight or None)))
    print()
    print(reports.summary_text(frame, highlight=highlight))
    print(f"\nreport: {paths.get('md', out / 'report.md')}  html: {paths.get('html', out / 'index.html')}  "
          f"({time.perf_counter() - job.started:.0f} s)")
    return 1 if bad else 0


# --- helpers -----------------------------------------------------------------------------------

def _left(args: argparse.Namespace) -> float:
    """Seconds left of ``--deadline``, which counts from the command's start."""
    return args.deadline - (time.monotonic() - args.started)


def _read_inputs(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)`` where a file it reads that is not what it should be is a usage error (one line)."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, OSError) as exc:  # RecordFileError, UnicodeDecodeError, bad JSON, a bad record
        raise UsageError(" ".join(str(exc).split()) or type(exc).__name__) from None


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for line in (header, ["-" * w for w in widths], *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())


COMMANDS = {"list": cmd_list, "check": cmd_check, "bench": cmd_bench, "report": cmd_report,
            "compare": cmd_compare, "machine": cmd_machine, "run": cmd_run}


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    try:
        args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
        args.started = started
    except UsageError as exc:
        print(f"{exc.args[1] if len(exc.args) > 1 else 'convbench'}: error: {one_line(exc.args[0])}",
              file=sys.stderr)
        return 2
    try:
        with sigterm_as_interrupt():
            return COMMANDS[args.command](args)
    except AlreadySaid:
        return 2
    except (UsageError, ParamError, store.RecordFileError) as exc:
        print(f"convbench {args.command}: error: {one_line(exc.args[0] if exc.args else exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        kept = getattr(args, "out", None) if args.command in ("bench", "run") else getattr(args, "kept", None)
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        wrote = kept and Path(kept).exists() and (Path(kept).is_dir() or Path(kept).stat().st_size > 0)
        print(f"convbench {args.command}: {how}" + (f"; the records written to {kept} so far are kept" if wrote else
                                                    f"; nothing was written to {kept}" if kept else ""), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:
        # the reader went away (`convbench list | head`): stop quietly, as other command-line
        # tools do; stdout goes to /dev/null so that flushing it at exit raises nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug of convbench's own: one line, the traceback on request
        if os.environ.get("CONVBENCH_DEBUG"):
            raise
        print(f"convbench {args.command}: internal error: {type(exc).__name__}: {one_line(exc)} "
              f"(this is a bug in convbench; CONVBENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1



if __name__ == "__main__":
    sys.exit(main())
