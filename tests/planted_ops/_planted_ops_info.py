"""What the planted bugs share: an ``info`` made from the file's spec, so the checks name them."""
from __future__ import annotations

from pathlib import Path

from convbench.protocol import ImplInfo


def info(op: str, name: str, file: str, obj: str) -> ImplInfo:
    return ImplInfo(op=op, name=name, backend="numpy", spec=f"{Path(file).resolve()}:{obj}")
