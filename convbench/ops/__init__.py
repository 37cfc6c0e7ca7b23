"""The operators: one module each, looked up by name."""
from __future__ import annotations

from convbench._errors import ParamError
from convbench.ops import avg_pool2d, conv1d, conv2d, max_pool2d
from convbench.ops._base import DIRECTIONS, Op, OpParams
from convbench.ops.avg_pool2d import AvgPool2dParams
from convbench.ops.conv1d import Conv1dParams
from convbench.ops.conv2d import Conv2dParams
from convbench.ops.max_pool2d import MaxPool2dParams

__all__ = ["DIRECTIONS", "Op", "OpParams", "Conv2dParams", "Conv1dParams", "MaxPool2dParams",
           "AvgPool2dParams", "get_op", "op_names"]


#: the operators in the order commands and reports list them
_OPS: dict[str, Op] = {"conv2d": conv2d.OP, "conv1d": conv1d.OP, "max_pool2d": max_pool2d.OP,
                       "avg_pool2d": avg_pool2d.OP}


def op_names() -> list[str]:
    """The operators' names, conv2d first."""
    return list(_OPS)


def get_op(name: str) -> Op:
    """The operator called ``name``; ``ParamError`` naming the known ones otherwise."""
    try:
        return _OPS[name]
    except KeyError:
        raise ParamError(f"op must be one of {', '.join(_OPS)}; got {name!r}") from None
