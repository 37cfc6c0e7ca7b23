"""Progress on a terminal, silence elsewhere (pipes, CI logs, files)."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

__all__ = ["progress"]


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def progress(total: int, description: str, stream: Any = None,
             show: bool | None = None) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(label)``, drawing a rich progress bar on ``stream`` (default stderr).

    ``show`` None draws only when ``stream`` is a terminal; True draws as on a terminal whatever
    ``stream`` is; False never draws.
    """
    stream = stream or sys.stderr
    draw = _is_terminal(stream) if show is None else show
    if not draw or total <= 0:
        yield lambda label="": None
        return
    # deferred: rich costs a fraction of a second to import and only a drawn bar needs it
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[label]}"),
                  console=Console(file=stream, force_terminal=True), transient=True) as bar:
        task = bar.add_task(description, total=total, label="")

        def advance(label: str = "") -> None:
            bar.update(task, advance=1, label=label)

        yield advance

