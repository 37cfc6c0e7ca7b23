"""Renderers: display frames to Markdown, HTML and rich (terminal) tables. Every cell is escaped."""
from __future__ import annotations

import base64
import html
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["md_table", "html_table", "rich_tables_text", "html_page", "png_data_uri", "md_escape"]


#: characters that make Markdown of user text: links and images (no ``[`` or ``]``, no link),
#: code spans, emphasis, the table's pipes, and the escape character itself
_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_escape(text: Any) -> str:
    """User text as inert Markdown, on one line: HTML-significant characters as entities, Markdown
    punctuation (link and image brackets, code, emphasis, table pipes) backslash-escaped."""
    s = _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))
    return " ".join(s.splitlines())


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def html_table(df: pd.DataFrame, cls: str = "") -> str:
    if df.empty:
        return "<p class='none'>(none)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            s = html.escape(str(v))
            klass = " class='bad'" if s.startswith(("error", "failed", "timeout", "crashed")) else (
                " class='skip'" if s.startswith(("skipped", "unsupported")) else "")
            cells.append(f"<td{klass}>{s}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='scroll'><table class='{html.escape(cls)}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def rich_tables_text(blocks: list[tuple[str, pd.DataFrame]], width: int = 140) -> str:
    """Render (title, frame) pairs as rich tables into plain text."""
    # deferred: rich loads in a fraction of a second, and only the terminal text needs it
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buf = StringIO()
    # plain text goes to files and pipes: widen rather than fold cells into unreadable slivers
    need = max([width] + [sum(max([len(str(c))] + [len(str(v)) for v in df[c]]) + 3 for c in df.columns)
                          for _, df in blocks if df is not None and not df.empty])
    console = Console(file=buf, width=need, color_system=None, force_terminal=False, soft_wrap=False)
    for title, df in blocks:
        if df is None or df.empty:
            console.print(f"{escape(title)}: (none)")
            continue
        t = Table(title=escape(title), box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False)
        for c in df.columns:
            t.add_column(escape(str(c)), no_wrap=True)
        for row in df.itertuples(index=False):
            t.add_row(*(escape(str(v)) for v in row))
        console.print(t)
    return buf.getvalue().rstrip() + "\n"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1600px;padding:18px 28px;color:#1d2330;background:#fbfbfd}
h1{margin:0 0 4px}h2{margin-top:34px;border-bottom:2px solid #dde2ea;padding-bottom:4px}h3{margin-top:22px}
.sub{color:#5b6577;margin:0 0 14px}
.machines{display:flex;flex-wrap:wrap;gap:14px}
.machine{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:10px 14px;min-width:320px}
.machine dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:6px 0 0;font-size:13px}
.machine dt{color:#5b6577}.machine dd{margin:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;background:#fff;margin:6px 0}
th,td{border:1px solid #dde2ea;padding:3px 8px;text-align:left;white-space:nowrap}
th{background:#eef1f6;position:sticky;top:0}
tr:nth-child(even) td{background:#f7f8fb}
td.bad{color:#b00020;font-weight:600}td.skip{color:#7a7f8a}
figure{margin:10px 0 24px;background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:8px}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#5b6577;margin-top:4px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}
.none{color:#7a7f8a}
"""


def html_page(title: str, subtitle: str, machines_html: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained page: inline CSS, no script, no external resource."""
    nav = " · ".join(f"<a href='#s{i}'>{html.escape(t)}</a>" for i, (t, _) in enumerate(sections))
    body = "".join(f"<h2 id='s{i}'>{html.escape(t)}</h2>{content}" for i, (t, content) in enumerate(sections))
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)}</p>"
            f"<div class='machines'>{machines_html}</div><p>{nav}</p></header>{body}</body></html>\n")


def gpu_peaks_text(info: dict[str, Any]) -> str:
    """``float32 (TF32) 410000.0 GFLOP/s, float64 ...``: the GPU's GEMM peaks of a machine entry."""
    tf32 = info.get("gpu_float32_math") == "tf32"
    return ", ".join(f"{d}{' (TF32)' if tf32 and d == 'float32' else ''} {v:.1f} GFLOP/s"
                     for d, v in sorted((info.get("gpu_peak_gflops") or {}).items()))


def machine_card(info: dict[str, Any]) -> str:
    peaks = ", ".join(f"{d} {v:.1f} GFLOP/s" for d, v in sorted((info.get("peak_gflops") or {}).items()))
    items = [("id", info.get("machine_id")), ("CPU", info.get("cpu")), ("BLAS", info.get("blas")),
             ("peak compute", peaks or "not measured"),
             ("peak bandwidth", f"{info['peak_gbps']:.1f} GB/s" if info.get("peak_gbps") else "not measured")]
    if info.get("gpu_peak_gflops"):
        items += [("GPU peak compute", gpu_peaks_text(info)),
                  ("GPU peak bandwidth", f"{info['gpu_peak_gbps']:.1f} GB/s" if info.get("gpu_peak_gbps") else "not measured")]
    items.append(("records", f"{info.get('records')} from {info.get('runs')} run(s)"))
    shown = {"id", "hostname", "cpu", "blas", "peak_gflops", "peak_gbps", "gpu_peak_gflops", "gpu_peak_gbps",
             "gpu_float32_math"}
    for k, v in sorted((info.get("fingerprint") or {}).items()):
        if k not in shown and v not in (None, "", {}, []):
            items.append((k, v if not isinstance(v, dict) else ", ".join(f"{a}={b}" for a, b in v.items())))
    dl = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items)
    return f"<div class='machine'><strong>{html.escape(str(info['machine']))}</strong><dl>{dl}</dl></div>"
