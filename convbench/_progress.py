"""Progress on a terminal, silence elsewhere (pipes, CI logs, files)."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def progress(total: int, description: str, stream: Any = None) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(label)``; draws a rich progress bar only when ``stream`` is a terminal."""
    stream = stream or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()) or total <= 0:
        yield lambda label="": None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[label]}"),
                  console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total, label="")

        def advance(label: str = "") -> None:
            bar.update(task, advance=1, label=label)

        yield advance
