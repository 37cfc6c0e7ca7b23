"""Case descriptors: ``n8c64h56w56o64k3s1p1`` names a single case (keys in docs/operators.md)."""
from __future__ import annotations

import re
from typing import Any

from convbench._errors import ParamError
from convbench.cases.case import Case
from convbench.ops import get_op

__all__ = ["parse_descriptor"]


_FLAGS = {"nb": ("nb", True), "ceil": ("ceil", True), "psame": ("p", "same"), "pvalid": ("p", "valid")}
_VALUE_KEYS = ("cip", "dt", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "do",
               "n", "c", "h", "w", "l", "o", "k", "s", "p", "d", "g")
_DTYPES = {32: "float32", 64: "float64"}


def _bad_token(text: str, s: str, i: int) -> str:
    """What is wrong at position ``i``: a known key without a whole number (``n-1``, ``k1.5``,
    ``s``), or a token that is no key at all; one line."""
    key = next((k for k in _VALUE_KEYS if s.startswith(k, i)), None)
    if key is not None:
        after = re.match(r"[-+]?[\d.]*[a-z]?", s[i + len(key):]).group(0) or "nothing"
        value = after if after == "nothing" else repr(after.rstrip("abcdefghijklmnopqrstuvwxyz") or after)
        return (f"case descriptor {text!r}: key {key!r} (position {i}) needs a whole number >= 0, "
                f"got {value}")
    if s[i] == "." and i and s[i - 1].isdigit():   # k1.5: the key read 1, then met the point
        start = i - len(re.search(r"\d+$", s[:i]).group(0))
        number = s[start:i + 1] + re.match(r"\d*", s[i + 1:]).group(0)
        return f"case descriptor {text!r}: numbers are whole, got {number!r} at position {start}"
    bad = re.match(r"[a-z]*\d*", s[i:]).group(0) or s[i]
    return f"case descriptor {text!r}: unknown or malformed token {bad!r} at position {i}"


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
    odd = next((ch for ch in s if not ch.isascii()), None)
    if odd is not None:   # Python's int() reads "１" (fullwidth) as 1: a descriptor is plain ASCII
        raise ParamError(f"case descriptor {text!r}: {odd!r} at position {s.index(odd)} is not ASCII "
                         f"(keys are letters a-z, values digits 0-9)")
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
                raise ParamError(_bad_token(text, s, i))
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
