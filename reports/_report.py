"""Assemble a report: analysis tables, plots per machine, then Markdown, HTML, CSV and terminal text."""
from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from convbench.verify.report import verdict_lines
from reports import _format as F
from reports import _plots as P
from reports._load import machines, sweep_of
from reports._render import gpu_peaks_text, html_page, html_table, machine_card, md_escape, md_table, png_data_uri, rich_tables_text
from reports._scaling import cliff_sentences, cliffs, scaling_table
from reports._tables import case_table, check_table, impl_table

__all__ = ["Analysis", "analyse", "write_report", "summary_text", "FORMATS"]

FORMATS = ("md", "html", "csv")
_PLOT_KINDS = (("scaling", "Scaling"), ("roofline", "Roofline"), ("speedup", "Speedup"), ("crossover", "Crossover"))


@dataclass
class Analysis:
    """Everything a report shows, as frames."""

    cases: pd.DataFrame
    impls: pd.DataFrame
    fits: pd.DataFrame
    cliffs: pd.DataFrame
    failed_checks: pd.DataFrame
    machines: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    #: one line per implementation checked (value and contract failures apart), highlighted first
    verdict: list[str] = field(default_factory=list)
    #: the implementations the report is about (``convbench run --impl``): first, and marked
    highlight: list[str] = field(default_factory=list)


def _first(df: pd.DataFrame, highlight: Sequence[str]) -> pd.DataFrame:
    """The highlighted implementations' rows first, their names marked with ``»``."""
    if not highlight or "impl" not in df.columns or df.empty:
        return df
    mine = df["impl"].isin(highlight)
    out = pd.concat([df[mine], df[~mine]])
    return out.assign(impl=[f"» {i}" if i in highlight else i for i in out["impl"]])


def analyse(frame: pd.DataFrame, baseline: str = "torch_cpu",
            check_records: list[dict[str, Any]] | None = None, highlight: Sequence[str] = ()) -> Analysis:
    """The tables of a report from the frame of :func:`reports.load`; ``highlight`` names the
    implementations the report is about (first in the verdict and the tables, marked)."""
    checks = check_records if check_records is not None else frame.attrs.get("checks") or []
    order = list(highlight) + [r["impl"] for r in checks if r["impl"] not in highlight]
    verdict = verdict_lines(sorted(checks, key=lambda r: order.index(r["impl"])),
                            warn=highlight or None) if checks else []
    cases = case_table(frame, baseline, checks)
    notes = []
    for (m, op), g in cases.groupby(["machine", "op"]):
        used = g["baseline"].dropna()
        if len(used) and used.iloc[0] != baseline:
            notes.append(f"{m}, {op}: baseline {baseline} has no successful measurement; speedups are "
                         f"against {used.iloc[0]}")
        elif not len(used):
            notes.append(f"{m}, {op}: no successful measurement, so no speedups")
    if "includes_forward" in frame.columns:
        inc = frame[frame["direction"].eq("backward") & frame["includes_forward"].eq(True)]
        if len(inc):
            notes.append(f"backward times of {', '.join(sorted(set(inc['impl'])))} include a forward: an adapted "
                         "layer or function runs its forward first for the cache or autograd graph its backward "
                         "needs, so compare them with the others' forward + backward")
    fits = scaling_table(cases)
    if not len(fits) and len(cases):
        notes.append("no scaling-suite cases in these records, so no scaling exponents (run `convbench bench "
                     "--suite scaling` for them and for cliff detection)")
    return Analysis(cases, impl_table(cases, checks), fits, cliffs(cases), check_table(checks), machines(frame), notes,
                    verdict, list(highlight))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "machine"


def _plots(a: Analysis, out_dir: Path) -> dict[str, list[tuple[str, Path, str]]]:
    """Plots per machine and operator: {"op — machine": [(kind, png path, caption)]}; SVGs beside."""
    colors = P.impl_colors(list(a.cases["impl"].unique()))
    multi_m = len(a.machines) > 1
    multi_op = a.cases["op"].nunique() > 1
    out: dict[str, list[tuple[str, Path, str]]] = {}
    for info in a.machines:
        m = info["machine"]
        for op in sorted(a.cases.loc[a.cases["machine"] == m, "op"].unique()):
            c = a.cases[(a.cases["machine"] == m) & (a.cases["op"] == op)]
            f = a.fits[(a.fits["machine"] == m) & (a.fits["op"] == op)]
            label = f"{op} — {m}"
            sfx = (f"-{_slug(op)}" if multi_op else "") + (f"-{_slug(m)}" if multi_m else "")
            out[label] = [(kind, P.save(fig, out_dir / "plots" / f"{kind}{sfx}")["png"], cap)
                          for kind, fig, cap in _figures(c, f, {**info, "machine": label}, colors)]
    return out


