"""Check records as text: a summary per implementation, then every failure in full."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Collection

from convbench.records import CHECK_STATUSES, FAILING, causes_of

__all__ = ["format_report", "format_failure", "verdict_lines", "checked_in", "VALUE_CHECKS"]


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}"


def format_failure(r: dict[str, Any], checks: list[str] | None = None) -> str:
    """One failing record: what, where, the error against its bound, the first bad indices, the repro.
    ``checks`` names every check that failed this same way (default: the record's own)."""
    checks = checks or [r["check"]]
    which = f"check={checks[0]}" if len(checks) == 1 else f"checks={','.join(checks)}"
    lines = [f"{r['status'].upper()}  {r['impl']}  {r['op']}  {r['case']}  {r['direction']}  {which}"]
    if r.get("max_abs_err") is not None or r.get("err_ratio") is not None:
        lines.append(f"  max |err| {_num(r.get('max_abs_err'))}  bound {_num(r.get('tolerance'))}  "
                     f"err_ratio {_num(r.get('err_ratio'))}")
    msg = (r.get("message") or "").strip()
    head, sep, rest = msg.partition("; first bad: ")
    head, has_cause, cause = head.partition("; likely cause: ")
    if head:
        lines.append("  " + head)
    if has_cause:
        lines.append("  likely cause: " + cause)
    if sep:
        lines.append("  first bad indices:")
        lines += ["    " + part for part in rest.split("; ")]
    lines.append(f"  repro: {r['repro']}")
    return "\n".join(lines)


#: checks of the values (and shapes) an implementation computes; the others check its contract
VALUE_CHECKS = ("shape", "exact", "random", "nan")
#: what a failed contract check says about the implementation, in the verdict's words
_CONTRACT_WORDS = {"inputs_unmodified": "modifies an input in place",
                   "deterministic": "gives different results on the same inputs",
                   "results_kept": "returns an array it reuses",
                   "layout": "is wrong on non-contiguous or Fortran-ordered inputs"}


def _dtype_words(msg: str) -> str:
    """``grad_input has dtype float64 for float32 inputs; ...`` -> ``returns float64 for float32 inputs``."""
    m = re.search(r"has dtype (\w+) for (\w+) inputs", msg)
    if m:
        return f"returns {m.group(1)} for {m.group(2)} inputs"
    m = re.search(r"is a (\w+), not a numpy.ndarray", msg)
    return f"returns a {m.group(1)}, not a numpy.ndarray" if m else "returns the wrong type or dtype"


def _contract_line(recs: list[dict[str, Any]]) -> str:
    """What an implementation whose values are all right gets wrong, with what to do about it."""
    parts, advice = [], []
    dtype = [r for r in recs if r["check"] == "dtype"]
    if dtype:
        words = list(dict.fromkeys(_dtype_words(r.get("message") or "") for r in dtype))
        parts += words
        if any("float64 for float32" in w for w in words):
            advice.append("check it at its precision with --dtype float64, or keep the input's dtype")
        else:
            advice.append("return a NumPy array of the input's dtype")
    parts += list(dict.fromkeys(_CONTRACT_WORDS.get(r["check"], f"fails the {r['check']} check")
                                for r in recs if r["check"] != "dtype"))
    return "; ".join(parts) + (": " + "; ".join(advice) if advice else "")


def _coverage(impl: str, recs: list[dict[str, Any]]) -> str | None:
    """A warning when fewer than half of the cases ran, with the reasons the others could not."""
    cases = list(dict.fromkeys(r["case"] for r in recs))
    ran = {r["case"] for r in recs if r["status"] not in ("unsupported", "skipped")}
    if not cases or 2 * len(ran) >= len(cases):
        return None
    why: Counter[str] = Counter()
    for c in cases:
        if c not in ran:
            msgs = [r.get("message") or "" for r in recs if r["case"] == c and r["status"] in ("unsupported", "skipped")]
            why[msgs[0] if msgs else "no reason given"] += 1
    reasons = "; ".join(f"{n} x {m}" for m, n in why.most_common(3))
    more = f"; and {len(why) - 3} other reasons" if len(why) > 3 else ""
    return (f"{impl}: only {len(ran)} of {len(cases)} cases ran, so this verdict covers little; the others "
            f"could not: {reasons}{more}")


def verdict_lines(records: list[dict[str, Any]], warn: Collection[str] | None = None) -> list[str]:
    """One line per implementation: its checks passed and failed, values apart from contract, and a
    coverage warning where fewer than half of its cases ran (for the implementations in ``warn``;
    default all). In the order the records name them."""
    out = []
    for impl in dict.fromkeys(r["impl"] for r in records):
        recs = [r for r in records if r["impl"] == impl]
        bad = [r for r in recs if r["status"] in FAILING]
        passed = sum(r["status"] == "passed" for r in recs)
        if not passed and not bad:  # not available here, or nothing it supports: said once, why
            why = next((r.get("message") for r in recs if r.get("message")), "no case ran")
            out.append(f"{impl}: not checked: {why}")
            continue
        wrong_values = {(r["case"], r["direction"]) for r in bad if r["check"] in VALUE_CHECKS}
        # a layout check fails with the values where the values are wrong: a value failure then
        value_bad = [r for r in bad if r["check"] in VALUE_CHECKS or r["status"] != "failed" or r["check"] == "all"
                     or (r["check"] == "layout" and (r["case"], r["direction"]) in wrong_values)]
        contract_bad = [r for r in bad if r not in value_bad]
        if not bad:
            out.append(f"{impl}: OK, {passed} checks passed")
        elif not value_bad:
            values = sum(r["status"] == "passed" and r["check"] in VALUE_CHECKS for r in recs)
            out.append(f"{impl}: FAILED {len(bad)} contract checks; values right in all {values} checks; "
                       + _contract_line(contract_bad))
        else:
            kinds = Counter(r["check"] if r["status"] == "failed" else r["status"] for r in value_bad)
            what = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
            line = f"{impl}: FAILED {len(value_bad)} value checks ({what})"
            if contract_bad:
                line += f" and {len(contract_bad)} contract checks ({_contract_line(contract_bad)})"
            out.append(line + f"; {passed} passed")
        note = _coverage(impl, recs) if warn is None or impl in warn else None
        if note:
            out.append("  warning: " + note)
    return out


def _grouped(bad: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[str], list[str]]]:
    """Failures told once: (first record, the checks that failed alike in its case, the cases that
    failed the same way). An implementation that raises fails every check of a case with one
    message; a dtype fault fails the same check of every case with one message."""
    per_case: dict[tuple, list[dict[str, Any]]] = {}
    for r in bad:
        key = tuple(r.get(k) for k in ("status", "impl", "op", "case", "direction", "message", "repro",
                                       "max_abs_err", "tolerance", "err_ratio"))
        per_case.setdefault(key, []).append(r)
    same: dict[tuple, tuple[dict[str, Any], list[str], list[str]]] = {}
    for rs in per_case.values():
        first, checks = rs[0], [r["check"] for r in rs]
        key = (first["status"], first["impl"], first["op"], first["direction"], tuple(checks), first.get("message"),
               first.get("max_abs_err"), first.get("tolerance"), first.get("err_ratio"))
        if key in same:
            same[key][2].append(first["case"])
        else:
            same[key] = (first, checks, [first["case"]])
    return list(same.values())


