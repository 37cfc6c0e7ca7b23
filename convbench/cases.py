"""The case catalogue: named suites of operator calls, and case descriptors.

A :class:`Case` is one operator call (operator, parameters, dtype) with a readable id. Suites are
named lists of cases, registered per operator with :func:`suite`. A descriptor such as
``n8c64h56w56o64k3s1p1`` names a single case; :func:`parse_descriptor` reads it.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from convbench._errors import ParamError
from convbench.ops import OpParams, get_op

__all__ = ["Case", "parse_descriptor", "suite", "get_suite", "suite_names", "cases_from"]


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


# --- descriptors -----------------------------------------------------------------------------

_FLAGS = {"nb": ("nb", True), "ceil": ("ceil", True), "psame": ("p", "same"), "pvalid": ("p", "valid")}
_VALUE_KEYS = ("cip", "dt", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "do",
               "n", "c", "h", "w", "l", "o", "k", "s", "p", "d", "g")
_DTYPES = {32: "float32", 64: "float64"}


def parse_descriptor(text: str, op: str = "conv2d") -> Case:
    """The case a descriptor names: ``n8c64h56w56o64k3s1p1``, ``n4c8l100o16k5``, ``n1c3h32w32k2``.

    Keys (lower case, each followed by a number, any order): ``n c h w l o k kh kw s sh sw p ph pw
    d dh dw g``; flags ``nb`` (no bias), ``psame``, ``pvalid``, ``ceil``, ``cip0`` / ``cip1``
    (count_include_pad), ``dt32`` / ``dt64``. Raises ``ParamError`` pointing at a bad token.
    """
    spec = get_op(op)
    s = text.strip()
    if not s:
        raise ParamError("case descriptor is empty")
    keys: dict[str, Any] = {}
    dtype = "float32"
    i = 0
    while i < len(s):
        tok = None
        for flag, (k, v) in sorted(_FLAGS.items(), key=lambda kv: -len(kv[0])):
            if s.startswith(flag, i) and not s[i + len(flag):i + len(flag) + 1].isdigit():
                tok, key, val, j = flag, k, v, i + len(flag)
                break
        if tok is None:
            m = re.match(r"([a-z]+?)(\d+)", s[i:])
            key = next((k for k in _VALUE_KEYS if s.startswith(k, i) and s[i + len(k):i + len(k) + 1].isdigit()), None)
            if key is None:
                bad = re.match(r"[a-z]*\d*", s[i:]).group(0) or s[i]
                raise ParamError(f"case descriptor {text!r}: unknown or malformed token {bad!r} at position {i}\n"
                                 f"  {text}\n  {' ' * i}^")
            m = re.match(r"\d+", s[i + len(key):])
            tok, val, j = key + m.group(0), int(m.group(0)), i + len(key) + len(m.group(0))
        if key in keys or (key == "dt" and "dt" in keys):
            raise ParamError(f"case descriptor {text!r}: key {key!r} given twice (token {tok!r} at position {i})")
        if key == "dt":
            if val not in _DTYPES:
                raise ParamError(f"case descriptor {text!r}: dtype token {tok!r} must be dt32 or dt64")
            dtype = _DTYPES[val]
        keys[key] = val
        i = j
    keys.pop("dt", None)
    unknown = sorted(set(keys) - set(spec.descriptor_keys))
    if unknown:
        raise ParamError(f"case descriptor {text!r}: key(s) {', '.join(unknown)} do not apply to {op}")
    p = spec.params_from_keys(keys)
    return Case(id=p.descriptor if dtype == "float32" else f"{p.descriptor}dt{dtype[-2:]}", params=p, dtype=dtype)


# --- suites ----------------------------------------------------------------------------------

_SUITES: dict[tuple[str, str], Callable[[], list[Case]]] = {}


def suite(op: str, name: str) -> Callable[[Callable[[], list[Case]]], Callable[[], list[Case]]]:
    """Register a function returning the cases of suite ``name`` for ``op``."""

    def deco(fn: Callable[[], list[Case]]) -> Callable[[], list[Case]]:
        _SUITES[(op, name)] = fn
        return fn

    return deco


def suite_names(op: str = "conv2d") -> list[str]:
    _load_catalogue()
    return sorted(n for o, n in _SUITES if o == op)


def get_suite(name: str, op: str = "conv2d") -> list[Case]:
    """The cases of suite ``name``; ``ParamError`` naming the known suites otherwise."""
    get_op(op)
    _load_catalogue()
    try:
        fn = _SUITES[(op, name)]
    except KeyError:
        raise ParamError(f"suite {name!r} is not defined for {op}; known: {', '.join(suite_names(op))}") from None
    return fn()


def cases_from(op: str, suites: list[str] | None = None, descriptors: list[str] | None = None,
               default: str = "quick") -> list[Case]:
    """Cases named by ``--suite`` and ``--case`` arguments (``default`` suite when neither given)."""
    out: list[Case] = []
    for s in suites or []:
        out += get_suite(s, op)
    for d in descriptors or []:
        out.append(parse_descriptor(d, op))
    if not suites and not descriptors:
        out = get_suite(default, op)
    seen, uniq = set(), []
    for c in out:
        if c.descriptor not in seen:  # the same call named twice runs once
            seen.add(c.descriptor)
            uniq.append(c)
    return uniq


_CATALOGUE_MODULES = ("convbench._catalogue", "convbench._models", "convbench._random", "convbench._catalogue_ops")


def _load_catalogue() -> None:
    """Import the modules that register suites (each registers on import, once)."""
    import importlib
    import importlib.util

    for name in _CATALOGUE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def conv(id: str, dtype: str = "float32", count: int = 1, tags: tuple[str, ...] = (), **kw: Any) -> Case:
    """A conv2d case from keyword parameters (``n, c, h, w, o, kh, kw`` or ``k``, ...)."""
    from convbench.ops.conv2d import Conv2dParams

    if "k" in kw:
        kw["kh"] = kw["kw"] = kw.pop("k")
    return Case(id=id, params=Conv2dParams(**kw), dtype=dtype, count=count, tags=tags)
