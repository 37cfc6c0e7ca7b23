"""Errors of convbench's public API."""
from __future__ import annotations

__all__ = ["ParamError"]


class ParamError(ValueError):
    """An operator argument is invalid; the message names the argument and its value."""
