"""The four kinds of plot, one figure per machine: scaling, roofline, speedup bars, crossover map.

Each function takes the case table of one machine and returns a matplotlib Figure; :func:`save`
writes it as PNG and SVG. matplotlib runs on the Agg backend: reports are made on servers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from reports._load import sweep_of  # noqa: E402

__all__ = ["impl_colors", "scaling_figure", "sweep_figure", "roofline_figure", "speedup_figure",
           "crossover_figure", "save", "CROSSOVER_AXES"]

_MARKERS = {"forward": "o", "backward": "^"}
_LINES = {"forward": "-", "backward": "--"}
#: axes of the crossover map, in order of preference; the first two that vary in the data are used
CROSSOVER_AXES = ("param_kh", "param_k", "param_c", "param_o", "param_h", "param_l", "param_n", "param_groups",
                  "param_stride")
_AXIS_NAMES = {"param_kh": "kernel height", "param_k": "kernel size", "param_l": "input length", "param_c": "input channels", "param_o": "output channels",
               "param_h": "input height", "param_n": "batch", "param_groups": "groups", "param_stride": "stride"}


def impl_colors(impls: list[str]) -> dict[str, Any]:
    """One colour per implementation, the same in every plot of a report."""
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(sorted(set(impls)))}


def _fig(w: float, h: float) -> Figure:
    fig = plt.figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig


def _ok(cases: pd.DataFrame) -> pd.DataFrame:
    return cases[(cases["status"] == "ok") & (cases["t_median_s"] > 0)]


def _x(v: float) -> str:
    """A speedup or margin: ``190x``, ``2.6x``, ``0.0068x``."""
    return f"{v:.0f}x" if v >= 100 else f"{v:.2g}x"


def _plain_minor_ticks(ax: Any) -> None:
    # a log axis spanning about a decade labels its minor ticks too and the labels collide; past a
    # decade a labelled power of ten is always in view, so the minor labels can go
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if lo <= 0:
            continue
        axis.set_minor_formatter(NullFormatter())
        if hi / lo < 10:  # no power of ten need be in view: three plain labels instead
            ticks = np.geomspace(lo * 1.1, hi / 1.1, 3)
            axis.set_ticks(ticks, [f"{v:.2g}" for v in ticks])
            (ax.set_xlim if axis is ax.xaxis else ax.set_ylim)(lo, hi)


def _directions(ok: pd.DataFrame) -> list[str]:
    return sorted(ok["direction"].unique(), key=lambda d: (d != "forward", d)) or ["forward"]


def _empty(fig: Figure, ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def scaling_figure(cases: pd.DataFrame, fits: pd.DataFrame, machine: str, colors: dict[str, Any]) -> Figure:
    """Log-log median time against FLOPs, one panel per implementation, with the fitted power law."""
    ok = _ok(cases)
    impls = sorted(ok["impl"].unique())
    ncol = min(3, max(1, len(impls)))
    nrow = max(1, -(-len(impls) // ncol))
    fig = _fig(4.6 * ncol, 3.6 * nrow + 0.6)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    fig.suptitle(f"Scaling: median time against FLOPs (log-log) — {machine}", fontsize=13)
    if not impls:
        _empty(fig, axes[0], "no successful measurements to fit")
    for ax in axes[len(impls):]:
        ax.set_visible(False)
    in_sweep = ok["case"].map(lambda c: sweep_of(c) is not None)
    for ax, impl in zip(axes, impls):
        g = ok[ok["impl"] == impl]
        for d in _directions(g):
            gd = g[g["direction"] == d]
            fitted = gd[in_sweep[gd.index]] if in_sweep[gd.index].sum() >= 2 else gd
            rest = gd.drop(fitted.index)
            ax.loglog(fitted["flops"], fitted["t_median_s"], _MARKERS.get(d, "s"), color=colors[impl],
                      mfc="none" if d == "backward" else colors[impl], ms=6, alpha=0.85)
            if len(rest):  # cases outside the scaling suite: shown, not fitted
                ax.loglog(rest["flops"], rest["t_median_s"], _MARKERS.get(d, "s"), color=colors[impl],
                          mfc="none", ms=5, alpha=0.3)
            f = fits[(fits["impl"] == impl) & (fits["direction"] == d) & (fits["against"] == "flops")]
            if len(f) and np.isfinite(f["exponent"].iloc[0]):
                r = f.iloc[0]
                xs = np.geomspace(fitted["flops"].min(), fitted["flops"].max(), 20)
                ci = (f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if np.isfinite(r.ci_low) else " (no CI: 2 points)")
                ax.loglog(xs, np.exp(r.intercept) * xs ** r.exponent, _LINES.get(d, ":"), color="0.25", lw=1.2,
                          label=f"{d}: k={r.exponent:.2f}{ci}, n={int(r.points)}")
            else:
                ax.plot([], [], _MARKERS.get(d, "s"), color=colors[impl], label=f"{d}: {len(gd)} point(s), no fit")
        ax.set_title(impl, fontsize=11)
        _plain_minor_ticks(ax)
        ax.set_xlabel("FLOPs per call")
        ax.set_ylabel("median time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return fig


def sweep_figure(cases: pd.DataFrame, dim: str, values: pd.Series, fits: pd.DataFrame, machine: str,
                 colors: dict[str, Any]) -> Figure:
    """Median time against one swept dimension of the scaling suite, every implementation, with the
    fitted exponent in the legend."""
    ok = _ok(cases).assign(sweep_val=values)
    ok = ok[ok["sweep_val"].notna()]
    fig = _fig(8.5, 4.8)
    ax = fig.subplots()
    for (impl, d), g in ok.groupby(["impl", "direction"]):
        g = g.sort_values("sweep_val")
        f = fits[(fits["impl"] == impl) & (fits["direction"] == d) & (fits["against"] == dim)]
        k = f"  k={f['exponent'].iloc[0]:.2f}" if len(f) and np.isfinite(f["exponent"].iloc[0]) else ""
        ax.loglog(g["sweep_val"], g["t_median_s"], _LINES.get(d, ":") + _MARKERS.get(d, "s"), color=colors[impl],
                  label=f"{impl} {d}{k}", ms=5)
    ticks = sorted(ok["sweep_val"].unique())
    if ticks:
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.minorticks_off()
    ax.set_title(f"Scaling sweep over {dim} — {machine}", fontsize=13)
    ax.set_xlabel(f"{dim} (swept; other parameters fixed)")
    ax.set_ylabel("median time (s)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")
    return fig


def roofline_figure(cases: pd.DataFrame, info: dict[str, Any], colors: dict[str, Any]) -> Figure:
    """Attained GFLOP/s against arithmetic intensity under the machine's measured roofs: the CPU's,
    and the GPU's where CUDA records and measured GPU peaks exist (each point under its device's)."""
    ok = _ok(cases)
    ok = ok[(ok["intensity"] > 0) & (ok["gflops"] > 0)]
    on_gpu = ok["device"].astype(str).eq("cuda") if "device" in ok else pd.Series(False, index=ok.index)
    fig = _fig(10.0, 5.4)
    ax = fig.subplots()
    fig.suptitle(f"Roofline — {info['machine']}", fontsize=13)
    notes = []
    roofs = []  # (label prefix, line style, {dtype: GFLOP/s}, GB/s) of each device with records
    if (~on_gpu).any() or not on_gpu.any():
        roofs.append(("", {"float32": "-"}, info.get("peak_gflops") or {}, info.get("peak_gbps"), ok[~on_gpu]))
        if not info.get("peak_gflops"):
            notes.append("machine peaks not measured: no roof drawn")
    if on_gpu.any():
        tf32 = info.get("gpu_float32_math") == "tf32"
        roofs.append(("GPU ", {"float32": "--"}, info.get("gpu_peak_gflops") or {}, info.get("gpu_peak_gbps"),
                      ok[on_gpu], " (TF32)" if tf32 else ""))
        if not info.get("gpu_peak_gflops"):
            notes.append("GPU peaks not measured: no GPU roof drawn")
    ridges = [p / bw for _, _, pk, bw, *_ in roofs if bw for p in pk.values() if p]
    lo = min([r / 8 for r in ridges] + list(ok["intensity"].dropna() / 3) or [0.1])
    hi = max([r * 8 for r in ridges] + list(ok["intensity"].dropna() * 3) or [100.0])
    xs = np.geomspace(lo, hi, 200)
    for prefix, styles, peaks, bw, part, *extra in roofs:
        shown = {d: v for d, v in peaks.items() if d in set(part["dtype"])} or peaks  # roofs of the dtypes measured
        for dtype, peak in sorted(shown.items()):
            math = extra[0] if extra and dtype == "float32" else ""
            roof = np.minimum(peak, bw * xs) if bw else np.full_like(xs, peak)
            ax.loglog(xs, roof, styles.get(dtype, "-."), color="0.2" if not prefix else "tab:green", lw=1.6,
                      label=f"{prefix}roof {dtype}{math}: {peak:.0f} GFLOP/s" + (f", {bw:.0f} GB/s" if bw else ""))
            if bw:
                ax.axvline(peak / bw, color="0.7", lw=0.8, ls=":")
                ax.annotate(f"ridge {peak / bw:.3g} FLOP/B", (peak / bw, peak), textcoords="offset points",
                            xytext=(4, 6), fontsize=8, color="0.35")
        if bw and not peaks:
            ax.loglog(xs, bw * xs, "-", color="0.2" if not prefix else "tab:green", lw=1.6,
                      label=f"{prefix}memory roof {bw:.0f} GB/s")
    for (impl, d), g in ok.groupby(["impl", "direction"]):
        ax.scatter(g["intensity"], g["gflops"], marker=_MARKERS.get(d, "s"), s=42,
                   facecolors=colors[impl] if d == "forward" else "none", edgecolors=colors[impl],
                   label=f"{impl} {d}", zorder=3)
    if ok.empty:
        notes.append("no successful measurements with FLOPs and bytes")
    ax.set_xlabel("arithmetic intensity (FLOP / byte of minimum traffic)")
    ax.set_ylabel("attained GFLOP/s")
    ax.grid(True, which="both", alpha=0.3)
    if not ok.empty:   # a legend of nothing is a warning on stderr
        fig.legend(fontsize=8, loc="outside right upper")
    if notes:
        ax.text(0.02, 0.97, "; ".join(notes), transform=ax.transAxes, va="top", fontsize=9, color="0.35")
    return fig


def speedup_figure(cases: pd.DataFrame, machine: str, colors: dict[str, Any]) -> Figure:
    """Horizontal bars: speedup of each implementation over the baseline, per case and direction."""
    ok = _ok(cases)
    ok = ok[ok["speedup"] > 0]
    dirs = _directions(ok)
    impls = sorted(ok["impl"].unique())
    case_names = sorted(ok["case"].unique())
    base = cases["baseline"].dropna().iloc[0] if cases["baseline"].notna().any() else "?"
    h = 1.0 + 0.32 * max(1, len(case_names)) * max(1, len(impls)) / 2
    fig = _fig(6.0 * len(dirs) + 1.5, max(3.5, h))
    axes = np.atleast_1d(fig.subplots(1, len(dirs), squeeze=False, sharey=True)).ravel()
    fig.suptitle(f"Speedup over {base} (higher is faster; log scale) — {machine}", fontsize=13)
    width = 0.8 / max(1, len(impls))
    sp = ok["speedup"]
    lo = float(sp.min()) / 2 if len(sp) else 0.1
    hi = float(sp.max()) * 3 if len(sp) else 10.0
    ypos = np.arange(len(case_names))
    for ax, d in zip(axes, dirs):
        g = ok[ok["direction"] == d].set_index(["case", "impl"])["speedup"]
        st = cases[cases["direction"] == d].drop_duplicates(["case", "impl"]).set_index(["case", "impl"])["status"]
        ax.set_xscale("log")
        for i, impl in enumerate(impls):
            vals = np.array([g.get((c, impl), np.nan) for c in case_names], float)
            y = ypos + (i - (len(impls) - 1) / 2) * width
            ax.barh(y, vals, height=width, color=colors[impl], label=impl if d == dirs[0] else None)
            for yy, v in zip(y, vals):
                c = case_names[list(y).index(yy)]
                ax.annotate(_x(v) if np.isfinite(v) else f"{impl}: {st.get((c, impl), 'not run')}",
                            (v if np.isfinite(v) else lo, yy),
                            xytext=(2, 0), textcoords="offset points", va="center", fontsize=6, color="0.3")
        ax.set_xlim(lo, hi)
        ax.axvline(1.0, color="0.2", lw=1)
        ax.set_title(d, fontsize=11)
        ax.set_xlabel(f"speedup over {base} (x)")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(ypos, case_names, fontsize=8)
    axes[0].invert_yaxis()
    missing = sorted(set(cases["case"]) - set(case_names))
    if missing:
        fig.supxlabel(f"not shown ({len(missing)}, no successful {base} measurement to compare with): "
                 + ", ".join(missing[:8]) + (" …" if len(missing) > 8 else ""), fontsize=8, color="0.35")
    if not impls:
        _empty(fig, axes[0], f"no speedups: baseline {base} has no successful measurement")
    else:
        fig.legend(fontsize=8, loc="outside right upper")
    return fig


def crossover_axes(cases: pd.DataFrame, axes: tuple[str, ...] = CROSSOVER_AXES) -> list[str]:
    """The first two parameter columns of ``axes`` that take more than one value among ok cases."""
    ok = _ok(cases)
    present = [a for a in axes if a in ok.columns and ok[a].notna().any()]
    varying = [a for a in present if ok[a].nunique() > 1]
    return (varying + [a for a in present if a not in varying])[:2]


def crossover_figure(cases: pd.DataFrame, machine: str, colors: dict[str, Any],
                     axes: tuple[str, ...] = CROSSOVER_AXES) -> Figure:
    """Heat map of the fastest implementation over two parameters (kernel size against channels
    where both vary); a cell holding several cases goes to the implementation winning most of them."""
    ok = _ok(cases)
    xy = crossover_axes(cases, axes)
    dirs = _directions(ok)
    fig = _fig(5.6 * len(dirs) + 1.0, 5.2)
    axs = np.atleast_1d(fig.subplots(1, len(dirs), squeeze=False)).ravel()
    fig.suptitle(f"Crossover: fastest implementation — {machine}", fontsize=13)
    if len(xy) < 2 or ok.empty:
        _empty(fig, axs[0], "records carry too few parameters for a crossover map")
        return fig
    xa, ya = xy
    impls = sorted(colors)
    cmap = ListedColormap([colors[i] for i in impls])
    for ax, d in zip(axs, dirs):
        g = _winners(ok[ok["direction"] == d], ["machine", "case", "direction", "dtype", xa, ya])
        xv, yv = sorted(ok[xa].dropna().unique()), sorted(ok[ya].dropna().unique())
        grid = np.full((len(yv), len(xv)), np.nan)
        for (x, y), cell in g.groupby([xa, ya]):
            winner = cell["impl"].value_counts().index[0]
            won = cell[cell["impl"] == winner]
            grid[yv.index(y), xv.index(x)] = impls.index(winner)
            margin = float(np.exp(np.log(won["margin"]).mean()))
            runner = won["runner_up"].value_counts().index[0] if won["runner_up"].notna().any() else None
            text = f"{winner}\n{_x(margin)} over\n{runner}" if runner else f"{winner}\nonly result"
            if len(cell) > 1:
                text += f"\n{len(won)}/{len(cell)} cases"
            ax.text(xv.index(x), yv.index(y), text, ha="center", va="center", fontsize=7, color="white",
                    path_effects=[patheffects.withStroke(linewidth=2, foreground="0.15")])
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-0.5, vmax=len(impls) - 0.5, aspect="auto",
                  origin="lower")
        ax.set_facecolor("0.93")
        ax.set_xticks(range(len(xv)), [f"{v:g}" for v in xv])
        ax.set_yticks(range(len(yv)), [f"{v:g}" for v in yv])
        ax.set_xlabel(_AXIS_NAMES.get(xa, xa))
        ax.set_ylabel(_AXIS_NAMES.get(ya, ya))
        ax.set_title(f"{d} (grey: no case)", fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i]) for i in impls if (ok["impl"] == i).any()]
    fig.legend(handles, [i for i in impls if (ok["impl"] == i).any()], loc="outside right center", fontsize=8)
    return fig


def _winners(ok: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Per case: the fastest implementation, the runner-up and the margin (runner-up time / best)."""
    rows = []
    for k, g in ok.groupby(key):
        g = g.sort_values("t_median_s")
        second = g.iloc[1] if len(g) > 1 else None
        rows.append({**dict(zip(key, k)), "impl": g["impl"].iloc[0],
                     "runner_up": second["impl"] if second is not None else None,
                     "margin": second["t_median_s"] / g["t_median_s"].iloc[0] if second is not None else 1.0})
    return pd.DataFrame(rows, columns=key + ["impl", "runner_up", "margin"])


def save(fig: Figure, path_stem: Path) -> dict[str, Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg``; close it."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in ("png", "svg"):
        p = path_stem.with_suffix(f".{ext}")
        fig.savefig(p, format=ext, dpi=110 if ext == "png" else None)
        fig.set_layout_engine("none")  # laid out by the first save; the second reuses it (half the time)
        out[ext] = p
    plt.close(fig)
    return out
