"""Errors of convbench's public API, and how a message is kept short."""
from __future__ import annotations

__all__ = ["ParamError", "cut", "one_line", "MAX_MESSAGE"]

#: longest message (an exception's text) passed on or printed whole; longer ones are cut with a note
MAX_MESSAGE = 2000


class ParamError(ValueError):
    """An operator argument is invalid; the message names the argument and its value."""


def cut(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text``, or its first ``limit`` characters and a note saying how much was cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... [{len(text) - limit} more characters cut]"


def one_line(exc: BaseException | str) -> str:
    """An exception's message (or a text) on one line, cut past :data:`MAX_MESSAGE` characters."""
    return cut(" ".join(str(exc).split()))
