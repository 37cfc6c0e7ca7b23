"""A case: one operator call (operator, parameters, dtype) with a readable id."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from convbench.ops import Conv2dParams, OpParams

__all__ = ["Case", "conv"]


@dataclass(frozen=True)
class Case:
    """One operator call: parameters, dtype and a readable id.

    ``count`` is how many times the layer occurs in its model (1 elsewhere), so whole-model totals
    follow from per-layer numbers; ``tags`` carry the suite's notes (``small``, ``model:resnet50``).
    """

    id: str
    params: OpParams
    dtype: str = "float32"
    count: int = 1
    tags: tuple[str, ...] = ()

    @property
    def op(self) -> str:
        return self.params.op

    @property
    def descriptor(self) -> str:
        """Descriptor of the parameters and dtype; parses back to this case's call."""
        d = self.params.descriptor
        return d if self.dtype == "float32" else f"{d}dt{self.dtype[-2:]}"

    def with_batch(self, n: int) -> "Case":
        return dataclasses.replace(self, params=dataclasses.replace(self.params, n=n))

    def with_dtype(self, dtype: str) -> "Case":
        return dataclasses.replace(self, dtype=dtype)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, "descriptor": self.descriptor, "dtype": self.dtype,
                "count": self.count, "params": _jsonable(self.params.asdict())}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def conv(id: str, dtype: str = "float32", count: int = 1, tags: tuple[str, ...] = (), **kw: Any) -> Case:
    """A conv2d case from keyword parameters (``n, c, h, w, o, kh, kw`` or ``k``, ...)."""
    if "k" in kw:
        kw["kh"] = kw["kw"] = kw.pop("k")
    return Case(id=id, params=Conv2dParams(**kw), dtype=dtype, count=count, tags=tags)
