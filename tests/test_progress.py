"""The progress bar: drawn on a terminal or when asked, never into a pipe or when told not to."""
from __future__ import annotations

import io

from convbench._progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drawn(stream: io.StringIO, show: bool | None) -> str:
    with progress(3, "checking", stream=stream, show=show) as advance:
        for label in ("a", "b", "c"):
            advance(label)
    return stream.getvalue()


def test_progress_draws_on_a_terminal_only_by_default():
    assert "checking" in _drawn(_Terminal(), None)
    assert _drawn(io.StringIO(), None) == ""


def test_progress_show_forces_the_bar_on_or_off():
    assert "checking" in _drawn(io.StringIO(), True)
    assert _drawn(_Terminal(), False) == ""


def test_progress_without_items_draws_nothing():
    with progress(0, "checking", stream=_Terminal(), show=True) as advance:
        advance("x")
    # a stream that cannot tell whether it is a terminal is taken for none
    class Closed(io.StringIO):
        def isatty(self) -> bool:
            raise ValueError("I/O operation on closed file")

    assert _drawn(Closed(), None) == ""
