"""The checks: each ``check_<name>(impl, case, directions)`` returns partial check records.

Value checks (``exact``, ``random``) give one record per value direction (``forward``,
``grad_input``, ``grad_weight``, ``grad_bias``); contract checks (``shape``, ``dtype``,
``inputs_unmodified``, ``deterministic``, ``results_kept``, ``nan``, ``layout``) one per contract direction
(``forward``, ``backward``). A partial record has the keys ``direction, check, status,
max_abs_err, err_ratio, tolerance, message``; the runner adds ``impl, op, case, repro``. An
exception raised by the implementation becomes an ``error`` record; nothing here raises because
an implementation misbehaves.
"""
from __future__ import annotations

import functools
import os
import sysconfig
import traceback
from typing import Any, Callable

import numpy as np

from convbench.cases import Case
from convbench.ops import get_op
from convbench.verify.diagnose import shape_cause, suspect_results, value_cause
from convbench.verify.oracle import expected, run_impl, value_directions
from convbench.verify.tolerance import bound, describe, err_ratio

__all__ = ["CHECKS", "run_check", "check_exact", "check_random", "check_shape", "check_dtype",
           "check_inputs_unmodified", "check_deterministic", "check_results_kept", "check_nan", "check_layout"]

SEED = 20240607
MAX_BAD_SHOWN = 3


def _rec(direction: str, check: str, status: str, message: str = "", max_abs_err: float | None = None,
         ratio: float | None = None, tolerance: float | None = None) -> dict[str, Any]:
    return {"direction": direction, "check": check, "status": status, "max_abs_err": max_abs_err,
            "err_ratio": ratio, "tolerance": tolerance, "message": message}


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.add(os.path.realpath(os.path.dirname(os.path.dirname(__file__))))   # convbench itself
    return tuple(d + os.sep for d in dirs)


def _exc(exc: BaseException) -> str:
    """``Type: message (at file:line)``: where it was raised and, when that is inside a library
    (``np.pad`` given a bad width), the last line of the implementation's own code that led there."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
    if tb:
        libs = _library_dirs()
        inside = [os.path.realpath(f.filename).startswith(libs) for f in tb]
        if inside[-1] and not all(inside):
            own = tb[max(i for i, lib in enumerate(inside) if not lib)]
            where += f", from {own.filename}:{own.lineno}"
        where += ")"
    notes = "".join(f"; {n}" for n in getattr(exc, "__notes__", None) or [] if isinstance(n, str))
    return f"{type(exc).__name__}: {exc}{where}{notes}"


def _call(impl: Any, case: Case, inputs: dict[str, np.ndarray], direction: str,
          raw: dict[str, Any] | None = None) -> dict[str, Any]:
    return run_impl(impl, case.params, inputs, direction, raw)


def _fresh(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Copies of ``inputs`` for one call: an implementation that writes into its inputs changes
    neither the reference computed from them nor the next call (``inputs_unmodified`` reports it)."""
    return {k: None if v is None else v.copy() for k, v in inputs.items()}


def _errors(check: str, case: Case, direction: str, exc: BaseException, per_value: bool) -> list[dict[str, Any]]:
    dirs = value_directions(case.params, direction) if per_value else [direction]
    return [_rec(d, check, "error", f"{direction} raised {_exc(exc)}") for d in dirs]


