"""Records in, one tidy frame out: convbench JSON lines, check arrays, pytest-benchmark, asv."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from convbench import store
from reports import external

__all__ = ["load", "frame_from_records", "read_records", "machines", "sweep_of", "natural_key",
           "BENCH_COLUMNS"]

#: the bench record fields of DESIGN.md, then the extras a record may carry
BENCH_COLUMNS = ("schema", "run_id", "time", "op", "direction", "impl", "backend", "device", "case",
                 "descriptor", "params", "dtype", "status", "reason", "t_median_s", "t_min_s",
                 "t_iqr_s", "samples", "flops", "gflops", "pct_peak", "bytes_min", "peak_mem_bytes",
                 "workspace_bytes", "intensity", "count", "threads", "choice", "chosen_by", "rounds", "paired",
                 "role", "steal_pct", "others_pct", "instructions")
_NUMERIC = ("t_median_s", "t_min_s", "t_iqr_s", "flops", "gflops", "pct_peak", "bytes_min",
            "peak_mem_bytes", "workspace_bytes", "intensity", "count", "threads", "steal_pct", "others_pct", "instructions")
_PARAM_PREFIX = "param_"


def load(inputs: Iterable[Path | str]) -> pd.DataFrame:
    """One tidy frame of bench results from any mix of inputs.

    Parameters
    ----------
    inputs
        convbench bench records (JSON lines; a torn line, which an interrupted run leaves, is
        skipped wherever it sits, with a warning that counts them), check records (the JSON array of ``convbench check --json``),
        pytest-benchmark JSON files and asv results directories, from one machine or several.

    Returns
    -------
    pandas.DataFrame
        One row per bench record, with the machine flattened into ``machine`` (a readable label),
        ``machine_id``, ``cpu``, ``blas``, ``peak_gflops`` (for the row's dtype) and ``peak_gbps``;
        numeric parameters as ``param_<name>`` columns; ``gflops``, ``intensity`` and
        ``pct_peak`` derived where a record lacks them. Check records ride along in
        ``frame.attrs["checks"]``.
    """
    bench: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for path in inputs:
        b, c = read_records(Path(path))
        bench += b
        checks += c
    frame = frame_from_records(bench)
    frame.attrs["checks"] = checks
    return frame


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(bench records, check records) held by one input path."""
    if not path.exists():
        raise FileNotFoundError(f"report input {str(path)!r} does not exist")
    if path.is_dir():
        return list(external.read_asv_results(path)), []
    raw = path.read_bytes()
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if path.suffix == ".json":
            raise ValueError(f"report input {str(path)!r} is not valid JSON: {_first_line(exc)}") from None
        # JSON lines: the engine's one reader (torn lines skipped with a counted warning, newer
        # schemas and files that are not JSON lines refused)
        return _split(store.read(path), path)
    if isinstance(obj, dict) and "benchmarks" in obj and "machine_info" in obj:
        return list(external.read_pytest_benchmark(path)), []
    items = obj if isinstance(obj, list) else [obj]
    for k, item in enumerate(items):
        if isinstance(item, dict):
            store.check_schema(item, path, k + 1)
    return _split(items, path)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


#: a record has at least one of these (every record the engine writes has them all)
_RECORD_KEYS = frozenset({"impl", "op", "case", "direction", "status", "check"})


def _split(items: list[Any], path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bench, checks = [], []
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"report input {str(path)!r}: item {k} is a {type(item).__name__}, not a record")
        if not _RECORD_KEYS & set(item):  # a sparse record is read; an object of some other kind is not
            keys = ", ".join(map(str, list(item)[:6])) or "none"
            raise ValueError(f"report input {str(path)!r}: item {k} has none of {', '.join(sorted(_RECORD_KEYS))}, "
                             f"so it is not a convbench record (its keys: {keys})")
        (checks if "check" in item and "t_median_s" not in item else bench).append(item)
    return bench, checks


# --- the frame -----------------------------------------------------------------------------------

def frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy frame of :func:`load` from bench-shaped dicts (missing fields become NaN/None)."""
    rows = [_row(r) for r in records]
    cols = ["machine", "machine_id", "hostname", "cpu", "blas", "peak_gflops", "peak_gbps", *BENCH_COLUMNS]
    frame = pd.DataFrame(rows, columns=None if rows else cols)
    for c in cols:
        if c not in frame.columns:
            frame[c] = None
    for c in _NUMERIC + ("peak_gflops", "peak_gbps"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    for c in ("op", "direction", "impl", "case", "dtype", "status"):
        frame[c] = frame[c].fillna("?").astype(str)
    frame["status"] = frame["status"].where(frame["status"] != "?", "ok")
    _label_machines(frame)
    _derive(frame)
    params = [c for c in frame.columns if c.startswith(_PARAM_PREFIX)]
    return frame[cols + sorted(params) + [c for c in frame.columns if c not in cols and c not in params]]


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in rec.items() if k != "machine"}
    th = rec.get("threads")
    if isinstance(th, dict):  # {requested, blas, torch}: the count that ran
        row["threads"] = th.get("requested") or th.get("blas") or th.get("torch")
    m = rec.get("machine")
    if isinstance(m, dict):
        row["machine_id"] = str(m.get("id") or _digest(m))
        row["hostname"] = m.get("hostname")
        row["cpu"] = m.get("cpu")
        row["blas"] = m.get("blas") if not isinstance(m.get("blas"), dict) else _blas_text(m["blas"])
        # a record's peaks are those of the device it ran on: a GPU's time against the CPU's GEMM
        # would read as hundreds of % of peak; a GPU record without measured GPU peaks gets none
        gpu = rec.get("device") == "cuda"
        peaks = m.get("gpu_peak_gflops" if gpu else "peak_gflops")
        dtype = str(rec.get("dtype") or "float32")
        row["peak_gflops"] = peaks.get(dtype) if isinstance(peaks, dict) else peaks
        row["peak_gbps"] = m.get("gpu_peak_gbps" if gpu else "peak_gbps")
        row["_machine"] = m
    elif m is not None:
        row["machine_id"] = row["hostname"] = str(m)
    else:
        row["machine_id"] = row["hostname"] = "unknown"
    params = rec.get("params")
    for k, v in (params.items() if isinstance(params, dict) else ()):
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            if v[0] == v[1]:
                v = v[0]
            else:
                row[f"{_PARAM_PREFIX}{k}_h"], row[f"{_PARAM_PREFIX}{k}_w"] = v
                continue
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)):
            row[f"{_PARAM_PREFIX}{k}"] = v
    return row


def _blas_text(b: dict[str, Any]) -> str:
    return " ".join(str(b[k]) for k in ("name", "version", "kernel", "threads") if b.get(k) is not None) or json.dumps(b)


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _label_machines(frame: pd.DataFrame) -> None:
    """``machine``: the hostname, made unique with the id where two machines share one."""
    ids = frame[["machine_id", "hostname"]].drop_duplicates()
    ids["hostname"] = ids["hostname"].fillna(ids["machine_id"]).astype(str)
    dup = ids["hostname"].duplicated(keep=False)
    label = ids["hostname"].where(~dup, ids["hostname"] + "#" + ids["machine_id"].str[:6])
    frame["machine"] = frame["machine_id"].map(dict(zip(ids["machine_id"], label))).fillna("unknown")


def _derive(frame: pd.DataFrame) -> None:
    t = frame["t_median_s"].where(frame["t_median_s"] > 0)
    frame["gflops"] = frame["gflops"].fillna(frame["flops"] / t / 1e9)
    frame["intensity"] = frame["intensity"].fillna(frame["flops"] / frame["bytes_min"].where(frame["bytes_min"] > 0))
    frame["pct_peak"] = frame["pct_peak"].fillna(100 * frame["gflops"] / frame["peak_gflops"].where(frame["peak_gflops"] > 0))
    for c in ("samples", "rounds"):
        frame[c] = frame[c].map(lambda s: [float(x) for x in s] if isinstance(s, (list, tuple)) else None)
    bad = frame["status"].eq("ok") & t.isna()
    frame.loc[bad, "status"] = "error"
    frame.loc[bad, "reason"] = frame.loc[bad, "reason"].fillna("record marked ok has no positive t_median_s")


def machines(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One fingerprint dict per machine label, as complete as the records allow."""
    out = []
    for label, g in frame.groupby("machine", sort=True):
        fp = next((m for m in g.get("_machine", pd.Series(dtype=object)) if isinstance(m, dict)), None)
        cpu = g[g["device"].fillna("cpu").astype(str) != "cuda"] if "device" in g else g
        gpu_peaks = (fp or {}).get("gpu_peak_gflops")
        out.append({"machine": label, "machine_id": g["machine_id"].iloc[0], "fingerprint": fp or {},
                    "cpu": _first(g["cpu"]), "blas": _first(g["blas"]),
                    "peak_gflops": _peaks(cpu, fp), "peak_gbps": _first(cpu["peak_gbps"]),
                    "gpu": (fp or {}).get("gpu"), "gpu_float32_math": (fp or {}).get("gpu_float32_math"),
                    "gpu_peak_gflops": {str(d): float(v) for d, v in gpu_peaks.items() if isinstance(v, (int, float))}
                    if isinstance(gpu_peaks, dict) else {},
                    "gpu_peak_gbps": (fp or {}).get("gpu_peak_gbps"),
                    "records": len(g), "runs": g["run_id"].dropna().nunique()})
    return out


def _first(s: pd.Series) -> Any:
    s = s.dropna()
    return s.iloc[0] if len(s) else None


def _peaks(g: pd.DataFrame, fp: dict[str, Any] | None) -> dict[str, float]:
    if fp and isinstance(fp.get("peak_gflops"), dict):
        return {str(d): float(v) for d, v in fp["peak_gflops"].items() if isinstance(v, (int, float))}
    return {str(d): float(v) for d, v in g.groupby("dtype")["peak_gflops"].first().items()
            if v is not None and np.isfinite(v)}


_SWEEP = re.compile(r"^(?:scale|scaling)\.(?P<dim>[A-Za-z_]+)\.(?P<val>\d+(?:\.\d+)?)$")


def sweep_of(case: str) -> tuple[str, float] | None:
    """(dimension, value) of a scaling-suite case id such as ``scale.hw.64``; None otherwise."""
    m = _SWEEP.match(str(case))
    return (m.group("dim"), float(m.group("val"))) if m else None


def natural_key(s: pd.Series) -> pd.Series:
    """Sort key putting ``scale.c.8`` before ``scale.c.16`` (numbers compared as numbers)."""
    return s.map(lambda v: tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                                 for t in re.split(r"(\d+)", str(v)) if t))
