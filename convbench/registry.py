"""Discovery, listing and loading of implementations by spec.

An implementation follows the protocol of :mod:`convbench.protocol` (re-exported here:
:class:`ImplInfo`, :class:`Implementation`, :func:`register`). Modules of the shipped ``impls``
package register on import; third-party packages through the entry-point group
``convbench.impls``; a user's object by spec (``file.py:OBJ``, ``pkg.mod:OBJ``), turned into an
implementation by :func:`convbench.adapt.adapt` where it does not follow the protocol itself.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import pkgutil
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from convbench._errors import ParamError
from convbench.adapt import adapt
from convbench.ops import get_op
from convbench.protocol import REGISTRY, REGISTRY_LOCK, ImplInfo, Implementation, register

__all__ = ["ImplInfo", "Implementation", "register", "discover", "implementations", "registered", "availability",
           "get_impl", "load_impl", "resolve_impls", "ENTRY_POINT_GROUP", "SHIPPED_PACKAGE"]

ENTRY_POINT_GROUP = "convbench.impls"
#: the package of the shipped families, found by name (like an entry point) so that the engine
#: imports none of them; installed without it, only entry points and specs are found
SHIPPED_PACKAGE = "impls"
_DISCOVERED = False


class _Broken(Implementation):
    """Stands in for a module that failed to import, so `list` can say why."""

    def __init__(self, error: str) -> None:
        self._error = error

    def availability(self) -> str | None:
        return self._error


def _record_broken(op: str, name: str, spec: str, exc: BaseException) -> None:
    register(_Broken(f"import failed: {type(exc).__name__}: {exc}"), op=op, name=name, spec=spec,
             backend="?", replace=True)


def _shipped_modules() -> list[str]:
    """The public modules of the shipped package (each one family), without importing it."""
    try:
        spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.submodule_search_locations is None:  # installed without it
        return []
    return sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations) if not m.name.startswith("_"))


def discover() -> None:
    """Import every module of the shipped ``impls`` package and every ``convbench.impls`` entry
    point (once)."""
    global _DISCOVERED
    with REGISTRY_LOCK:
        if _DISCOVERED:
            return
        _DISCOVERED = True
        for name in _shipped_modules():
            try:
                importlib.import_module(f"{SHIPPED_PACKAGE}.{name}")
            except Exception as exc:  # one broken family must not hide the others
                _record_broken("conv2d", re.sub(r"[^a-z0-9_]", "_", name.lower()), f"{SHIPPED_PACKAGE}.{name}", exc)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                _load_entry_point(ep)
            except Exception as exc:
                _record_broken("conv2d", re.sub(r"[^a-z0-9_]", "_", ep.name.lower()), f"{ep.value}", exc)


def _load_entry_point(ep: metadata.EntryPoint) -> None:
    before = set(REGISTRY)
    obj = ep.load()
    if isinstance(obj, type(sys)):  # a module that registers on import
        for key in set(REGISTRY) - before:
            REGISTRY[key].info = dataclasses.replace(REGISTRY[key].info, isolate=True)
        return
    if set(REGISTRY) == before:
        _adapt_and_register(obj, op=None, name=ep.name, spec=ep.value)


def _with_availability(inst: Any) -> ImplInfo:
    cached = getattr(inst, "_cb_availability", _MISSING)
    if cached is _MISSING:
        try:
            cached = inst.availability() if hasattr(inst, "availability") else None
        except Exception as exc:
            cached = f"availability check failed: {type(exc).__name__}: {exc}"
        try:
            inst._cb_availability = cached
        except AttributeError:
            pass
    return dataclasses.replace(inst.info, available=cached is None, reason=cached or "")


_MISSING = object()


def implementations(op: str | None = None) -> list[ImplInfo]:
    """Metadata of every registered implementation (of ``op``), available or not, with the reason.

    Parameters
    ----------
    op : str, optional
        Only this operator's implementations.

    Returns
    -------
    list of ImplInfo
        Sorted by op then name; ``available`` and ``reason`` filled in.
    """
    if op is not None:
        get_op(op)
    discover()
    with REGISTRY_LOCK:
        items = sorted(REGISTRY.items())
    return [_with_availability(inst) for (o, _), inst in items if op is None or o == op]


def registered(op: str | None = None) -> list[Any]:
    """The registered implementation objects (of ``op``), sorted by name."""
    discover()
    with REGISTRY_LOCK:
        return [inst for (o, _), inst in sorted(REGISTRY.items()) if op is None or o == op]


def availability(impl: Any) -> str | None:
    """None when ``impl`` can run here, else the reason (cached)."""
    info = _with_availability(impl)
    return None if info.available else info.reason


def get_impl(name: str, op: str = "conv2d") -> Any:
    """The registered implementation ``name`` of ``op``; ``ParamError`` listing known names otherwise."""
    get_op(op)
    discover()
    with REGISTRY_LOCK:
        inst = REGISTRY.get((op, name))
        if inst is None:
            known = sorted(n for o, n in REGISTRY if o == op)
            raise ParamError(f"impl {name!r} is not a registered {op} implementation; known: {', '.join(known)}")
    return inst


def _import_file(path: Path) -> Any:
    mod_name = "convbench_user_" + re.sub(r"\W", "_", str(path.resolve()))
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ParamError(f"impl spec: cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    # the file's own directory first, so it can import its neighbours (a course's layers.py)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        try:
            sys.path.remove(str(path.resolve().parent))
        except ValueError:
            pass
    return module


def _snake(s: str) -> str:
    s = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z0-9])(?=[A-Z][a-z])", "_", s)  # Conv2DMeanBias -> conv2d_mean_bias
    return re.sub(r"[^a-z0-9_]+", "_", s.lower()).strip("_") or "impl"


def _adapt_and_register(obj: Any, op: str | None, name: str, spec: str) -> Any:
    if isinstance(obj, type):  # a class that registered itself: its instance
        with REGISTRY_LOCK:
            found = [inst for inst in REGISTRY.values() if type(inst) is obj]
        if found:
            return found[0]
        if issubclass(obj, Implementation):  # protocol class without @register
            obj = obj()
    if hasattr(obj, "info") and isinstance(getattr(obj, "info"), ImplInfo):
        return obj
    try:
        inst, info = adapt(obj, op=op)
    except TypeError as exc:  # a usage error of the spec, not a bug of the harness
        raise ParamError(f"impl {spec!r}: {exc}") from None
    name = _snake(name)
    info.setdefault("backward_includes_forward", bool(getattr(inst, "backward_runs_forward", False)))
    register(inst, name=name, spec=spec, isolate=True, replace=True, **info)
    return inst


def _candidates(module: Any, attr: str, shown: int = 8) -> str:
    """``; did you mean ...`` / ``; it has ...``: a short hint of the names ``module`` defines
    (its functions and classes first), never a dump of a big module's namespace."""
    names = [n for n in dir(module) if not n.startswith("_")]
    own = [n for n in names if getattr(getattr(module, n, None), "__module__", None) == module.__name__
           and callable(getattr(module, n, None))]
    close = difflib.get_close_matches(attr, names, n=3)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    pool = own or names
    more = f" and {len(pool) - shown} more" if len(pool) > shown else ""
    return f"; it has {', '.join(pool[:shown])}{more}" if pool else ""


