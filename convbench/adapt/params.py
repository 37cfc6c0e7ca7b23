"""Reading a function's parameters: which one is the input, the weight, the bias, and which
hyperparameter each of the others is.

A function names its hyperparameters as its course does: ``stride``, ``s``, ``stride_size``;
``padding``, ``pad``, ``pad_size``, ``p``; a pool's window ``kernel_size``, ``pool_size``, ``size``,
``k``, ``f``. Known aliases are matched here; a user names the others
(``convbench.adapt(fn, names={"step": "stride"})``). A parameter that cannot be identified is
never left at its default silently: the adapter makes the cases that would need it unsupported,
and a required one is a usage error that names it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["KEYS", "ALIASES", "FnParams", "read_params", "pytorch_default", "omit_default"]

#: the hyperparameters each operator's functions may take, in PyTorch's order
KEYS = {"conv2d": ("stride", "padding", "dilation", "groups"),
        "conv1d": ("stride", "padding", "dilation", "groups"),
        "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
        "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")}
#: the names a parameter goes by in course code, first match wins
ALIASES = {
    "stride": ("stride", "strides", "s", "stride_size", "stride_length", "step_size"),
    "padding": ("padding", "pad", "pads", "p", "pad_size", "padding_size", "pad_width", "zero_padding"),
    "dilation": ("dilation", "dilations", "d", "dilation_rate", "dilation_size"),
    "groups": ("groups", "group", "g", "num_groups", "n_groups"),
    "kernel_size": ("kernel_size", "pool_size", "size", "k", "f", "ksize", "kernel", "pool", "window",
                    "window_size", "filter_size", "field_size", "pool_shape", "kernel_shape"),
    "ceil_mode": ("ceil_mode", "ceil"),
    "count_include_pad": ("count_include_pad", "include_pad"),
    "divisor_override": ("divisor_override", "divisor"),
}
#: defaults that leave a call as PyTorch's defaults would: an unidentified parameter with one of
#: these is taken to mean nothing on the cases that need none of what it is missing
_NEUTRAL = (None, 0, 1, False, "valid", (0, 0), (1, 1), (0,), (1,))


def pytorch_default(op: str, key: str) -> Any:
    """PyTorch's default for ``key`` of ``op`` (``stride`` of a pool: None, meaning the kernel)."""
    if op.endswith("pool2d") and key == "stride":
        return None
    return {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "ceil_mode": False,
            "count_include_pad": True, "divisor_override": None}[key]


def _same(a: Any, b: Any) -> bool:
    """Two hyperparameter values mean the same: ``1 == (1, 1)``, ``0 == 'valid'`` for padding."""
    def norm(v: Any) -> Any:
        if isinstance(v, (tuple, list)) and len(set(v)) == 1:
            return v[0]
        return 0 if isinstance(v, str) and v == "valid" else v
    try:
        return bool(norm(a) == norm(b))
    except Exception:  # a default that does not compare
        return False


def omit_default(op: str, key: str, value: Any, default: Any, kernel: tuple[int, ...]) -> bool:
    """Whether a call may leave ``key`` out: the case's ``value`` is PyTorch's default and the
    object's own ``default`` means the same (a pool's stride: None, the kernel), so that a wrong
    default (``stride=kernel_size[0]`` for a rectangular window) is exercised, not bypassed."""
    if default is inspect.Parameter.empty or key == "kernel_size":  # a window has no default
        return False
    if op.endswith("pool2d") and key == "stride":
        return default is None and tuple(value) == tuple(kernel)
    theirs = pytorch_default(op, key)
    return _same(value, theirs) and _same(default, theirs)


def _neutral(v: Any) -> bool:
    if isinstance(v, list):
        v = tuple(v)
    return any(v is n or (type(v) is type(n) and v == n) for n in _NEUTRAL)


