"""This machine's crossover file (what ``fastest`` chooses from): its lines, compaction, the listener."""
from __future__ import annotations

from convbench import store
from impls import _crossover


def test_crossover_file_is_compacted_to_the_latest_line_of_each_measurement(tmp_path):
    path = tmp_path / "cross.jsonl"
    lines = []
    for i in range(50):
        for impl in ("a", "b"):
            lines.append({"op": "conv2d", "impl": impl, "descriptor": "n1c1h4w4o1k3", "direction": "forward",
                          "dtype": "float32", "status": "ok", "t_median_s": float(i)})
    lines.append({"op": "conv2d", "impl": "a", "descriptor": "n1c1h5w5o1k3", "direction": "forward",
                  "dtype": "float32", "status": "ok", "t_median_s": 7.0})
    for r in lines:
        store.append(path, r, fsync=False)
    assert not _crossover.compact_crossover(path, max_bytes=path.stat().st_size)      # not over: untouched
    assert len(store.read(path)) == 101
    assert _crossover.compact_crossover(path, max_bytes=100)
    kept = store.read(path)
    assert [(r["impl"], r["descriptor"], r["t_median_s"]) for r in kept] == [
        ("a", "n1c1h4w4o1k3", 49.0), ("b", "n1c1h4w4o1k3", 49.0), ("a", "n1c1h5w5o1k3", 7.0)]
    assert not list(tmp_path.glob("*.tmp"))
