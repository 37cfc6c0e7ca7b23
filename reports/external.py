"""Results of the other front ends, pytest-benchmark and asv, as convbench bench records.

Contract (what the rest of ``reports`` relies on)
-------------------------------------------------
``read_pytest_benchmark(path) -> list[dict]`` reads one JSON file written by
``pytest --benchmark-json=FILE`` (or ``--benchmark-autosave``); ``read_asv_results(dir) ->
list[dict]`` reads an asv results directory (``.asv/results``: one folder per machine, one JSON per
commit and environment). Both return rows with every key of a bench record (DESIGN.md):

``schema, run_id, time, machine, op, direction, impl, backend, device, case, params, dtype, status,
reason, t_median_s, t_min_s, t_iqr_s, samples, flops, gflops, pct_peak, bytes_min,
peak_mem_bytes, workspace_bytes``

plus ``source`` (``"pytest-benchmark"`` or ``"asv"``), ``descriptor``, ``commit`` (or None),
``err_ratio`` (asv's ``track_err_ratio``, forward rows; else None), ``instructions`` (asv's
``track_instructions``, forward rows of its small cases; else None) and ``machine_info`` (a dict of
what the front end recorded about the machine). ``machine`` is a plain string (the host or asv
machine name), ``params`` a JSON-able dict of the case's parameters, ``samples`` a list of
seconds (empty when the front end kept none), ``status`` ``ok``, ``skipped`` or ``error``.
``gflops = flops / t_median_s / 1e9`` from the FLOPs that travelled with the result:
``extra_info["flops"]`` for pytest-benchmark, the case descriptor inside asv's ``case`` parameter
for asv. Values a front end does not measure (``pct_peak``, ``workspace_bytes``; peak memory
under pytest-benchmark) are None. Rows of benchmarks that are not convbench's are left out.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from convbench.cases import parse_descriptor
from convbench.ops import op_names

__all__ = ["read_pytest_benchmark", "read_asv_results", "SCHEMA"]

SCHEMA = 1
_ASV_KINDS = {  # asv benchmark method -> (direction, what its value is)
    "time_forward": ("forward", "time"),
    "time_backward": ("backward", "time"),
    "peakmem_forward": ("forward", "peak_mem_bytes"),
    "track_err_ratio": ("forward", "err_ratio"),
    "track_instructions": ("forward", "instructions"),
}


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"schema": SCHEMA, "run_id": None, "time": None, "machine": None, "op": None,
                           "direction": None, "impl": None, "backend": None, "device": None, "case": None,
                           "params": None, "dtype": None, "status": "ok", "reason": "", "t_median_s": None,
                           "t_min_s": None, "t_iqr_s": None, "samples": [], "flops": None, "gflops": None,
                           "pct_peak": None, "bytes_min": None, "peak_mem_bytes": None, "workspace_bytes": None,
                           "source": None, "descriptor": None, "commit": None, "err_ratio": None,
                           "instructions": None, "machine_info": {}}
    row.update(kw)
    t, f = row["t_median_s"], row["flops"]
    if row["status"] == "ok" and t and f is not None:
        row["gflops"] = f / t / 1e9
    return row


def read_pytest_benchmark(path: str | Path) -> list[dict[str, Any]]:
    """Bench records from a pytest-benchmark JSON file of ``suites/bench_ops.py``.

    Parameters
    ----------
    path : str or Path
        A file written by ``pytest --benchmark-json=FILE``.

    Returns
    -------
    list of dict
        One row per timed benchmark that carries convbench's ``extra_info`` (see module docstring).

    Raises
    ------
    ValueError
        The file is not pytest-benchmark JSON.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"path={str(path)!r} is not a readable pytest-benchmark JSON file: {exc}") from None
    if not isinstance(doc, dict) or "benchmarks" not in doc or "machine_info" not in doc:
        raise ValueError(f"path={str(path)!r} is not pytest-benchmark JSON (no 'benchmarks' and 'machine_info')")
    if not isinstance(doc["benchmarks"], list) or not isinstance(doc["machine_info"] or {}, dict):
        raise ValueError(f"path={str(path)!r} is not pytest-benchmark JSON ('benchmarks' is a "
                         f"{type(doc['benchmarks']).__name__}, not a list)")
    try:
        return _pytest_rows(doc)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"path={str(path)!r}: a benchmark entry is malformed ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None


def _pytest_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    mi = doc.get("machine_info") or {}
    commit = (doc.get("commit_info") or {}).get("id")
    when = doc.get("datetime")
    rows = []
    for b in doc["benchmarks"]:
        ex, st = b.get("extra_info") or {}, b.get("stats") or {}
        if "flops" not in ex or "impl" not in ex:
            continue
        data = st.get("data") or []
        rows.append(_row(
            run_id=f"pytest-benchmark:{when}", time=when, machine=mi.get("node"), machine_info=mi,
            op=ex.get("op"), direction=ex.get("direction"), impl=ex.get("impl"), backend=ex.get("backend"),
            device=ex.get("device"), case=ex.get("case"), params=ex.get("params"), dtype=ex.get("dtype"),
            descriptor=ex.get("descriptor"), t_median_s=st.get("median"), t_min_s=st.get("min"),
            t_iqr_s=st.get("iqr"), samples=[float(s) for s in data], flops=ex["flops"],
            bytes_min=ex.get("bytes_min"), source="pytest-benchmark", commit=commit))
    return rows


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not math.isnan(v)


def _asv_op(name: str) -> str:
    """The operator of an asv benchmark ``<module>.<Class>.<method>``: suites/asv_bench names each
    module after its operator."""
    module = name.split(".")[-3] if name.count(".") >= 2 else ""
    return module if module in op_names() else "conv2d"


