"""Scaling: power-law fits of time against FLOPs and swept dimensions; cliffs in time per FLOP."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from convbench.cases import get_suite
from reports._load import sweep_of

__all__ = ["fit_power", "fit_power_within", "scaling_table", "cliffs", "cliff_sentences", "CLIFF_RATIO"]

#: a rise in time per FLOP between neighbouring sizes of a sweep that counts as a cliff; smaller
#: steps are within what timer noise and BLAS blocking changes do to a steady implementation
CLIFF_RATIO = 1.5
_GROUP = ["machine", "op", "impl", "direction", "dtype"]


def fit_power(x: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    """Fit ``t = a * x**k`` by least squares on logs.

    Returns the exponent ``k`` with its standard error and 95 % confidence interval (Student t with
    n-2 degrees of freedom; none from fewer than three points), ``r2`` and ``points``.
    """
    x, t = np.asarray(x, float), np.asarray(t, float)
    keep = (x > 0) & (t > 0) & np.isfinite(x) & np.isfinite(t)
    x, t = x[keep], t[keep]
    n = len(x)
    out: dict[str, Any] = {"points": n, "exponent": np.nan, "stderr": np.nan, "ci_low": np.nan,
                           "ci_high": np.nan, "r2": np.nan, "intercept": np.nan}
    if n < 2 or np.ptp(np.log(x)) == 0:
        return out
    lr = stats.linregress(np.log(x), np.log(t))
    out.update(exponent=float(lr.slope), intercept=float(lr.intercept), r2=float(lr.rvalue ** 2))
    if n >= 3:
        half = float(stats.t.ppf(0.975, n - 2) * lr.stderr)
        out.update(stderr=float(lr.stderr), ci_low=lr.slope - half, ci_high=lr.slope + half)
    return out


def fit_power_within(x: np.ndarray, t: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Fit ``t = a_g * x**k``: one exponent, an intercept per group (per sweep).

    Along each sweep the shape family is fixed and only one dimension grows, so a common slope
    with per-sweep intercepts measures how cost grows with work without mixing in how cost per
    FLOP differs between families (pure-Python loops pay per output element, so a 1x1 kernel costs
    more per FLOP than a 3x3 one at any size). Groups with a single point carry no slope
    information and are left out. Confidence interval: Student t on n - p degrees of freedom.
    """
    x, t, groups = np.asarray(x, float), np.asarray(t, float), np.asarray(groups, object)
    keep = (x > 0) & (t > 0) & np.isfinite(x) & np.isfinite(t)
    x, t, groups = x[keep], t[keep], groups[keep]
    names, counts = np.unique(groups, return_counts=True)
    multi = [g for g, c in zip(names, counts) if c >= 2]
    sel = np.isin(groups, multi)
    x, t, groups = x[sel], t[sel], groups[sel]
    n, p = len(x), 1 + len(multi)
    out: dict[str, Any] = {"points": n, "exponent": np.nan, "stderr": np.nan, "ci_low": np.nan,
                           "ci_high": np.nan, "r2": np.nan, "intercept": np.nan}
    if not multi or np.ptp(np.log(x)) == 0:
        return out
    design = np.column_stack([np.log(x)] + [(groups == g).astype(float) for g in multi])
    y = np.log(t)
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    tss = float(((y - y.mean()) ** 2).sum())
    out.update(exponent=float(coef[0]), intercept=float(np.mean(coef[1:])),
               r2=float(1 - (resid ** 2).sum() / tss) if tss > 0 else np.nan)
    dof = n - p
    if dof >= 1 and rank == p:
        cov = float((resid ** 2).sum() / dof) * np.linalg.inv(design.T @ design)
        se = float(np.sqrt(cov[0, 0]))
        half = float(stats.t.ppf(0.975, dof) * se)
        out.update(stderr=se, ci_low=coef[0] - half, ci_high=coef[0] + half)
    return out


def _with_sweeps(ok: pd.DataFrame) -> pd.DataFrame:
    sw = ok["case"].map(sweep_of)
    return ok.assign(sweep_dim=sw.map(lambda s: s[0] if s else None), sweep_val=sw.map(lambda s: s[1] if s else np.nan))


def _scaling_ids(op: str) -> set[str]:
    """The case ids of ``op``'s scaling suite (a sweep of one size at fixed shape otherwise)."""
    try:
        return {c.id for c in get_suite("scaling", op)}
    except Exception:  # an operator this convbench does not know (records of another version)
        return set()


