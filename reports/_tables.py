"""Tables: per case and implementation, and per implementation, always per machine."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from convbench.records import FAILING
from reports._load import natural_key

__all__ = ["case_table", "impl_table", "check_table", "resolve_baseline", "latest", "KEY"]

#: one measurement: machines are never mixed
KEY = ["machine", "op", "case", "direction", "dtype"]
_CHECK_RANK = {"passed": 0, "skipped": 1, "unsupported": 1, "failed": 3, "error": 3, "timeout": 3, "crashed": 3}


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The last record of each (machine, op, case, direction, dtype, impl): a resumed or repeated
    run supersedes what came before it."""
    if frame.empty:
        return frame
    order = frame.assign(_ord=np.arange(len(frame)))
    try:
        order = order.sort_values(["time", "_ord"], na_position="first", kind="stable")
    except TypeError:  # times of mixed kinds (ISO strings and epoch seconds): keep the input order
        pass
    return order.drop_duplicates(KEY + ["impl"], keep="last").drop(columns="_ord").sort_index()


def resolve_baseline(frame: pd.DataFrame, baseline: str) -> dict[tuple[str, str], str | None]:
    """Baseline per (machine, op): ``baseline`` where it has ok records there, else the
    implementation with the most ok records (ties by name, so speedups stay defined), else None."""
    out: dict[tuple[str, str], str | None] = {}
    for (m, op), g in frame.groupby(["machine", "op"]):
        ok = g[g["status"] == "ok"]
        if (ok["impl"] == baseline).any():
            out[(m, op)] = baseline
        else:
            counts = sorted(ok["impl"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
            out[(m, op)] = str(counts[0][0]) if counts else None
    return out


def case_table(frame: pd.DataFrame, baseline: str = "torch_cpu",
               check_records: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per machine x case x direction x dtype x implementation.

    Columns: median time, GFLOP/s, % of measured peak, ``speedup`` (baseline time / this time, on
    the same machine, case, direction and dtype), ``fastest``, peak memory and its overhead over
    ``bytes_min``, the worst ``err_ratio`` and check status from ``check_records``, status and reason.
    """
    f = latest(frame).copy()
    base = resolve_baseline(f, baseline)
    f["baseline"] = [base.get(k) for k in zip(f["machine"], f["op"])]
    ok = f[f["status"] == "ok"]
    bt = ok[ok["impl"] == ok["baseline"]].set_index(KEY)["t_median_s"]
    key_idx = pd.MultiIndex.from_frame(f[KEY])
    f["speedup"] = bt.reindex(key_idx).to_numpy() / f["t_median_s"].where(f["status"] == "ok").to_numpy()
    best = ok.groupby(KEY)["t_median_s"].min()
    f["fastest"] = (f["status"] == "ok") & np.isclose(f["t_median_s"], best.reindex(key_idx).to_numpy(), rtol=0, atol=0)
    f["mem_overhead"] = f["peak_mem_bytes"] / f["bytes_min"].where(f["bytes_min"] > 0)
    # asv rows carry their own err_ratio (track_err_ratio); check records, when given, take precedence
    rec_err = pd.to_numeric(f.pop("err_ratio"), errors="coerce") if "err_ratio" in f else pd.Series(np.nan, f.index)
    f = f.drop(columns=[c for c in ("check",) if c in f.columns])
    chk = _check_summary(check_records or frame.attrs.get("checks") or [], by_case=True)
    if chk.empty:
        f["err_ratio"], f["check"] = rec_err.to_numpy(), None
    else:
        f = f.merge(chk, how="left", on=[c for c in ("op", "impl", "case", "direction") if c in chk.columns])
        f["err_ratio"] = f["err_ratio"].fillna(pd.Series(rec_err.to_numpy(), index=f.index))
    cols = KEY + ["impl", "status", "reason", "t_median_s", "t_min_s", "t_iqr_s", "gflops", "pct_peak",
                  "speedup", "baseline", "fastest", "peak_mem_bytes", "bytes_min", "mem_overhead",
                  "workspace_bytes", "intensity", "flops", "err_ratio", "check", "choice", "chosen_by", "threads"]
    params = [c for c in f.columns if c.startswith("param_")]
    f = f[cols + params].assign(_dir=f["direction"] != "forward")
    f = f.sort_values(["machine", "op", "case", "_dir", "direction", "dtype", "t_median_s"], kind="stable",
                      key=lambda s: natural_key(s) if s.name == "case" else s)
    return f.drop(columns="_dir").reset_index(drop=True)


def impl_table(cases: pd.DataFrame, check_records: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per machine x implementation: geometric-mean speedup, cases won, failed, skipped."""
    rows = []
    for (m, op, impl), g in cases.groupby(["machine", "op", "impl"], sort=True):
        ok = g[g["status"] == "ok"]
        sp = ok["speedup"].dropna()
        sp = sp[sp > 0]
        rows.append({
            "machine": m, "op": op, "impl": impl, "cases": len(g), "ok": len(ok),
            "geomean_speedup": float(np.exp(np.log(sp).mean())) if len(sp) else np.nan,
            "speedup_cases": len(sp), "baseline": g["baseline"].iloc[0],
            "won": int(ok["fastest"].sum()),
            "failed": int(g["status"].isin(FAILING).sum()),
            "skipped": int((g["status"] == "skipped").sum()),
            "median_gflops": float(ok["gflops"].median()) if len(ok) else np.nan,
            "best_pct_peak": float(ok["pct_peak"].max()) if ok["pct_peak"].notna().any() else np.nan,
        })
    out = pd.DataFrame(rows, columns=["machine", "op", "impl", "cases", "ok", "geomean_speedup", "speedup_cases",
                                      "baseline", "won", "failed", "skipped", "median_gflops", "best_pct_peak"])
    chk = _check_summary(check_records or cases.attrs.get("checks") or [], by_case=False)
    if not chk.empty:
        out = out.merge(chk, how="left", on=[c for c in ("op", "impl") if c in chk.columns])
    else:
        out["checks_passed"] = out["checks_failed"] = np.nan
        out["max_err_ratio"] = np.nan
    return out.sort_values(["machine", "op", "geomean_speedup"], ascending=[True, True, False], na_position="last",
                           kind="stable").reset_index(drop=True)


def check_table(check_records: list[dict[str, Any]]) -> pd.DataFrame:
    """The check records that did not pass or skip, worst first."""
    cols = ["impl", "op", "case", "direction", "check", "status", "max_abs_err", "err_ratio", "tolerance",
            "message", "repro"]
    df = pd.DataFrame(check_records or [], columns=None if check_records else cols)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    bad = df[df["status"].isin(FAILING)]
    return bad[cols].sort_values(["impl", "case", "direction"], kind="stable").reset_index(drop=True)


def _check_summary(records: list[dict[str, Any]], by_case: bool) -> pd.DataFrame:
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame(records)
    for c in ("impl", "case", "direction", "status", "err_ratio"):
        if c not in df.columns:
            df[c] = None
    df["err_ratio"] = pd.to_numeric(df["err_ratio"], errors="coerce")
    # bench directions are forward/backward; checks name each gradient
    df["direction"] = df["direction"].astype(str).where(df["direction"].astype(str) == "forward", "backward")
    df["_rank"] = df["status"].map(_CHECK_RANK).fillna(2)
    by_op = ["op"] if "op" in df.columns and df["op"].notna().all() else []
    if by_case:
        key = by_op + ["impl", "case", "direction"]
        g = df.groupby(key)
        worst = df.loc[g["_rank"].idxmax(), key + ["status"]]
        return worst.rename(columns={"status": "check"}).merge(g["err_ratio"].max().rename("err_ratio").reset_index(), on=key)
    g = df.groupby(by_op + ["impl"])
    return pd.DataFrame({"checks_passed": g["status"].apply(lambda s: int((s == "passed").sum())),
                         "checks_failed": g["status"].apply(lambda s: int(s.isin(FAILING).sum())),
                         "max_err_ratio": g["err_ratio"].max()}).reset_index()
