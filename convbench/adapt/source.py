"""Reading the source of a user's object: what its code says it takes.

The adapters of every form decide from here what an object can be given: whether it takes a
hyperparameter as an ``(h, w)`` pair (:func:`reads_pairs`) or only as one (:func:`pair_only`),
whether it reads its argument's ``.data`` (:func:`reads_data`), whether it is written against
torch tensors (:func:`uses_torch`). An object whose source cannot be read gives ``""``.
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any

__all__ = ["PAIR_SRC", "source", "assigned", "pair_only", "reads_pairs", "reads_data", "uses_torch"]

PAIR_SRC = re.compile(r"(kernel_size|kernel|stride|padding|pad|ksize|pool_size|pool|size)\s*\[\s*[01]\s*\]|"
                       r"_pair\(|isinstance\(\s*(kernel_size|kernel|stride|padding|pad|ksize|pool_size|pool|size)\s*,")


def source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def assigned(tree: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) of every plain assignment, ``a, b = c, d`` taken apart."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            v = node.value
            for t in node.targets:
                if isinstance(t, ast.Tuple) and isinstance(v, ast.Tuple) and len(t.elts) == len(v.elts):
                    out.extend(zip(t.elts, v.elts))
                else:
                    out.append((t, node.value))
    return out


def pair_only(fn: Any, names: dict[str, str], src: str | None = None) -> frozenset[str]:
    """The hyperparameters (keys of ``names``: key -> ``fn``'s argument name) that ``fn`` takes as
    ``(h, w)`` pairs only, so that an int would break it: a tuple default (``stride=(1, 1)``), or a
    source that unpacks or indexes the argument (``sh, sw = stride``, ``stride[0]``; or the
    attribute it is stored in, ``self.stride = stride`` ... ``sh, sw = self.stride``) and never
    passes it to a call (``isinstance``, ``pair``), reassigns it or catches an error.
    ``src`` is the source to read (a layer's whole class), by default ``fn``'s."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return frozenset()
    out = {key for key, arg in names.items()
           if arg in params and isinstance(params[arg].default, (tuple, list))}
    try:
        tree = ast.parse(textwrap.dedent(source(fn) if src is None else src))
    except (SyntaxError, ValueError):  # a fragment (a lambda inside a call), a null byte
        return frozenset(out)
    if any(isinstance(node, ast.Try) for node in ast.walk(tree)):
        return frozenset(out)
    for key, arg in names.items():
        if key in out:
            continue
        attrs = {t.attr for t, v in assigned(tree) if isinstance(t, ast.Attribute)
                 and isinstance(v, ast.Name) and v.id == arg}

        def ref(node: Any) -> bool:
            return ((isinstance(node, ast.Name) and node.id == arg)
                    or (isinstance(node, ast.Attribute) and node.attr in attrs))

        unpacked = handled = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                if any(isinstance(t, (ast.Tuple, ast.List)) for t in node.targets) and ref(node.value):
                    unpacked = True
                if any(ref(t) for t in node.targets) and not (isinstance(node.value, ast.Name)
                                                              and node.value.id == arg):
                    handled = True  # reassigned: it may be normalised
            elif isinstance(node, (ast.Subscript, ast.Starred)) and ref(node.value):
                unpacked = True  # stride[0], f(*kernel_size)
            elif isinstance(node, ast.Call) and any(ref(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                handled = True
        if unpacked and not handled:
            out.add(key)
    return frozenset(out)


def reads_pairs(src: str, names: list[str]) -> bool:
    """Whether a source treats a hyperparameter as an ``(h, w)`` pair: ``PAIR_SRC`` (its common
    names indexed or tested, ``_pair(``), or one of the function's or constructor's own argument
    ``names`` indexed (``stride[0]``), tested (``isinstance(stride, ...)``), unpacked itself or
    through one call (``sh, sw = stride``, ``sh, sw = pair(stride)``; not ``oh, ow = (h - k) //
    stride + 1, ...`` or ``sh, sw = stride, stride``, which use an int) or handed to a
    ``*pair*``/``*tuple*`` helper."""
    if PAIR_SRC.search(src):
        return True
    if not names:
        return False
    alt = "|".join(re.escape(n) for n in names)
    return bool(re.search(rf"\b({alt})\s*\[\s*[01]\s*\]|isinstance\(\s*({alt})\s*,|"
                          rf"^\s*\w+\s*,\s*\w+\s*=\s*([\w.]+\(\s*({alt})\s*(,[^()]*)?\)|({alt}))\s*(#.*)?$|"
                          rf"\w*(pair|tuple)\w*\(\s*({alt})\s*[,)]", src, re.M))


def reads_data(method: Any) -> bool:
    """Does ``method(arg)`` read ``arg.data`` (a TinyTorch-style layer)?"""
    try:
        names = [q for q in inspect.signature(method).parameters if q != "self"]
    except (TypeError, ValueError):
        return False
    return bool(names) and re.search(rf"\b{re.escape(names[0])}\.data\b", source(method)) is not None


def uses_torch(fn: Any, _seen: set[int] | None = None) -> bool:
    """Whether ``fn`` (a function or class) is written against torch tensors: its source uses a
    torch module or function of its module's globals (``torch.zeros``, ``F.conv2d``, ``conv2d(``
    imported from torch), or a function or class of its own module that does (``conv2d_unfold(``,
    ``MyConvFunction.apply(``), and no NumPy module or function, and it does not convert arrays
    itself (``torch.from_numpy``)."""
    seen = set() if _seen is None else _seen
    seen.add(id(fn))
    src = source(fn)
    module = inspect.getmodule(fn)
    g = getattr(fn, "__globals__", None) or (vars(module) if module is not None else None)
    if not src or not isinstance(g, dict) or "from_numpy(" in src:
        return False
    calls = {n for n in g if re.search(rf"(?<![\w.]){re.escape(n)}\s*[.(]", src)}

    def module_of(v: Any) -> Any:
        try:
            return v.__name__ if inspect.ismodule(v) else getattr(v, "__module__", None) if callable(v) else None
        except Exception:  # a lazy or proxy global that raises on attribute access
            return None

    def of(root: str) -> bool:
        return any(isinstance(m, str) and (m == root or m.startswith(root + "."))
                   for m in (module_of(g[n]) for n in calls))

    if of("numpy"):
        return False
    own = getattr(module, "__name__", None)
    return of("torch") or any(
        (inspect.isfunction(g[n]) or inspect.isclass(g[n])) and getattr(g[n], "__module__", None) == own
        and id(g[n]) not in seen and uses_torch(g[n], seen) for n in calls)