def scaling_table(cases: pd.DataFrame) -> pd.DataFrame:
    """Fits per machine x op x implementation x direction x dtype.

    Against ``flops``: over the scaling suite's cases where the records hold any, one exponent
    with an intercept per sweep (:func:`fit_power_within`), or over the scaling suite's cases of
    one shape growing in one size (conv1d's lengths, the pools' sizes); nothing where no scaling
    case ran (an exponent over unrelated shapes mixes shape effects in). Against each swept dimension of
    the scaling suite (case ids ``scale.<dim>.<value>``): time against that dimension's value.
    """
    ok = _with_sweeps(cases[(cases["status"] == "ok") & (cases["t_median_s"] > 0)])
    rows = []
    for key, g in ok.groupby(_GROUP, sort=True):
        sweep = g[g["sweep_dim"].notna()]
        within = (fit_power_within(sweep["flops"].to_numpy(), sweep["t_median_s"].to_numpy(),
                                   sweep["sweep_dim"].to_numpy()) if len(sweep) >= 2 else {"points": 0})
        if within["points"] >= 2:
            fit, source = within, "scaling suite, within sweeps"
        elif len(g) >= 3 and set(g["case"]) <= _scaling_ids(key[1]):
            fit, source = fit_power(g["flops"].to_numpy(), g["t_median_s"].to_numpy()), "scaling suite"
        else:
            # cases of unrelated shapes (the quick suite): an exponent over them mixes shape effects
            # in and reads as noise ([-0.84, 0.80]); none is fitted where no scaling case ran
            continue
        rows.append({**dict(zip(_GROUP, key)), "against": "flops", "source": source, **fit})
        for dim, s in sweep.groupby("sweep_dim"):
            fit = fit_power(s["sweep_val"].to_numpy(), s["t_median_s"].to_numpy())
            rows.append({**dict(zip(_GROUP, key)), "against": str(dim), "source": f"scale.{dim}.*", **fit})
    cols = _GROUP + ["against", "source", "points", "exponent", "stderr", "ci_low", "ci_high", "r2", "intercept"]
    return pd.DataFrame(rows, columns=cols)


def cliffs(cases: pd.DataFrame, ratio: float = CLIFF_RATIO) -> pd.DataFrame:
    """Jumps in time per FLOP between neighbouring sizes of each sweep (cache and memory cliffs).

    Only sweeps are searched: between unrelated shapes, time per FLOP differs for reasons that are
    not the memory hierarchy.
    """
    ok = _with_sweeps(cases[(cases["status"] == "ok") & (cases["t_median_s"] > 0) & (cases["flops"] > 0)])
    ok = ok[ok["sweep_dim"].notna()]
    rows = []
    for key, g in ok.groupby(_GROUP + ["sweep_dim"], sort=True):
        g = g.sort_values("sweep_val")
        tpf = (g["t_median_s"] / g["flops"]).to_numpy()
        vals, mem = g["sweep_val"].to_numpy(), g["bytes_min"].to_numpy()
        for i in range(1, len(g)):
            r = tpf[i] / tpf[i - 1]
            if r >= ratio:
                rows.append({**dict(zip(_GROUP + ["dim"], key)), "from_value": vals[i - 1], "to_value": vals[i],
                             "ratio": float(r), "bytes_min_before": mem[i - 1], "bytes_min_after": mem[i]})
    cols = _GROUP + ["dim", "from_value", "to_value", "ratio", "bytes_min_before", "bytes_min_after"]
    return pd.DataFrame(rows, columns=cols)


def cliff_sentences(table: pd.DataFrame) -> list[str]:
    """One plain sentence per cliff."""
    out = []
    for r in table.itertuples(index=False):
        mem = (f"; minimum data {_mib(r.bytes_min_before)} -> {_mib(r.bytes_min_after)}"
               if np.isfinite(r.bytes_min_after) else "")
        out.append(f"{r.machine}: {r.impl} {r.direction} {r.dtype}: time per FLOP rises {r.ratio:.1f}x between "
                   f"{r.dim}={r.from_value:g} and {r.dim}={r.to_value:g}{mem} "
                   f"(a cache or memory cliff)")
    return out


def _mib(b: float) -> str:
    return f"{b / 2**20:.2f} MiB" if b >= 2**20 else f"{b / 2**10:.0f} KiB"
