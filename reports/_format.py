"""Display frames: the analysis tables with numbers in human units, ready for any renderer."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from convbench.records import causes_of

__all__ = ["fmt_time", "fmt_bytes", "fmt_num", "display_cases", "display_impls", "display_scaling",
           "overview", "overviews", "display_checks"]


def _bad(x: Any) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA


def fmt_time(s: Any) -> str:
    if _bad(s):
        return ""
    s = float(s)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_bytes(b: Any) -> str:
    if _bad(b):
        return ""
    b = float(b)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def fmt_num(x: Any, digits: int = 3, suffix: str = "") -> str:
    """``digits`` significant digits, without scientific notation for large numbers (1234 not 1.23e+03)."""
    if _bad(x):
        return ""
    x = float(x)
    return f"{x:.0f}{suffix}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}{suffix}"


def _status(r: Any) -> str:
    if r.status == "ok":
        return "ok"
    return f"{r.status}: {r.reason}" if isinstance(r.reason, str) and r.reason else str(r.status)


def _impl(r: Any) -> str:
    """The implementation, with what it ran for one that chooses (fastest: ``fastest → shift_gemm``,
    and ``(cost model)`` where no measured data decided)."""
    choice = getattr(r, "choice", None)
    if not isinstance(choice, str) or not choice:
        return str(r.impl)
    by = getattr(r, "chosen_by", None)
    return f"{r.impl} → {choice}" + (f" ({by})" if isinstance(by, str) and by and by != "crossover" else "")


def display_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """The per-case table in display units, one row per machine x case x direction x impl."""
    rows = []
    for r in cases.itertuples(index=False):
        rows.append({
            "machine": r.machine, "op": r.op, "case": r.case, "direction": r.direction, "dtype": r.dtype,
            "impl": _impl(r),
            "median": fmt_time(r.t_median_s), "IQR": fmt_time(r.t_iqr_s), "GFLOP/s": fmt_num(r.gflops),
            "% peak": fmt_num(r.pct_peak, 2, " %"),
            "speedup": (fmt_num(r.speedup, 3, "x") + (" ★" if r.fastest else "")) if not _bad(r.speedup)
            else ("★" if r.fastest else ""),
            "peak mem": fmt_bytes(r.peak_mem_bytes), "min bytes": fmt_bytes(r.bytes_min),
            "mem / min": fmt_num(r.mem_overhead, 3, "x"), "err_ratio": fmt_num(r.err_ratio, 2),
            "check": r.check if isinstance(r.check, str) else "", "status": _status(r),
        })
    return pd.DataFrame(rows)


def display_impls(impls: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "machine": impls["machine"], "op": impls["op"], "impl": impls["impl"],
        "geomean speedup": [fmt_num(v, 3, "x") for v in impls["geomean_speedup"]],
        "vs": impls["baseline"].fillna(""),
        "cases won": impls["won"], "ok": impls["ok"], "failed": impls["failed"], "skipped": impls["skipped"],
        "median GFLOP/s": [fmt_num(v) for v in impls["median_gflops"]],
        "best % peak": [fmt_num(v, 2, " %") for v in impls["best_pct_peak"]],
        "checks passed": [_int(v) for v in impls["checks_passed"]],
        "checks failed": [_int(v) for v in impls["checks_failed"]],
        "max err_ratio": [fmt_num(v, 2) for v in impls["max_err_ratio"]],
    })
    return out


def _int(v: Any) -> str:
    return "" if _bad(v) else str(int(v))


def display_scaling(fits: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in fits.itertuples(index=False):
        ci = f"[{r.ci_low:.2f}, {r.ci_high:.2f}]" if np.isfinite(r.ci_low) else "n/a (< 3 points)"
        rows.append({"machine": r.machine, "op": r.op, "impl": r.impl, "direction": r.direction, "dtype": r.dtype,
                     "against": r.against, "exponent": fmt_num(r.exponent, 3), "95% CI": ci,
                     "R²": fmt_num(r.r2, 3), "points": int(r.points), "over": r.source})
    return pd.DataFrame(rows, columns=["machine", "op", "impl", "direction", "dtype", "against", "exponent", "95% CI",
                                       "R²", "points", "over"])


def overview(cases: pd.DataFrame) -> pd.DataFrame:
    """Wide view: one row per machine x case x direction, one column per implementation,
    each cell the median time and speedup (or the status)."""
    if cases.empty:
        return pd.DataFrame()

    def cell(r: Any) -> str:
        if r.status != "ok":
            return str(r.status)
        sp = f" ({fmt_num(r.speedup, 2)}x)" if not _bad(r.speedup) else ""
        return fmt_time(r.t_median_s) + sp + (" ★" if r.fastest else "")

    c = cases.assign(cell=[cell(r) for r in cases.itertuples(index=False)])
    idx = ["machine", "op", "case", "direction", "dtype"]
    wide = c.pivot_table(index=idx, columns="impl", values="cell", aggfunc="first", sort=False).fillna("")
    wide.columns.name = None
    order = c[idx].drop_duplicates()  # the case table's order: natural, forward first
    return order.merge(wide.reset_index(), on=idx, how="left").reset_index(drop=True)


def display_checks(bad: pd.DataFrame) -> pd.DataFrame:
    """The failed checks as shown: the likely cause the message names (if any) in a column of
    its own, the message without it."""
    recs = bad.to_dict("records")
    causes = ["; ".join(causes_of({"status": r["status"], "message": r.get("message") or ""})) for r in recs]
    messages = [str(r.get("message") or "") for r in recs]
    messages = [m.replace(f"; likely cause: {c}", "") if c and "; likely cause: " in m else m
                for m, c in zip(messages, causes)]
    return pd.DataFrame({"impl": bad["impl"], "case": bad["case"], "direction": bad["direction"],
                         "check": bad["check"], "status": bad["status"],
                         "err_ratio": [fmt_num(v, 2) for v in pd.to_numeric(bad["err_ratio"], errors="coerce")],
                         "likely cause": causes, "message": messages, "repro": bad["repro"].fillna("")})


def overviews(cases: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """:func:`overview` split per operator, each with only that operator's implementations."""
    out = []
    for op, g in cases.groupby("op", sort=True):
        wide = overview(g).drop(columns="op")
        out.append((str(op), wide.loc[:, (wide != "").any(axis=0)]))
    return out