def _case(label: str, op: str = "conv2d") -> tuple[str, str, dict[str, Any] | None, Any]:
    """(id, descriptor, params dict, params) from asv's ``'<id> <descriptor>'`` parameter value."""
    cid, _, desc = label.strip("'\"").partition(" ")
    try:
        c = parse_descriptor(desc, op)
    except ValueError:
        return cid, desc, None, None
    return cid, c.descriptor, c.as_dict()["params"], c


def _backend_device(name: str) -> tuple[str, str]:
    """(backend, device) of an implementation of the asv suite, read from its name: asv results
    carry no implementation metadata, and a report reads results, never the implementations. The
    shipped families are named ``<algorithm>`` on NumPy and ``torch_cpu``/``torch_cuda`` on torch;
    a name with a ``torch`` part runs on torch, one with a ``cuda`` or ``gpu`` part on the GPU."""
    parts = name.lower().split("_")
    return ("torch" if "torch" in parts else "numpy"), ("cuda" if {"cuda", "gpu"} & set(parts) else "cpu")


def read_asv_results(directory: str | Path) -> list[dict[str, Any]]:
    """Bench records from an asv results directory of ``suites/asv_bench``.

    Parameters
    ----------
    directory : str or Path
        asv's ``results_dir`` (``.asv/results``) or one machine's folder inside it.

    Returns
    -------
    list of dict
        One row per (commit, environment, implementation, case, direction): times from
        ``time_forward`` / ``time_backward``, ``peak_mem_bytes`` from ``peakmem_forward``,
        ``err_ratio`` from ``track_err_ratio``, ``instructions`` from ``track_instructions``. A combination asv skipped is ``skipped``, one that
        failed ``error``.

    Raises
    ------
    ValueError
        ``directory`` holds no asv results.
    """
    root = Path(directory)
    files = [f for f in sorted(root.rglob("*.json")) if f.name not in ("machine.json", "benchmarks.json")]
    if not root.is_dir() or not files:
        raise ValueError(f"directory={str(root)!r} holds no asv results (expected <machine>/<commit>-<env>.json)")
    rows: list[dict[str, Any]] = []
    read_any = False
    for f in files:
        try:
            doc = json.loads(f.read_bytes())
        except (OSError, ValueError) as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ValueError(f"directory={str(root)!r}: {str(f)!r} is not readable JSON "
                             f"({str(exc).splitlines()[0][:200]})") from None
        if not isinstance(doc, dict) or "results" not in doc or "result_columns" not in doc:
            continue
        read_any = True
        try:
            rows += _asv_rows(doc, f)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"directory={str(root)!r}: {str(f)!r} is not an asv result file convbench "
                             f"reads ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not read_any:
        raise ValueError(f"directory={str(root)!r} holds no asv results (expected <machine>/<commit>-<env>.json)")
    return rows


def _asv_rows(doc: dict[str, Any], f: Path) -> list[dict[str, Any]]:
    """The rows of one asv result file ``f`` (parsed into ``doc``)."""
    rows: list[dict[str, Any]] = []
    cols = doc["result_columns"]
    mi = doc.get("params") or {}
    mfile = f.parent / "machine.json"
    if mfile.is_file():
        mi = {**json.loads(mfile.read_text()), **mi}
    when = datetime.fromtimestamp(doc.get("date", 0) / 1000, timezone.utc).isoformat()
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for name, values in doc["results"].items():
        method = name.rsplit(".", 1)[-1]
        if method not in _ASV_KINDS:
            continue
        op = _asv_op(name)
        direction, kind = _ASV_KINDS[method]
        res = dict(zip(cols, values))
        impls, labels = res["params"]
        results = res["result"] if isinstance(res["result"], list) else [res["result"]]
        n = len(labels)
        for k, value in enumerate(results):
            impl, label = impls[k // n].strip("'\""), labels[k % n]
            key = (op, impl, label, direction)
            row = merged.get(key)
            if row is None:
                cid, desc, params, case = _case(label, op)
                backend, device = _backend_device(impl)
                row = merged[key] = {
                    "run_id": f"asv:{doc.get('commit_hash', '')[:8]}:{doc.get('env_name')}", "time": when,
                    "machine": mi.get("machine"), "machine_info": mi, "op": op, "direction": direction,
                    "impl": impl, "backend": backend, "device": device, "case": cid, "params": params,
                    "descriptor": desc, "dtype": case.dtype if case else None,
                    "flops": case.params.flops(direction) if case else None,
                    "bytes_min": case.params.bytes_min(direction, 8 if case.dtype == "float64" else 4) if case else None,
                    "source": "asv", "commit": doc.get("commit_hash"), "status": None}
            if kind == "time":
                row["status"] = "ok" if _finite(value) else ("skipped" if value is not None else "error")
                if row["status"] != "ok":
                    row["reason"] = "skipped by asv" if value is not None else "failed under asv"
                    continue
                row["t_median_s"] = float(value)
                q25, q75 = (res.get("stats_q_25") or [None] * len(results))[k], (res.get("stats_q_75") or [None] * len(results))[k]
                if _finite(q25) and _finite(q75):
                    row["t_iqr_s"] = q75 - q25
                samples = (res.get("samples") or [None] * len(results))[k] or []
                row["samples"] = [float(s) for s in samples]
                row["t_min_s"] = min(row["samples"]) if row["samples"] else None
            elif _finite(value):
                row[kind] = int(value) if kind in ("peak_mem_bytes", "instructions") else float(value)
    rows += [_row(**{**r, "status": r["status"] or "skipped"}) for r in merged.values()]
    return rows
