"""``convbench compare OLD [NEW]``: per-measurement change, with the test that fits what was recorded.

Two files: the same measurements from two runs (old code, new code). One file: the records of a
``convbench bench --baseline SPEC`` run, its baseline against every other implementation of it.
Measurements timed in the same interleaved rounds are compared round by round (paired);
measurements from separate runs by their samples; instruction counts, where both sides have them,
by their ratio (see :mod:`reports._stats`). A change is a regression only when the test finds it
significant and the median and the minimum both moved past the threshold; between separate runs,
whose medians move with the machine's state (tens of % on a shared VM), the minimum alone, with the
test on each run's fastest samples.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from convbench.measure.hostload import OTHERS_HEAVY_PCT, STEAL_HEAVY_PCT, host_flags
from reports._format import fmt_time
from convbench.records import FAILING
from reports._load import load
from reports._render import rich_tables_text
from reports._stats import MIN_ROUNDS, Change, instructions_change, paired_change, unpaired_change
from reports._tables import latest

__all__ = ["compare", "compare_frames", "ALPHA"]

#: significance level of the tests. Strict, because a run compares many measurements at once and
#: a false alarm costs a person's time
ALPHA = 0.01
_KEY = ["op", "impl", "case", "direction", "dtype"]


def compare(old: Path, new: Path | None = None, threshold_pct: float = 10.0,
            alpha: float = ALPHA, title: str | None = None) -> tuple[str, bool]:
    """Compare two sets of bench records, or a baseline run's baseline with its other implementations.

    Parameters
    ----------
    old, new
        Anything :func:`reports.load` reads (record files, asv results directories). Without
        ``new``, ``old`` must hold the records of a ``convbench bench --baseline`` run.
    threshold_pct
        A change is a regression only when the new median and the new minimum are both slower by
        more than this many percent *and* the test finds the difference significant at ``alpha``
        (between separate runs: the minimum, and the test on the fastest samples).
    alpha
        Significance level.
    title
        The first words of the text (default: ``compare OLD -> NEW`` or ``compare in OLD``).

    Returns
    -------
    (text, regressed)
        A table of every measurement present in both, with the verdict and the smallest change each
        could detect; ``regressed`` is True when any measurement regressed or went from ok to failing.
    """
    if not np.isfinite(threshold_pct) or threshold_pct < 0:
        raise ValueError(f"threshold_pct must be a non-negative percentage, got {threshold_pct!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if new is None:
        frame = load([Path(old)])
        role = frame["role"] if "role" in frame else pd.Series("", index=frame.index)
        base = frame[role == "baseline"]
        if base.empty:
            raise ValueError(f"{str(old)!r} holds no baseline records: give two files, or one made by "
                             f"convbench bench --baseline SPEC")
        table, notes = compare_frames(base, frame[role != "baseline"], threshold_pct, alpha, baseline=True)
        head = f"{title or f'compare in {old}'}: the baseline against each implementation"
    else:
        table, notes = compare_frames(load([Path(old)]), load([Path(new)]), threshold_pct, alpha)
        head = title or f"compare {old} -> {new}"
    regressed = bool(table["verdict"].isin(["SLOWER", "NOW FAILING"]).any()) if len(table) else False
    counts = table["verdict"].value_counts() if len(table) else pd.Series(dtype=int)
    head += f": {len(table)} measurements in both; threshold {threshold_pct:g} %, alpha {alpha:g}\n"
    pct = lambda v: "" if pd.isna(v) else f"{v:+.1f} %"  # noqa: E731
    shown = table.assign(old=table["old_median"].map(fmt_time), new=table["new_median"].map(fmt_time),
                         change=table["change_pct"].map(pct), min=table["min_change_pct"].map(pct),
                         p=table["p_value"].map(lambda v: "" if pd.isna(v) else f"{v:.2g}"),
                         sees=table["detectable_pct"].map(lambda v: "" if pd.isna(v) else f"{v:.1f} %"))
    cols = (["machine"] if "machine" in table and table["machine"].nunique() > 1 else []) + \
        (["baseline"] if "baseline" in table else []) + \
        ["impl", "case", "direction", "dtype", "basis", "old", "new", "change", "min", "p", "sees", "verdict"]
    if table["flag"].astype(bool).any():
        cols.append("flag")
    text = head + rich_tables_text([("Changes, largest slowdown first", shown[cols])], width=170)
    summary = ", ".join(f"{n} {v.lower()}" for v, n in counts.items())
    text += "".join(f"note: {n}\n" for n in notes)
    sees = table["detectable_pct"].dropna()
    if len(sees):
        text += (f"this comparison can see changes of {sees.median():.1f} % or more "
                 f"(half the measurements; the least sensitive: {sees.max():.1f} %)\n")
    text += f"{'REGRESSION' if regressed else 'no regression'}: {summary or 'nothing to compare'}\n"
    return text, regressed


def _change(d: dict[str, Any], alpha: float) -> Change | None:
    io, inew = d.get("instructions_old"), d.get("instructions_new")
    if _finite(io) and _finite(inew) and io > 0:
        return instructions_change(float(io), float(inew))
    ro, rn = d.get("rounds_old"), d.get("rounds_new")
    po, pn = d.get("paired_old"), d.get("paired_new")
    if (isinstance(ro, list) and isinstance(rn, list) and po and po == pn and len(ro) == len(rn)
            and len(ro) >= MIN_ROUNDS):
        return paired_change(ro, rn, alpha)
    a, b = d.get("samples_old"), d.get("samples_new")
    if isinstance(a, list) and isinstance(b, list) and len(a) >= 3 and len(b) >= 3:
        return unpaired_change(a, b, alpha, d["t_median_s_old"], d["t_median_s_new"],
                               d.get("t_min_s_old"), d.get("t_min_s_new"))
    return None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _verdict(c: Change, thr: float, alpha: float) -> str:
    if c.basis == "samples":
        # separate runs: the medians move with the machine's state, the floors with the code
        moved_up, moved_down = c.min_change > thr, c.min_change < -thr
    else:
        moved_up = c.change > thr and c.min_change > thr
        moved_down = c.change < -thr and c.min_change < -thr
    sig = c.p_value < alpha
    return "SLOWER" if sig and moved_up else "faster" if sig and moved_down else "unchanged"


def compare_frames(old: pd.DataFrame, new: pd.DataFrame, threshold_pct: float,
                   alpha: float = ALPHA, baseline: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table (one row per measurement in both frames) and notes.

    With ``baseline``, ``old`` holds a baseline's records and ``new`` other implementations' from
    the same run: rows are matched without the implementation's name.
    """
    notes: list[str] = []
    old, new = latest(old), latest(new)
    key = [k for k in _KEY if not (baseline and k == "impl")]
    if set(old["machine_id"]) & set(new["machine_id"]):
        key = ["machine_id"] + key
    elif len(old) and len(new):
        notes.append("the two sets come from different machines: compared across machines")
    both = old.merge(new, on=key, suffixes=("_old", "_new"))
    only_old, only_new = len(old) - len(both), len(new) - len(both)
    if (only_old or only_new) and not baseline:
        notes.append(f"{only_old} measurement(s) only in OLD and {only_new} only in NEW are not compared")
    rows = []
    thr = threshold_pct / 100
    stolen = 0
    for r in both.itertuples(index=False):
        d = r._asdict()
        row = {k: d[k] for k in key}
        if baseline:
            row["baseline"], row["impl"] = d["impl_old"], d["impl_new"]
        row["machine"] = d.get("machine_new", d.get("machine"))
        so, sn = d["status_old"], d["status_new"]
        row.update(basis="", old_median=d["t_median_s_old"], new_median=d["t_median_s_new"], change_pct=np.nan,
                   min_change_pct=np.nan, p_value=np.nan, detectable_pct=np.nan, flag="")
        steal = [s for s in (d.get("steal_pct_old"), d.get("steal_pct_new")) if _finite(s)]
        others = [s for s in (d.get("others_pct_old"), d.get("others_pct_new")) if _finite(s)]
        flags = host_flags(max(steal, default=None), max(others, default=None))
        if flags:
            row["flag"] = ", ".join(flags)
            stolen += 1
        if so == "ok" and sn in FAILING:
            row["verdict"] = "NOW FAILING"
        elif so != "ok" or sn != "ok":
            row["verdict"] = ("fixed" if so in FAILING and sn == "ok" else so if so == sn
                              else f"{so} -> {sn}")
        else:
            c = _change(d, alpha)
            if c is None:
                # without samples no test: a change is shown but never called a regression
                row["change_pct"] = 100 * (d["t_median_s_new"] / d["t_median_s_old"] - 1)
                row["verdict"] = "untested (no samples)"
            else:
                row.update(basis=c.basis if c.basis != "paired" else f"paired x{c.n}", change_pct=100 * c.change,
                           min_change_pct=100 * c.min_change, p_value=c.p_value,
                           detectable_pct=100 * c.detectable if math.isfinite(c.detectable) else np.nan,
                           verdict=_verdict(c, thr, alpha))
        rows.append(row)
    if stolen:
        notes.append(f"{stolen} measurement(s) taken while the hypervisor stole more than {STEAL_HEAVY_PCT:g} % "
                     f"of the CPU or other processes took more than {OTHERS_HEAVY_PCT:g} % (flag column): "
                     f"their times are the machine's as much as the code's")
    cols = key + (["baseline", "impl"] if baseline else []) + \
        ["machine", "basis", "old_median", "new_median", "change_pct", "min_change_pct", "p_value",
         "detectable_pct", "verdict", "flag"]
    table = pd.DataFrame(rows, columns=cols)
    order = table["verdict"].map({"NOW FAILING": 0, "SLOWER": 1}).fillna(2)
    table = table.assign(_o=order).sort_values(["_o", "change_pct"], ascending=[True, False], na_position="last")
    return table.drop(columns="_o").reset_index(drop=True), notes