def format_report(records: list[dict[str, Any]]) -> str:
    """The text ``convbench check`` prints.

    Parameters
    ----------
    records : list of dict
        Check records (:func:`convbench.verify.run_checks`).

    Returns
    -------
    str
        A table with the count of each status per implementation; each failure, error, timeout
        and crash with the error and bound, the first bad indices with expected and got values,
        and the command that reproduces it (identical failures of several cases told once, with
        their count and cases); the likely causes tallied; a verdict per implementation (value
        failures apart from contract failures, a warning where fewer than half of its cases ran)
        and an overall verdict.
    """
    if not records:
        return "no checks were run"
    impls = list(dict.fromkeys(r["impl"] for r in records))
    counts = {i: Counter(r["status"] for r in records if r["impl"] == i) for i in impls}
    cols = [s for s in CHECK_STATUSES if any(c[s] for c in counts.values())]
    header = ["impl", *cols]
    rows = [[i, *[str(counts[i][s]) for s in cols]] for i in impls]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
           for line in (header, ["-" * w for w in widths], *rows)]
    bad = [r for r in records if r["status"] in FAILING]
    # a skipped-after-timeouts or not-available implementation: say why once, not per case
    notes = {}
    for r in records:
        if r["status"] in ("skipped",) and r["impl"] not in notes:
            notes[r["impl"]] = r["message"]
    for i, why in notes.items():
        out.append(f"{i}: skipped: {why}")
    if bad:
        groups = _grouped(bad)
        out += ["", f"{len(bad)} problem(s):", ""]
        for first, checks, cases in groups:
            block = format_failure(first, checks)
            if len(cases) > 1:
                shown = ", ".join(cases[:12]) + (f", ... ({len(cases) - 12} more)" if len(cases) > 12 else "")
                block += f"\n  the same in {len(cases)} cases: {shown}"
            out.append(block + "\n")
        causes = Counter(c for r in bad for c in causes_of(r))
        if causes:  # the answer in brief, after pages of failures
            out.append("likely causes (failed checks):")
            out += [f"  {n:4d}  {c}" for c, n in causes.most_common()]
            out.append("")
    verdicts = verdict_lines(records)
    n = sum(c["passed"] for c in counts.values())
    # several, a failure, a coverage warning, or nothing checked (the reason is the answer)
    if len(impls) > 1 or bad or len(verdicts) > len(impls) or not n:
        out += ([] if out[-1] == "" else [""]) + verdicts
    if bad:
        out.append(f"FAILED: {len(bad)} of {len(records)} checks failed")
    else:
        # "OK" of nothing would read as a pass: every check skipped (too big, unavailable) is said so
        out.append(f"\nOK: {n} checks passed ({len(records) - n} skipped or unsupported)" if n else
                   f"\nNOTHING CHECKED: all {len(records)} checks were skipped or unsupported (reasons above)")
    return "\n".join(out)


def checked_in(records: list[dict[str, Any]], seconds: float) -> str:
    """One line: how many checks took how long, on which workers (the records' ``worker``)."""
    workers = sorted({str(r["worker"]) for r in records if r.get("worker")})
    shown = ", ".join(workers[:4]) + (f", ... ({len(workers) - 4} more)" if len(workers) > 4 else "")
    return (f"{len(records)} checks in {seconds:.1f} s"
            + (f" on {len(workers)} worker{'s' if len(workers) != 1 else ''}: {shown}" if workers else ""))
