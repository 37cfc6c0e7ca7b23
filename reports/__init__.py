"""Results to pictures: bench and check records -> pandas frames -> tables, plots, Markdown, HTML, CSV.

``reports`` reads records and nothing else: it never imports a timer or an implementation, so a
report can be rebuilt from record files long after the run that made them.
"""
from __future__ import annotations

from reports._load import load
from reports._report import analyse, summary_text, write_report

__all__ = ["load", "write_report", "summary_text", "analyse"]
