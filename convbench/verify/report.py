"""Check records as text: a summary per implementation, then every failure in full."""
from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["format_report", "format_failure", "causes_of", "STATUSES", "FAILING"]

STATUSES = ("passed", "failed", "error", "timeout", "crashed", "skipped", "unsupported")
FAILING = ("failed", "error", "timeout", "crashed")


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}"


def causes_of(r: dict[str, Any]) -> list[str]:
    """The likely causes a failed record's message names (convbench.verify.diagnose); none for
    an error, timeout or crash, whose message is the implementation's own."""
    if r.get("status", "failed") != "failed":
        return []
    msg = r.get("message") or ""
    head = msg.partition("; first bad: ")[0]
    if "; likely cause: " in head:
        return [head.partition("; likely cause: ")[2]]
    # the shape check's form: problems joined by "; ", each "... (likely cause: CAUSE)"
    return [part.partition("(likely cause: ")[2][:-1] for part in msg.split("; ")
            if "(likely cause: " in part and part.endswith(")")]


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


def format_report(records: list[dict[str, Any]]) -> str:
    """The text ``convbench check`` prints.

    Parameters
    ----------
    records : list of dict
        Check records (:func:`convbench.verify.run_checks`).

    Returns
    -------
    str
        A table with the count of each status per implementation and an overall verdict, then
        each failure, error, timeout and crash with the error and bound, the first bad indices
        with expected and got values, and the command that reproduces it.
    """
    if not records:
        return "no checks were run"
    impls = list(dict.fromkeys(r["impl"] for r in records))
    counts = {i: Counter(r["status"] for r in records if r["impl"] == i) for i in impls}
    cols = [s for s in STATUSES if any(c[s] for c in counts.values())]
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
        # one entry for the checks of a case that failed alike (an implementation that raises
        # fails every check of the case with the same message)
        same: dict[tuple, list[dict[str, Any]]] = {}
        for r in bad:
            key = tuple(r.get(k) for k in ("status", "impl", "op", "case", "direction", "message", "repro",
                                           "max_abs_err", "tolerance", "err_ratio"))
            same.setdefault(key, []).append(r)
        out += ["", f"{len(bad)} problem(s):", ""]
        out += [format_failure(rs[0], [r["check"] for r in rs]) + "\n" for rs in same.values()]
        causes = Counter(c for r in bad for c in causes_of(r))
        if causes:  # the answer in brief, after pages of failures
            out.append("likely causes (failed checks):")
            out += [f"  {n:4d}  {c}" for c, n in causes.most_common()]
            out.append("")
        out.append(f"FAILED: {len(bad)} of {len(records)} checks failed")
    else:
        n = sum(c["passed"] for c in counts.values())
        out.append(f"\nOK: {n} checks passed ({len(records) - n} skipped or unsupported)")
    return "\n".join(out)