def _figures(c: pd.DataFrame, f: pd.DataFrame, info: dict[str, Any], colors: dict[str, Any]) -> list[tuple]:
    label = info["machine"]
    n_pts = int((c["status"] == "ok").sum())
    figs = [("scaling", P.scaling_figure(c, f, label, colors),
             f"Median time against FLOPs per implementation, log-log, {n_pts} measurements; lines are the "
             f"fitted power laws (exponent k, 95% interval, number of points)."),
            ("roofline", P.roofline_figure(c, info, colors),
             "Attained GFLOP/s at each case's arithmetic intensity (FLOPs / minimum bytes) under the "
             "measured compute and bandwidth roofs."),
            ("speedup", P.speedup_figure(c, label, colors), "Speedup over the baseline per case and direction."),
            ("crossover", P.crossover_figure(c, label, colors),
             "Which implementation is fastest where: each cell names the winner, its margin over the "
             "runner-up, and how many of the cell's cases it won.")]
    sweeps = c["case"].map(sweep_of)
    for dim in sorted({s[0] for s in sweeps.dropna()}):
        vals = sweeps.map(lambda s, d=dim: s[1] if s and s[0] == d else None).astype(float)
        figs.append((f"sweep-{dim}", P.sweep_figure(c, dim, vals, f, label, colors),
                     f"Median time against the swept dimension {dim}."))
    return figs


def _csv(a: Analysis, out_dir: Path) -> dict[str, Path]:
    paths = {"csv": out_dir / "cases.csv", "csv_impls": out_dir / "impls.csv", "csv_scaling": out_dir / "scaling.csv"}
    a.cases.to_csv(paths["csv"], index=False)
    a.impls.to_csv(paths["csv_impls"], index=False)
    a.fits.to_csv(paths["csv_scaling"], index=False)
    if len(a.cliffs):
        paths["csv_cliffs"] = out_dir / "cliffs.csv"
        a.cliffs.to_csv(paths["csv_cliffs"], index=False)
    return paths


def _subtitle(a: Analysis) -> str:
    return (f"{len(a.cases)} measurements of {a.cases['impl'].nunique()} implementations on "
            f"{a.cases['case'].nunique()} cases, {len(a.machines)} machine(s); generated "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")


def _markdown(a: Analysis, plots: dict[str, list[tuple[str, Path, str]]], out_dir: Path) -> str:
    parts = ["# convbench report\n", _subtitle(a) + "\n"]
    if a.verdict:
        parts += ["## Verdict\n", "".join(f"- {md_escape(v.strip())}\n" for v in a.verdict)]
    parts += ["## Implementations\n", md_table(_first(F.display_impls(a.impls), a.highlight))]
    parts += [f"> {md_escape(n)}\n" for n in a.notes]
    parts.append("## Machines\n")
    gpus = any(i.get("gpu_peak_gflops") for i in a.machines)
    parts.append(md_table(pd.DataFrame([{
        "machine": i["machine"], "id": i["machine_id"], "CPU": i["cpu"] or "", "BLAS": i["blas"] or "",
        "peak GFLOP/s": ", ".join(f"{d} {v:.1f}" for d, v in sorted(i["peak_gflops"].items())),
        "peak GB/s": F.fmt_num(i["peak_gbps"]),
        **({"GPU": i.get("gpu") or "", "GPU peak": gpu_peaks_text(i).replace(" GFLOP/s", ""),
            "GPU GB/s": F.fmt_num(i.get("gpu_peak_gbps"))} if gpus else {}),
        "records": i["records"]} for i in a.machines])))
    parts.append("## Overview (median time, speedup, ★ fastest)\n")
    for op, wide in F.overviews(a.cases):
        parts += [f"### {md_escape(op)}\n", md_table(wide)]
    parts += ["## Scaling\n", md_table(F.display_scaling(a.fits)) if len(a.fits) else
              "No scaling-suite cases were run, so no exponents.\n"]
    sentences = cliff_sentences(a.cliffs)
    parts.append("".join(f"- {md_escape(s)}\n" for s in sentences) if sentences else
                 "No jump in time per FLOP within any sweep.\n")
    if len(a.failed_checks):
        parts += ["## Failed checks\n", md_table(F.display_checks(a.failed_checks))]
    parts.append("## Plots\n")
    for m, items in plots.items():
        for kind, png, cap in items:
            rel = png.relative_to(out_dir).as_posix()
            parts.append(f"![{md_escape(kind)} — {md_escape(m)}]({rel})\n\n{md_escape(cap)}\n")
    parts += ["## All measurements\n", md_table(F.display_cases(a.cases))]
    return "\n".join(parts)


def _html(a: Analysis, plots: dict[str, list[tuple[str, Path, str]]]) -> str:
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in a.notes)
    sections = [("Verdict", "<ul>" + "".join(f"<li>{html.escape(v.strip())}</li>" for v in a.verdict) + "</ul>")] \
        if a.verdict else []
    sections.append(("Implementations", notes + html_table(_first(F.display_impls(a.impls), a.highlight))))
    figs = []
    for m, items in plots.items():
        if len(plots) > 1:
            figs.append(f"<h3>{html.escape(m)}</h3>")
        for kind, png, cap in items:
            figs.append(f"<figure data-kind='{html.escape(kind)}'><img src='{png_data_uri(png)}' "
                        f"alt='{html.escape(kind)} plot, {html.escape(m)}'><figcaption>{html.escape(cap)} "
                        f"(SVG: plots/{html.escape(png.with_suffix('.svg').name)})</figcaption></figure>")
    sentences = cliff_sentences(a.cliffs)
    cl = ("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>") if sentences else \
        "<p>No jump in time per FLOP within any sweep.</p>"
    sections += [("Plots", "".join(figs)), ("Scaling fits", html_table(F.display_scaling(a.fits)) + cl),
                 ("Overview", "<p>Median time (speedup over the baseline); ★ marks the fastest.</p>"
                  + "".join(f"<h3>{html.escape(op)}</h3>" + html_table(w) for op, w in F.overviews(a.cases)))]
    if len(a.failed_checks):
        sections.append(("Failed checks", html_table(F.display_checks(a.failed_checks))))
    sections.append(("All measurements", html_table(F.display_cases(a.cases))))
    cards = "".join(machine_card(i) for i in a.machines)
    return html_page("convbench report", _subtitle(a), cards, sections)