def _fmt_idx(idx: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _as_array(got: Any) -> np.ndarray:
    a = got if isinstance(got, np.ndarray) else np.asarray(got)
    return a


def compare(got: Any, exp: np.ndarray, bnd: np.ndarray | None, what: str) -> tuple[str, float | None, float | None, float | None, str]:
    """(status, max_abs_err, err_ratio, tolerance, message) of ``got`` against ``exp``.

    ``bnd`` None is the exact tier: ``got`` must equal ``exp`` rounded to its dtype, bit for bit.
    """
    if got is None:
        return "failed", None, None, None, f"{what} is None, expected an array of shape {exp.shape}"
    try:
        g = _as_array(got)
    except Exception as exc:  # an object numpy cannot read
        return "failed", None, None, None, f"{what} is not an array ({type(got).__name__}: {exc})"
    if g.shape != exp.shape:
        return "failed", None, None, None, f"{what} has shape {g.shape}, expected {exp.shape}"
    g64 = g.astype(np.float64)
    err = np.abs(g64 - exp)
    max_err = float(np.nanmax(err)) if err.size and not np.isnan(err).all() else (float("nan") if err.size else 0.0)
    if np.isnan(err).any():
        max_err = float("inf")
    if bnd is None:
        target = exp.astype(g.dtype if g.dtype.kind == "f" else np.float64).astype(np.float64)
        bad = ~(g64 == target)
        ratio, tol = None, 0.0
        if not bad.any():
            return "passed", max_err, None, 0.0, ""
        head = f"{what} differs from the exact reference in {int(bad.sum())} of {bad.size} elements (must match bit for bit)"
        detail = [f"{_fmt_idx(i)}: expected {exp[i]:.9g}, got {g64[i]:.9g}" for i in zip(*np.nonzero(bad))][:MAX_BAD_SHOWN]
        return "failed", max_err, ratio, tol, head + "; first bad: " + "; ".join(detail)
    bnd = np.broadcast_to(bnd, exp.shape)
    r = err_ratio(err, bnd)
    worst = np.unravel_index(int(np.argmax(r)), r.shape) if r.size else ()
    ratio = float(r[worst]) if r.size else 0.0
    tol = float(bnd[worst]) if r.size else 0.0
    if ratio <= 1.0:
        return "passed", max_err, ratio, tol, ""
    bad = r > 1.0
    head = (f"{what}: {int(bad.sum())} of {bad.size} elements exceed the bound, max |err| {max_err:.3g}, "
            f"err_ratio {ratio:.3g} (bound {tol:.3g} at {_fmt_idx(worst)})")
    detail = [f"{_fmt_idx(i)}: expected {exp[i]:.9g}, got {g64[i]:.9g}, |err| {err[i]:.3g} > bound {bnd[i]:.3g}"
              for i in zip(*np.nonzero(bad))][:MAX_BAD_SHOWN]
    return "failed", max_err, ratio, tol, head + "; first bad: " + "; ".join(detail)


CAUSE = "; likely cause: "


def with_cause(msg: str, cause: str | None) -> str:
    """``msg`` with ``; likely cause: ...`` after its head (before the first bad indices)."""
    if not cause:
        return msg
    head, sep, rest = msg.partition("; first bad: ")
    return f"{head}{CAUSE}{cause}{sep}{rest}"


def _add_causes(records: list[dict[str, Any]], case: Case, inputs: dict[str, np.ndarray], direction: str,
                got: dict[str, Any], ref: dict[str, np.ndarray], bounds: dict[str, np.ndarray]) -> None:
    """Append to each failed value record of one call why it is wrong, where it matches a classic
    mistake (see diagnose); the mistakes are recomputed once for all the call's directions."""
    p, suspects = case.params, None
    for r in records:
        d = r["direction"]
        if r["status"] != "failed" or got.get(d) is None:
            continue
        shape = getattr(got[d], "shape", None)
        if shape is not None and tuple(shape) != ref[d].shape:
            cause = shape_cause(p, d, shape)
        else:
            if suspects is None:
                suspects = suspect_results(p, inputs, direction)
            cause = value_cause(p, inputs, direction, d, got[d], ref[d], bounds[d], suspects=suspects)
        r["message"] = with_cause(r["message"], cause)


# --- value tiers -----------------------------------------------------------------------------

def check_exact(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """Exact tier: small-integer inputs make every sum exact, so a direct method matches bit for bit."""
    p, out = case.params, []
    info = impl.info
    m = get_op(p.op).exact_magnitude(p, case.dtype)
    for direction in directions:
        vdirs = value_directions(p, direction)
        if not info.exact:
            out += [_rec(d, "exact", "unsupported", f"{info.name} is not a direct method "
                         f"(algorithm {info.algorithm}); held to the random tier only") for d in vdirs]
            continue
        if m == 0:
            out += [_rec(d, "exact", "unsupported", f"no exact fill for {p.descriptor} in {case.dtype}: "
                         "the accumulation is longer than the mantissa") for d in vdirs]
            continue
        inputs = get_op(p.op).make_inputs(p, case.dtype, fill="exact", seed=SEED)
        try:
            got = _call(impl, case, _fresh(inputs), direction)
        except Exception as exc:
            out += _errors("exact", case, direction, exc, True)
            continue
        ref = expected(p, inputs, direction)
        recs = []
        for d in vdirs:
            st, e, r, t, msg = compare(got.get(d), ref[d], None, d)
            recs.append(_rec(d, "exact", st, msg, e, r, t))
        if any(r["status"] == "failed" for r in recs):
            # the exact tier has no bound: suspects are matched within the algorithm family's
            bounds = {d: bound(info.algorithm, p.op, p, d, case.dtype, inputs) for d in vdirs}
            _add_causes(recs, case, inputs, direction, got, ref, bounds)
        out += recs
    return out


def check_random(impl: Any, case: Case, directions: list[str], *, seed: int = SEED) -> list[dict[str, Any]]:
    """Random tier: normal inputs; each element's error against the bound of the algorithm family."""
    p, out = case.params, []
    inputs = get_op(p.op).make_inputs(p, case.dtype, fill="random", seed=seed)
    for direction in directions:
        try:
            got = _call(impl, case, _fresh(inputs), direction)
        except Exception as exc:
            out += _errors("random", case, direction, exc, True)
            continue
        out += _value_records("random", impl, case, inputs, direction, got)
    return out


def _value_records(check: str, impl: Any, case: Case, inputs: dict[str, np.ndarray], direction: str,
                   got: dict[str, Any]) -> list[dict[str, Any]]:
    p, out, bounds = case.params, [], {}
    ref = expected(p, inputs, direction)
    for d in value_directions(p, direction):
        bnd = bounds[d] = bound(impl.info.algorithm, p.op, p, d, case.dtype, inputs)
        st, e, r, t, msg = compare(got.get(d), ref[d], bnd, d)
        if st == "failed" and r is not None:
            head, sep, rest = msg.partition("; first bad: ")
            msg = f"{head} [{describe(impl.info.algorithm)}, L={p.accumulation_length(d)}]{sep}{rest}"
        out.append(_rec(d, check, st, msg, e, r, t))
    _add_causes(out, case, inputs, direction, got, ref, bounds)
    return out


# --- contract checks ------------------------------------------------------------------------

def _each_direction(check: str, impl: Any, case: Case, directions: list[str],
                    body: Callable[[str, dict[str, np.ndarray]], tuple[str, str]]) -> list[dict[str, Any]]:
    out = []
    inputs = get_op(case.params.op).make_inputs(case.params, case.dtype, fill="random", seed=SEED)
    for direction in directions:
        try:
            status, msg = body(direction, inputs)
        except Exception as exc:
            out += _errors(check, case, direction, exc, False)
            continue
        out.append(_rec(direction, check, status, msg))
    return out


def check_shape(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """Every result has the shape of the reference's; a gradient that does not exist is None."""
    p = case.params
    shp = p.shapes()

    def body(direction: str, inputs: dict[str, np.ndarray]) -> tuple[str, str]:
        got = _call(impl, case, inputs, direction)
        probs = []
        for d, g in got.items():
            want = shp.get("y" if d == "forward" else d)
            if want is None:
                if g is not None:
                    probs.append(f"{d} should be None (the case has no bias), got {type(g).__name__}")
            elif g is None:
                probs.append(f"{d} is None, expected shape {want}")
            elif np.shape(g) != want:
                cause = shape_cause(p, d, np.shape(g))
                probs.append(f"{d} has shape {np.shape(g)}, expected {want}"
                             + (f" (likely cause: {cause})" if cause else ""))
        return ("failed", "; ".join(probs)) if probs else ("passed", "")

    return _each_direction("shape", impl, case, directions, body)


def check_dtype(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """Every result is a NumPy array (after ``to_numpy``) of the input dtype."""

    numpy_backend = getattr(impl.info, "backend", "numpy") == "numpy"

    def body(direction: str, inputs: dict[str, np.ndarray]) -> tuple[str, str]:
        raw: dict[str, Any] = {}
        got = _call(impl, case, inputs, direction, raw)
        probs = []
        for d, g in got.items():
            if g is None:
                continue
            kind = _not_an_array(raw.get(d)) if numpy_backend else None
            if kind:
                probs.append(f"{d}: returned {kind}, not an ndarray")
            elif not isinstance(g, np.ndarray):
                probs.append(f"{d} is a {type(g).__name__}, not a numpy.ndarray")
            elif g.dtype != np.dtype(case.dtype):
                probs.append(f"{d} has dtype {g.dtype} for {case.dtype} inputs")
        return ("failed", "; ".join(probs)) if probs else ("passed", "")

    return _each_direction("dtype", impl, case, directions, body)


def _not_an_array(r: Any) -> str | None:
    """What a NumPy implementation returned instead of an array (a list, a torch tensor), or None.
    Objects holding the array in ``.data`` (seed-style layers) are the adapters' to unwrap."""
    if isinstance(r, (list, tuple)):
        return f"a {type(r).__name__}"
    mod = type(r).__module__ or ""
    if mod.split(".")[0] in ("torch", "cupy", "jax", "jaxlib", "tensorflow"):
        return f"a {mod.split('.')[0]}.{type(r).__name__}"
    return None


def check_inputs_unmodified(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """Every input (``dy`` too) holds the same bits after the call as before."""
    spec = get_op(case.params.op)

    def body(direction: str, inputs: dict[str, np.ndarray]) -> tuple[str, str]:
        names = spec.forward_inputs if direction == "forward" else spec.backward_inputs
        before = {k: inputs[k].copy() for k in names if inputs.get(k) is not None}
        _call(impl, case, inputs, direction)
        changed = []
        for k, v in before.items():
            now = inputs[k]
            if now.shape != v.shape or not np.array_equal(now, v, equal_nan=True):
                diff = np.argwhere(~((now == v) | (np.isnan(now) & np.isnan(v)))) if now.shape == v.shape else []
                where = f" first at {_fmt_idx(tuple(diff[0]))}: was {v[tuple(diff[0])]:.9g}, now {now[tuple(diff[0])]:.9g}" if len(diff) else ""
                changed.append(f"input {k} was modified in place ({len(diff)} elements){where}")
        return ("failed", "; ".join(changed)) if changed else ("passed", "")

    return _each_direction("inputs_unmodified", impl, case, directions, body)


def _bitwise_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def check_deterministic(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """Two runs on the same inputs give bitwise-equal results (unless declared nondeterministic)."""
    if not impl.info.deterministic:
        return [_rec(d, "deterministic", "unsupported", f"{impl.info.name} declares itself nondeterministic")
                for d in directions]

    def body(direction: str, inputs: dict[str, np.ndarray]) -> tuple[str, str]:
        first = _call(impl, case, {k: v.copy() for k, v in inputs.items()}, direction)
        second = _call(impl, case, {k: v.copy() for k, v in inputs.items()}, direction)
        probs = []
        for d in first:
            if not _bitwise_equal(first[d], second.get(d)):
                a, b = np.asarray(first[d], np.float64), np.asarray(second[d], np.float64)
                n = int((a != b).sum()) if a.shape == b.shape else -1
                diff = f"max difference {float(np.nanmax(np.abs(a - b))):.3g} in {n} elements" if n > 0 else "shapes differ"
                probs.append(f"{d} differs between two runs on the same inputs ({diff})")
        return ("failed", "; ".join(probs)) if probs else ("passed", "")

    return _each_direction("deterministic", impl, case, directions, body)


def _nan_mask(case: Case, inputs: dict[str, np.ndarray], name: str, pos: tuple[int, ...], direction: str) -> dict[str, np.ndarray]:
    """Where a NaN at ``inputs[name][pos]`` must reach: the reference on a 0/1 indicator and the others."""
    # the inputs' own values, zeros made 1: a product with this element cannot vanish, and max
    # pooling routes by the real x (|x| + 1 can have its maxima elsewhere)
    probe = {k: np.where(v == 0, 1.0, v.astype(np.float64)) for k, v in inputs.items()}
    ind = np.zeros_like(probe[name])
    ind[pos] = 1.0  # the difference of two references isolates what depends on this element
    with_one = expected(case.params, {**probe, name: ind}, direction)
    without = expected(case.params, {**probe, name: np.zeros_like(ind)}, direction)
    return {d: with_one[d] != without[d] for d in with_one}


def check_nan(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """A NaN planted in the middle of one of the direction's :attr:`~convbench.ops.Op.nan_inputs`
    (``x`` forward; ``dy``, and for convolutions ``x``, backward) reaches every result element
    that depends on it. One call per planted input, each on its own copy of the inputs: a NaN that
    another one had carried to the same elements would hide one that was lost (``grad_weight``
    gets both ``dy``'s and ``x``'s)."""
    spec = get_op(case.params.op)

    def body(direction: str, clean: dict[str, np.ndarray]) -> tuple[str, str]:
        probs = []
        for name in spec.nan_inputs[direction]:
            inputs = {k: v.copy() for k, v in clean.items()}
            pos = tuple(s // 2 for s in inputs[name].shape)
            must = _nan_mask(case, clean, name, pos, direction)
            inputs[name][pos] = np.nan
            got = _call(impl, case, inputs, direction)
            for d, mask in must.items():
                g = got.get(d)
                if g is None or np.shape(g) != mask.shape:
                    continue  # the shape check reports it
                missing = mask & ~np.isnan(np.asarray(g, np.float64))
                if missing.any():
                    first = tuple(np.argwhere(missing)[0])
                    probs.append(f"NaN at {name}{_fmt_idx(pos)} did not reach {d}: {int(missing.sum())} of "
                                 f"{int(mask.sum())} dependent elements are not NaN, first {_fmt_idx(first)} = "
                                 f"{float(np.asarray(g)[first]):.9g}")
        return ("failed", "; ".join(probs)) if probs else ("passed", "")

    return _each_direction("nan", impl, case, directions, body)


def _layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return {"non-contiguous": big[..., ::2], "Fortran-ordered": np.asfortranarray(a)}


def check_layout(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """Non-contiguous (strided) and Fortran-ordered inputs give the right answer too."""
    out = []
    p = case.params
    inputs = get_op(p.op).make_inputs(p, case.dtype, fill="random", seed=SEED + 1)
    for direction in directions:
        probs, worst, err, tol = [], 0.0, 0.0, None
        try:
            for layout in ("non-contiguous", "Fortran-ordered"):
                alt = {k: _layouts(v)[layout] for k, v in inputs.items()}
                got = _call(impl, case, alt, direction)
                for r in _value_records("layout", impl, case, inputs, direction, got):
                    if r["err_ratio"] is not None and r["err_ratio"] >= worst:
                        worst, err, tol = r["err_ratio"], r["max_abs_err"], r["tolerance"]
                    if r["status"] != "passed" and not probs:  # the first problem, in full
                        probs.append(f"{layout} inputs: {r['message']}")
        except Exception as exc:
            out += _errors("layout", case, direction, exc, False)
            continue
        out.append(_rec(direction, "layout", "failed" if probs else "passed", "; ".join(probs), err, worst, tol))
    return out


def check_results_kept(impl: Any, case: Case, directions: list[str]) -> list[dict[str, Any]]:
    """A result keeps its bits when the implementation is called again on other inputs: it is the
    caller's array, not a buffer the implementation reuses (a per-shape output or scratch array
    handed out would be overwritten by the next layer's call)."""
    spec = get_op(case.params.op)

    def body(direction: str, inputs: dict[str, np.ndarray]) -> tuple[str, str]:
        first = _call(impl, case, {k: v.copy() for k, v in inputs.items()}, direction)
        kept = {d: None if v is None else np.array(v, copy=True) for d, v in first.items()}
        other = spec.make_inputs(case.params, case.dtype, fill="random", seed=SEED + 1)
        _call(impl, case, other, direction)
        probs = [f"{d} of one call was overwritten by the next call (on other inputs): the "
                 f"implementation returned an array it reuses, not a fresh one"
                 for d, v in first.items() if v is not None and not _bitwise_equal(v, kept[d])]
        return ("failed", "; ".join(probs)) if probs else ("passed", "")

    return _each_direction("results_kept", impl, case, directions, body)


#: check name -> function(impl, case, directions) -> partial records, in the order they run
CHECKS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "shape": check_shape,
    "dtype": check_dtype,
    "exact": check_exact,
    "random": check_random,
    "inputs_unmodified": check_inputs_unmodified,
    "deterministic": check_deterministic,
    "results_kept": check_results_kept,
    "nan": check_nan,
    "layout": check_layout,
}


def run_check(impl: Any, case: Case, name: str, directions: list[str]) -> list[dict[str, Any]]:
    """Run check ``name`` (a key of :data:`CHECKS`); a fault in the harness itself is an ``error`` too."""
    try:
        return CHECKS[name](impl, case, directions)
    except Exception as exc:
        return [_rec(d, name, "error", f"the check itself failed: {_exc(exc)}") for d in directions]