@dataclass
class FnParams:
    """What a function's signature says it takes.

    ``x``, ``w``, ``b``: the names of its input, weight and bias (``w``/``b`` None where it has
    none); ``bias_required``: the bias has no default (it gets zeros on cases without bias);
    ``kw``: hyperparameter key -> its argument name; ``defaults``: key -> the function's default
    (absent where the argument is required); ``unknown``: optional parameters no key names, with
    their defaults.
    """

    x: str
    w: str | None
    b: str | None
    bias_required: bool
    kw: dict[str, str]
    defaults: dict[str, Any] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)

    @property
    def loud(self) -> dict[str, Any]:
        """The unknown parameters whose default is not neutral: they may change every result."""
        return {k: v for k, v in self.unknown.items() if not _neutral(v)}


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def read_params(fn: Callable[..., Any], op: str, names: dict[str, str] | None = None) -> FnParams:
    """The roles of ``fn``'s parameters for ``op``.

    Parameters
    ----------
    fn : callable
        The function.
    op : str
        The operator it implements.
    names : dict, optional
        The user's word for parameters no alias matches: argument name -> key (``{"step":
        "stride"}``; ``"x"``, ``"w"``, ``"b"`` name the arrays).

    Raises
    ------
    TypeError
        A required parameter with no counterpart in ``op`` (named, with the recipe), a ``names``
        entry that names no parameter or no key, or a signature that cannot be read.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {fn!r}: {exc}") from None
    params = [q for q in sig.parameters.values() if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    conv = op in ("conv2d", "conv1d")
    user = dict(names or {})
    valid = set(KEYS[op]) | {"x", "w", "b"} if conv else set(KEYS[op]) | {"x"}
    for arg, key in user.items():
        if arg not in sig.parameters:
            raise TypeError(f"names={{{arg!r}: {key!r}}}: {_name(fn)}{sig} has no parameter {arg!r}")
        if key not in valid:
            raise TypeError(f"names={{{arg!r}: {key!r}}}: {key!r} is not a parameter of {op}; "
                            f"one of {', '.join(sorted(valid))}")
    role: dict[str, str] = {arg: key for arg, key in user.items()}
    positional = [q for q in params if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
    arrays = ("x", "w", "b") if conv else ("x",)
    free = [q for q in positional if q.name not in role]
    for key in arrays:  # unnamed arrays in order: input, weight, bias
        if key not in role.values() and free and not (key == "b" and _alias_of(free[0].name, op)):
            if key == "b" and (free[0].default is not free[0].empty and free[0].default is not None):
                break  # a third parameter with a non-None default is a hyperparameter, not a bias
            role[free.pop(0).name] = key
    if not conv and "kernel_size" not in role.values() and free and free[0].default is free[0].empty \
            and _alias_of(free[0].name, op) is None:
        role[free.pop(0).name] = "kernel_size"  # pool(x, 2): the second is the window
    for q in params:
        if q.name not in role:
            key = _alias_of(q.name, op)
            if key is not None and key not in role.values():
                role[q.name] = key
    by_key = {key: arg for arg, key in role.items()}
    if "x" not in by_key or (conv and "w" not in by_key):
        raise TypeError(f"a {op} function takes at least ({'x, w' if conv else 'x, kernel_size'}); "
                        f"{_name(fn)}{sig} does not")
    need = [q.name for q in params if q.name not in role and q.default is q.empty]
    if need:
        raise TypeError(
            f"{_name(fn)}{sig}: its required parameter {need[0]!r} has no counterpart in {op} (convbench gives "
            f"{', '.join(arrays[:2] if conv else arrays)}, {', '.join(KEYS[op])}), so it cannot be called; if "
            f"{need[0]!r} is one of these under another name, name it: convbench.adapt({_name(fn)}, "
            f"names={{{need[0]!r}: '...'}}) in a shim file; otherwise wrap the function in one that fixes it "
            "(see 'Forms convbench cannot drive' in docs/verification.md)")
    sig_params = sig.parameters
    kw = {key: arg for key, arg in by_key.items() if key in KEYS[op]}
    defaults = {key: sig_params[arg].default for key, arg in kw.items() if sig_params[arg].default is not inspect._empty}
    b = by_key.get("b")
    return FnParams(x=by_key["x"], w=by_key.get("w"), b=b,
                    bias_required=b is not None and sig_params[b].default is inspect._empty, kw=kw, defaults=defaults,
                    unknown={q.name: q.default for q in params if q.name not in role})


def _alias_of(name: str, op: str) -> str | None:
    for key in KEYS[op]:
        if name in ALIASES[key]:
            return key
    return None