def write_report(frame: pd.DataFrame, out_dir: Path, formats: Sequence[str] = FORMATS, baseline: str = "torch_cpu",
                 check_records: list[dict[str, Any]] | None = None, highlight: Sequence[str] = ()) -> dict[str, Path]:
    """Write the report of ``frame`` into ``out_dir``.

    Parameters
    ----------
    frame
        From :func:`reports.load`.
    out_dir
        Created if missing. Receives ``report.md``, ``index.html`` (self-contained: plots embedded,
        no script, no external resource), ``cases.csv``, ``impls.csv``, ``scaling.csv`` and
        ``plots/*.png`` / ``*.svg``, per the formats asked for.
    formats
        Any of ``md``, ``html``, ``csv``.
    baseline
        Implementation that speedups are measured against (per machine; where it has no successful
        measurement the implementation with most of them stands in, and the report says so).
    check_records
        Check records for the err_ratio and check columns (default: those :func:`load` found);
        with them the report opens with a verdict per implementation.
    highlight
        The implementations the report is about (``convbench run --impl``): first in the verdict
        and the implementations table, marked ``»``.

    Returns
    -------
    dict
        ``{"md": path, "html": path, "csv": path, "csv_impls": ..., "csv_scaling": ..., "plots": dir}``
        for what was written.
    """
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}; got {', '.join(map(repr, bad))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = analyse(frame, baseline, check_records, highlight)
    paths: dict[str, Path] = {}
    plots = _plots(a, out_dir) if {"md", "html"} & set(formats) and len(a.cases) else {}
    if "md" in formats:
        paths["md"] = out_dir / "report.md"
        _atomic_write(paths["md"], _markdown(a, plots, out_dir))
    if "html" in formats:
        paths["html"] = out_dir / "index.html"
        _atomic_write(paths["html"], _html(a, plots))
    if "csv" in formats:
        paths.update(_csv(a, out_dir))
    if plots:
        paths["plots"] = out_dir / "plots"
    return paths


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def summary_text(frame: pd.DataFrame, baseline: str = "torch_cpu", width: int = 140,
                 highlight: Sequence[str] = ()) -> str:
    """The terminal summary: per-implementation table (``highlight`` first, marked), overview of
    every case, scaling exponents where scaling cases ran."""
    if frame.empty:
        return "no bench records\n"
    a = analyse(frame, baseline, highlight=highlight)
    one = len(a.machines) == 1  # the machine column says nothing then
    drop = (lambda df: df.drop(columns=[c for c in ("machine",) if c in df.columns])) if one else (lambda df: df)
    fits = drop(F.display_scaling(a.fits).drop(columns=["R²"]))
    impls = drop(_first(F.display_impls(a.impls), a.highlight).drop(columns=["checks passed", "checks failed",
                                                                            "max err_ratio"]))
    title = f" on {a.machines[0]['machine']}" if one else ""
    text = rich_tables_text([(f"Implementations{title}", impls),
                             *((f"{op}: median time (speedup), ★ fastest", drop(w)) for op, w in F.overviews(a.cases)),
                             *([("Scaling exponents", fits)] if len(fits) else [])], width=width)
    extra = [f"note: {n}" for n in a.notes] + cliff_sentences(a.cliffs)
    return text + "".join(e + "\n" for e in extra)
