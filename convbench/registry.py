"""Implementation metadata, ``@register``, discovery and loading by spec.

An implementation is an object with an :class:`ImplInfo` in ``.info`` and the protocol of
:class:`Implementation`. Modules in ``impls/`` register on import; third-party packages through the
entry-point group ``convbench.impls``; a user's object by spec (``file.py:OBJ``, ``pkg.mod:OBJ``).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import re
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convbench._errors import ParamError
from convbench.ops import OpParams, get_op

__all__ = ["ImplInfo", "Implementation", "register", "discover", "implementations", "registered", "availability", "get_impl",
           "load_impl", "resolve_impls", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "convbench.impls"
ALL_DTYPES = frozenset({"float32", "float64"})
ALL_DIRECTIONS = frozenset({"forward", "backward"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ImplInfo:
    """What an implementation declares about itself.

    Parameters
    ----------
    op, name, backend, device
        Operator (``conv2d``), snake-case name (``im2col``, ``torch_cpu``), array library and device.
    directions, dtypes
        What it computes: ``forward``/``backward``; ``float32``/``float64``.
    features
        The case features it handles (see ``OpParams.features``: ``stride``, ``padding``,
        ``asymmetric_padding``, ``dilation``, ``groups``, ``no_bias``, ``rectangular``, ...), or
        ``None`` for all of them. A case needing a feature outside the set is *unsupported*.
    deterministic
        Two runs on the same inputs give bitwise-equal results.
    exact
        A direct method (every output a plain sum of products): held to the bit-exact tier.
    algorithm
        Error model for the random tier's bound: ``direct``, ``fft`` or ``winograd``.
    isolate
        Checked in a subprocess by default (implementations from files and entry points).
    backward_includes_forward
        Its backward direction runs the forward first (an adapted layer or function that needs the
        forward's cache or autograd graph), so a backward time includes a forward's; bench
        records and reports say so.
    spec
        How to load it again, in another process.
    available, reason
        Filled in by :func:`implementations`: whether it can run here, and why not.
    """

    op: str
    name: str
    backend: str = "numpy"
    device: str = "cpu"
    directions: frozenset[str] = ALL_DIRECTIONS
    dtypes: frozenset[str] = ALL_DTYPES
    features: frozenset[str] | None = None
    deterministic: bool = True
    exact: bool = True
    algorithm: str = "direct"
    isolate: bool = False
    backward_includes_forward: bool = False
    spec: str = ""
    description: str = ""
    available: bool = True
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("directions", "dtypes", "features"):
            d[k] = sorted(d[k]) if d[k] is not None else None
        return d


class Implementation:
    """The protocol, with CPU/NumPy defaults. Subclass it, or give any object these members.

    ``forward(p, *inputs)`` receives the op's forward inputs in order (conv2d: ``x, w, b`` with
    ``b`` None when ``p.bias`` is false) and returns the output; ``backward(p, *inputs)`` receives
    ``dy`` then the remaining backward inputs (conv2d: ``dy, x, w``) and returns the gradients in
    the op's order (conv2d: ``grad_input, grad_weight, grad_bias``, the last None without bias).
    Both are stateless: everything comes in as arguments, already in native form (``prepare``),
    and parameters are always valid. Output dtype must equal input dtype.
    """

    info: ImplInfo

    def availability(self) -> str | None:
        """None when the implementation can run here, else the reason it cannot."""
        return None

    def unsupported(self, p: OpParams, dtype: str, direction: str) -> str | None:
        """None when this case is supported, else why not. Override to add constraints."""
        info = self.info
        if direction not in info.directions:
            return f"{info.name} has no {direction}"
        if dtype not in info.dtypes:
            return f"{info.name} does not take {dtype}"
        if info.features is not None:
            missing = sorted(p.features() - info.features)
            if missing:
                return f"{info.name} does not support {', '.join(missing)}"
        return None

    def prepare(self, *arrays: np.ndarray | None) -> tuple[Any, ...]:
        """NumPy arrays to native arrays (untimed)."""
        return arrays

    def forward(self, p: OpParams, *inputs: Any) -> Any:
        raise NotImplementedError

    def backward(self, p: OpParams, *inputs: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until all queued device work is done (no-op on the CPU)."""

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def __repr__(self) -> str:
        i = getattr(self, "info", None)
        return f"<{type(self).__name__} {i.op}/{i.name}>" if i else f"<{type(self).__name__}>"


_REGISTRY: dict[tuple[str, str], Any] = {}
_LOCK = threading.RLock()
_DISCOVERED = False


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ParamError(f"implementation name must be snake case (e.g. 'im2col', 'torch_cpu'), got {name!r}")


