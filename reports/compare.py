"""``convbench compare OLD NEW``: per-measurement change in median time, tested on the raw samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from reports._format import fmt_time
from convbench.records import FAILING
from reports._load import load
from reports._render import rich_tables_text
from reports._tables import latest

__all__ = ["compare", "compare_frames", "ALPHA"]

#: significance level of the Mann-Whitney U test. Strict, because a run compares many
#: measurements at once and a false alarm costs a person's time
ALPHA = 0.01
_KEY = ["op", "impl", "case", "direction", "dtype"]


def compare(old: Path, new: Path, threshold_pct: float = 10.0, alpha: float = ALPHA) -> tuple[str, bool]:
    """Compare two sets of bench records.

    Parameters
    ----------
    old, new
        Anything :func:`reports.load` reads (record files, asv results directories).
    threshold_pct
        A change is a regression only when the new median is slower by more than this many percent
        *and* the samples differ significantly (two-sided Mann-Whitney U, ``alpha``).
    alpha
        Significance level.

    Returns
    -------
    (text, regressed)
        A table of every measurement present in both, with the verdict; ``regressed`` is True when
        any measurement regressed or went from ok to failing.
    """
    if not np.isfinite(threshold_pct) or threshold_pct < 0:
        raise ValueError(f"threshold_pct must be a non-negative percentage, got {threshold_pct!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    table, notes = compare_frames(load([Path(old)]), load([Path(new)]), threshold_pct, alpha)
    regressed = bool(table["verdict"].isin(["SLOWER", "NOW FAILING"]).any()) if len(table) else False
    counts = table["verdict"].value_counts() if len(table) else pd.Series(dtype=int)
    head = (f"compare {old} -> {new}: {len(table)} measurements in both; threshold {threshold_pct:g} %, "
            f"Mann-Whitney U at alpha {alpha:g}\n")
    shown = table.assign(old=table["old_median"].map(fmt_time), new=table["new_median"].map(fmt_time),
                         change=table["change_pct"].map(lambda v: "" if pd.isna(v) else f"{v:+.1f} %"),
                         p=table["p_value"].map(lambda v: "" if pd.isna(v) else f"{v:.2g}"))
    cols = (["machine"] if "machine" in table and table["machine"].nunique() > 1 else []) + \
        ["impl", "case", "direction", "dtype", "old", "new", "change", "p", "verdict"]
    text = head + rich_tables_text([("Changes, largest slowdown first", shown[cols])], width=150)
    summary = ", ".join(f"{n} {v.lower()}" for v, n in counts.items())
    text += "".join(f"note: {n}\n" for n in notes)
    text += f"{'REGRESSION' if regressed else 'no regression'}: {summary or 'nothing to compare'}\n"
    return text, regressed


def compare_frames(old: pd.DataFrame, new: pd.DataFrame, threshold_pct: float,
                   alpha: float = ALPHA) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table (one row per measurement in both frames) and notes."""
    notes: list[str] = []
    old, new = latest(old), latest(new)
    key = list(_KEY)
    if set(old["machine_id"]) & set(new["machine_id"]):
        key = ["machine_id"] + key
    elif len(old) and len(new):
        notes.append("the two sets come from different machines: compared across machines")
    both = old.merge(new, on=key, suffixes=("_old", "_new"))
    only_old, only_new = len(old) - len(both), len(new) - len(both)
    if only_old or only_new:
        notes.append(f"{only_old} measurement(s) only in OLD and {only_new} only in NEW are not compared")
    rows = []
    thr = threshold_pct / 100
    for r in both.itertuples(index=False):
        d = r._asdict()
        row = {k: d[k] for k in key}
        row["machine"] = d.get("machine_new", d.get("machine"))
        so, sn = d["status_old"], d["status_new"]
        row.update(old_median=d["t_median_s_old"], new_median=d["t_median_s_new"], change_pct=np.nan, p_value=np.nan)
        if so == "ok" and sn in FAILING:
            row["verdict"] = "NOW FAILING"
        elif so != "ok" or sn != "ok":
            row["verdict"] = ("fixed" if so in FAILING and sn == "ok" else so if so == sn
                              else f"{so} -> {sn}")
        else:
            change = d["t_median_s_new"] / d["t_median_s_old"] - 1
            row["change_pct"] = 100 * change
            a, b = d["samples_old"], d["samples_new"]
            if isinstance(a, list) and isinstance(b, list) and len(a) >= 3 and len(b) >= 3:
                p = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
                row["p_value"] = p
                sig = p < alpha
                row["verdict"] = ("SLOWER" if sig and change > thr else "faster" if sig and change < -thr
                                  else "unchanged")
            else:
                # without samples no test: a change is shown but never called a regression
                row["verdict"] = "untested (no samples)"
        rows.append(row)
    cols = key + ["machine", "old_median", "new_median", "change_pct", "p_value", "verdict"]
    table = pd.DataFrame(rows, columns=cols)
    order = table["verdict"].map({"NOW FAILING": 0, "SLOWER": 1}).fillna(2)
    table = table.assign(_o=order).sort_values(["_o", "change_pct"], ascending=[True, False], na_position="last")
    return table.drop(columns="_o").reset_index(drop=True), notes