def load_impl(spec: Any, op: str | None = None) -> Any:
    """Load and register an implementation from a spec; return it.

    Parameters
    ----------
    spec : str or object
        ``NAME`` (registered), ``path/to/file.py:OBJECT`` or ``package.module:OBJECT``; or an
        object itself. OBJECT may follow the protocol or be anything an adapter turns into it: a
        function ``f(x, w, b=None, stride=..., padding=..., dilation=..., groups=...)``, a
        seed-style layer class, a CS231n-style ``conv_forward(x, w, b, conv_param) -> (out, cache)``
        with its ``conv_backward(dout, cache)`` beside it, a ``torch.nn.Module``.
    op : str, optional
        The operator (default ``conv2d``, or what the object declares).

    Raises
    ------
    ParamError
        The spec names no file, module, object or registered implementation.
    """
    if not isinstance(spec, str):
        name = getattr(spec, "__name__", type(spec).__name__)
        return _adapt_and_register(spec, op, name, spec=f"<object {name}>")
    if ":" not in spec:
        if spec.endswith(".py"):
            raise ParamError(f"impl spec {spec!r} names a file but no object: use {spec}:OBJECT")
        return get_impl(spec, op or "conv2d")
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ParamError(f"impl spec {spec!r} needs a file or module and an object: FILE.py:OBJ or pkg.module:OBJ")
    # shipped families first: a file that imports one (impls.stride_tricks) must not claim its
    # registrations as its own below
    discover()
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise ParamError(f"impl spec {spec!r}: no file {target!r}")
        before = dict(REGISTRY)
        module = _import_file(path)
        abs_spec = f"{path.resolve()}:{attr}"
    else:
        before = dict(REGISTRY)
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise ParamError(f"impl spec {spec!r}: no module {target!r} ({exc})") from None
        except (ValueError, TypeError) as exc:   # ".x", "a..b": not a module name at all
            raise ParamError(f"impl spec {spec!r}: {target!r} is not a module name ({exc})") from None
        abs_spec = spec
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ParamError(f"impl spec {spec!r}: {target!r} has no {attr!r}{_candidates(module, attr)}")
        obj = getattr(obj, part)
    # what the file registered itself runs isolated too, a name registered afresh (replace=True)
    # as much as a new one
    for key in [k for k, inst in REGISTRY.items() if before.get(k) is not inst]:
        REGISTRY[key].info = dataclasses.replace(REGISTRY[key].info, isolate=True, spec=abs_spec)
    stem = Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]
    # the file's stem keeps two files' `conv2d` functions apart: my_conv.py:conv2d -> my_conv_conv2d
    name = attr if _snake(stem) in _snake(attr) else f"{stem}_{attr}"
    return _adapt_and_register(obj, op, name, spec=abs_spec)


def resolve_impls(specs: list[str] | None, op: str) -> list[Any]:
    """Implementations named by ``specs`` (all registered for ``op`` when empty)."""
    if not specs:
        return registered(op)
    out = []
    for s in specs:
        inst = load_impl(s, op=op)
        if inst.info.op != op:
            raise ParamError(f"impl {s!r} is a {inst.info.op} implementation, not {op}")
        out.append(inst)
    return out