def register(obj: Any = None, *, op: str, name: str, backend: str = "numpy", device: str = "cpu",
             replace: bool = False, **info: Any) -> Any:
    """Register an implementation; usable as a class decorator.

    ``@register(op="conv2d", name="im2col", backend="numpy")`` on a class instantiates it (no
    arguments) and stores the instance with its :class:`ImplInfo`. On an instance, it registers the
    instance. Returns what it decorated.

    Examples
    --------
    >>> @register(op="conv2d", name="my_conv", backend="numpy")
    ... class MyConv(Implementation):
    ...     def forward(self, p, x, w, b): ...
    """

    def deco(target: Any) -> Any:
        get_op(op)
        _check_name(name)
        inst = target() if isinstance(target, type) else target
        spec = info.pop("spec", "") or name
        inst.info = ImplInfo(op=op, name=name, backend=backend, device=device, spec=spec,
                             **{k: (frozenset(v) if k in ("directions", "dtypes", "features") and v is not None else v)
                                for k, v in info.items()})
        with _LOCK:
            old = _REGISTRY.get((op, name))
            if old is not None and not replace and old.info.spec != inst.info.spec:
                raise ParamError(f"implementation {op}/{name} is already registered (from {old.info.spec!r})")
            _REGISTRY[(op, name)] = inst
        return target

    return deco if obj is None else deco(obj)


class _Broken(Implementation):
    """Stands in for a module that failed to import, so `list` can say why."""

    def __init__(self, error: str) -> None:
        self._error = error

    def availability(self) -> str | None:
        return self._error


def _record_broken(op: str, name: str, spec: str, exc: BaseException) -> None:
    register(_Broken(f"import failed: {type(exc).__name__}: {exc}"), op=op, name=name, spec=spec,
             backend="?", replace=True)


def discover() -> None:
    """Import every module of ``impls/`` and every ``convbench.impls`` entry point (once)."""
    global _DISCOVERED
    with _LOCK:
        if _DISCOVERED:
            return
        _DISCOVERED = True
        try:
            import impls
        except ImportError:  # installed without the impls package
            impls = None
        if impls is not None:
            for mod in pkgutil.iter_modules(impls.__path__):
                if mod.name.startswith("_"):
                    continue
                try:
                    importlib.import_module(f"impls.{mod.name}")
                except Exception as exc:  # one broken family must not hide the others
                    _record_broken("conv2d", re.sub(r"[^a-z0-9_]", "_", mod.name.lower()), f"impls.{mod.name}", exc)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                _load_entry_point(ep)
            except Exception as exc:
                _record_broken("conv2d", re.sub(r"[^a-z0-9_]", "_", ep.name.lower()), f"{ep.value}", exc)


def _load_entry_point(ep: metadata.EntryPoint) -> None:
    before = set(_REGISTRY)
    obj = ep.load()
    if isinstance(obj, type(sys)):  # a module that registers on import
        for key in set(_REGISTRY) - before:
            _REGISTRY[key].info = dataclasses.replace(_REGISTRY[key].info, isolate=True)
        return
    if set(_REGISTRY) == before:
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
    with _LOCK:
        items = sorted(_REGISTRY.items())
    return [_with_availability(inst) for (o, _), inst in items if op is None or o == op]


def registered(op: str | None = None) -> list[Any]:
    """The registered implementation objects (of ``op``), sorted by name."""
    discover()
    with _LOCK:
        return [inst for (o, _), inst in sorted(_REGISTRY.items()) if op is None or o == op]


def availability(impl: Any) -> str | None:
    """None when ``impl`` can run here, else the reason (cached)."""
    info = _with_availability(impl)
    return None if info.available else info.reason


def get_impl(name: str, op: str = "conv2d") -> Any:
    """The registered implementation ``name`` of ``op``; ``ParamError`` listing known names otherwise."""
    get_op(op)
    discover()
    with _LOCK:
        inst = _REGISTRY.get((op, name))
        if inst is None:
            known = sorted(n for o, n in _REGISTRY if o == op)
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
    from convbench.adapters import adapt

    if isinstance(obj, type):  # a class that registered itself: its instance
        with _LOCK:
            found = [inst for inst in _REGISTRY.values() if type(inst) is obj]
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
    # shipped families first: a file that imports one (impls.stride_tricks) must not claim its
    # registrations as its own below
    discover()
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise ParamError(f"impl spec {spec!r}: no file {target!r}")
        before = set(_REGISTRY)
        module = _import_file(path)
        abs_spec = f"{path.resolve()}:{attr}"
    else:
        before = set(_REGISTRY)
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise ParamError(f"impl spec {spec!r}: no module {target!r} ({exc})") from None
        abs_spec = spec
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise ParamError(f"impl spec {spec!r}: {target!r} has no {attr!r}; it has {', '.join(names)}")
        obj = getattr(obj, part)
    for key in set(_REGISTRY) - before:  # what the file registered itself runs isolated too
        _REGISTRY[key].info = dataclasses.replace(_REGISTRY[key].info, isolate=True, spec=abs_spec)
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
