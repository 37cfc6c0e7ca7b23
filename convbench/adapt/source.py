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

__all__ = ["PAIR_SRC", "source", "assigned", "pair_only", "reads_pairs", "reads_pair_of", "int_only", "pair_keys", "shape_unpacks",
           "square_only", "reads_data", "uses_torch"]

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
    return any(reads_pair_of(src, n) for n in names)


def reads_pair_of(src: str, name: str) -> bool:
    """Whether ``src`` treats the one argument ``name`` (or an attribute of that name) as an ``(h,
    w)`` pair: indexed, tested, unpacked itself or through one call, or handed to a
    ``*pair*``/``*tuple*`` helper (the rules of :func:`reads_pairs`, for one name: a constructor
    may take ``kernel_size`` as an int or a pair but ``stride`` as an int only)."""
    if not name:
        return False
    alt = re.escape(name)
    return bool(re.search(rf"\b({alt})\s*\[\s*[01]\s*\]|isinstance\(\s*({alt})\s*,|"
                          rf"^\s*\w+\s*,\s*\w+\s*=\s*([\w.]+\(\s*({alt})\s*(,[^()]*)?\)|({alt}))\s*(#.*)?$|"
                          rf"\w*(pair|tuple)\w*\(\s*({alt})\s*[,)]", src, re.M))


def int_only(src: str, name: str) -> bool:
    """Whether ``src`` does arithmetic with ``name`` (or ``self.name``) itself: ``(h - k) // stride``,
    ``2 * padding``, which a pair would break."""
    n = re.escape(name)
    return bool(re.search(rf"[-+*/%]\s*(self\.)?{n}\b(?!\s*[\[.(])|(?<![\w.])(self\.)?{n}\s*[-+*/%](?!=)", src))


def pair_keys(src: str, names: dict[str, str], only: frozenset[str]) -> frozenset[str]:
    """The hyperparameters (key -> argument name) a source takes as ``(h, w)`` pairs, decided per
    parameter: one it reads as a pair (:func:`reads_pair_of`) or takes as pairs only; where the
    source reads any as pairs (:func:`reads_pairs`), also those it never does arithmetic with
    (handed on to a helper that may take a pair) -- not ``stride`` in ``(h - kh) // stride``."""
    keys = {k for k, arg in names.items() if k in only or reads_pair_of(src, arg)}
    if keys or reads_pairs(src, list(names.values())):
        keys |= {k for k, arg in names.items() if not int_only(src, arg)}
    return frozenset(keys)


def shape_unpacks(src: str, name: str) -> list[ast.Assign]:
    """Every ``a, b, ... = name.shape`` (or ``self.name.shape``) in ``src``, in source order."""
    try:
        tree = ast.parse(textwrap.dedent(src))
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], (ast.Tuple, ast.List))
                and isinstance(node.value, ast.Attribute) and node.value.attr == "shape"):
            owner = node.value.value
            if (isinstance(owner, ast.Name) and owner.id == name) or (isinstance(owner, ast.Attribute)
                                                                      and owner.attr == name):
                out.append(node)
    return sorted(out, key=lambda n: n.lineno)


def square_only(src: str, name: str) -> str | None:
    """The line that reads one size for both kernel axes from the weight ``name``'s shape, as
    ``n_f, c, f, f = w.shape`` or deeplearning.ai's ``(f, f, n_C_prev, n_C) = W.shape`` do (a name
    assigned twice keeps the last axis): such code takes square kernels only. None otherwise."""
    for node in shape_unpacks(src, name):
        names = [e.id for e in node.targets[0].elts if isinstance(e, ast.Name) and e.id != "_"]
        if len(names) != len(set(names)):
            return ast.unparse(node)
    return None


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
    itself (``torch.from_numpy``); or one that calls nothing of its module but tensor methods, in a
    module that imports torch and not NumPy."""
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
    if _seen is None and not calls - {getattr(fn, "__name__", None)}:
        # only tensor methods (x.unfold(...).mean(...)): its module imports torch and not NumPy
        mods = {getattr(v, "__name__", "") for v in g.values() if inspect.ismodule(v)}
        if any(m.split(".")[0] == "torch" for m in mods) and not any(m.split(".")[0] == "numpy" for m in mods):
            return True
    return of("torch") or any(
        (inspect.isfunction(g[n]) or inspect.isclass(g[n])) and getattr(g[n], "__module__", None) == own
        and id(g[n]) not in seen and uses_torch(g[n], seen) for n in calls)
