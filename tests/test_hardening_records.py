"""Hardening: records and results are never lost or corrupted, and a bad input or output is one
line and exit status 2, never a traceback. Each test is a probe that misbehaved once."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from convbench import store
from convbench.cli import main

CASE = "n1c2h5w5o2k3"
REC = {"schema": 1, "op": "conv2d", "impl": "im2col", "case": "c", "descriptor": CASE, "direction": "forward",
       "dtype": "float32", "status": "ok", "t_median_s": 1e-3, "t_min_s": 1e-3, "samples": [1e-3]}


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], err


# --- the one reader ------------------------------------------------------------------------------

def test_a_torn_line_anywhere_is_skipped_and_counted(tmp_path, capsys):
    f = tmp_path / "b.jsonl"
    f.write_text(json.dumps(REC) + "\n" + json.dumps(REC)[:30] + "\n" + json.dumps(REC) + "\n")
    assert store.read(f) == [REC, REC]
    err = capsys.readouterr().err
    assert "skipped 1 torn" in err and "line 2" in err


@pytest.mark.parametrize("content,fragment", [
    (b"\x00\xff\xfe binary \x81\n\x90\x91", "not a JSON-lines"),
    (json.dumps([REC]).encode(), "JSON array"),
    ((json.dumps(dict(REC, schema=99)) + "\n").encode(), "schema 99"),
])
def test_the_reader_refuses_what_is_not_its_records_in_one_line(tmp_path, content, fragment):
    f = tmp_path / "b.jsonl"
    f.write_bytes(content)
    with pytest.raises(store.RecordFileError, match=fragment) as ei:
        store.read(f)
    assert "\n" not in str(ei.value)


def test_resume_refuses_records_of_a_newer_schema(tmp_path, capsys):
    out = tmp_path / "b.jsonl"
    out.write_text(json.dumps(dict(REC, schema=99)) + "\n")
    assert main(["bench", "--impl", "im2col", "--case", CASE, "--out", str(out), "--resume", "--budget", "5"]) == 2
    one_line_error(capsys.readouterr().err, "schema 99")


# --- writers -------------------------------------------------------------------------------------

def test_append_never_adds_lines_to_a_file_that_is_not_json_lines(tmp_path):
    f = tmp_path / "check.json"
    f.write_text(json.dumps([{"check": "shape"}], indent=1))
    before = f.read_bytes()
    with pytest.raises(store.RecordFileError, match="not a JSON-lines"):
        store.append(f, REC)
    assert f.read_bytes() == before


@pytest.mark.parametrize("kind", ["json_array", "directory", "readonly_dir"])
def test_bench_out_that_cannot_take_records_is_refused_before_measuring(tmp_path, capsys, kind):
    if kind == "json_array":
        out = tmp_path / "check.json"
        out.write_text("[]\n")
    elif kind == "directory":
        out = tmp_path / "d"
        out.mkdir()
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
        out = d / "b.jsonl"
    assert main(["bench", "--impl", "im2col", "--case", CASE, "--out", str(out), "--budget", "5"]) == 2
    captured = capsys.readouterr()
    one_line_error(captured.err, str(out))
    assert "im2col" not in captured.out   # nothing was measured


def test_bench_out_dev_null_is_a_sink_not_an_error(capsys):
    assert main(["bench", "--impl", "im2col", "--case", CASE, "--out", os.devnull, "--budget", "5"]) == 0
    assert "im2col" in capsys.readouterr().out


def test_write_json_follows_a_symlink_and_never_renames_over_a_device(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    store.write_json(link, [1])
    assert link.is_symlink() and json.loads(target.read_text()) == [1]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    store.write_json(fifo, {"a": 1})
    assert json.loads(reader.communicate(timeout=30)[0]) == {"a": 1}
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)    # still the pipe, not a regular file
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_write_json_gives_a_new_file_the_umask_s_permissions_and_keeps_a_replaced_one_s(tmp_path):
    # the temporary file it renames is created owner-only: check.json came out -rw------- once
    old = os.umask(0o022)
    try:
        store.write_json(tmp_path / "new.json", [1])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == 0o644
    kept = tmp_path / "kept.json"
    kept.write_text("[]")
    os.chmod(kept, 0o640)
    store.write_json(kept, [2])
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o640 and json.loads(kept.read_text()) == [2]


def test_check_prints_results_before_writing_them_and_refuses_a_bad_json_up_front(tmp_path, capsys):
    d = tmp_path / "somedir"
    d.mkdir()
    assert main(["check", "--impl", "im2col", "--case", CASE, "--json", str(d)]) == 2
    captured = capsys.readouterr()
    one_line_error(captured.err, "somedir", "directory")
    assert not list(tmp_path.glob("somedir*.tmp")) and not list(tmp_path.glob(".somedir*"))
    # a --json that fails only when written (here: replaced by a directory meanwhile) loses nothing
    out = tmp_path / "c.json"
    real = store.write_json

    def gone(path, obj):
        raise store.RecordFileError(f"{path}: cannot be written (disk gone)")

    store.write_json = gone
    try:
        assert main(["check", "--impl", "im2col", "--case", CASE, "--json", str(out)]) == 2
    finally:
        store.write_json = real
    captured = capsys.readouterr()
    assert "passed" in captured.out and "disk gone" in captured.err


def test_interrupted_check_does_not_claim_records_were_kept(capsys, monkeypatch):
    import convbench.cli as cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_checks", interrupted)
    assert main(["check", "--impl", "im2col", "--case", CASE]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "kept" not in err


# --- usage errors: one line, exit 2 --------------------------------------------------------------

@pytest.mark.parametrize("args,fragment", [
    (["check", "--timeout", "nan"], "'nan'"),
    (["check", "--timeout", "inf"], "'inf'"),
    (["check", "--timeout", "0"], "'0'"),
    (["check", "--timeout", "-1"], "'-1'"),
    (["bench", "--budget", "0"], "'0'"),
    (["run", "--budget", "0"], "'0'"),
    (["run", "--budget", "-5"], "'-5'"),
    (["compare", "a.jsonl", "a.jsonl", "--threshold", "-5"], "'-5'"),
    (["compare", "a.jsonl", "a.jsonl", "--threshold", "nan"], "'nan'"),
    (["report", "a.jsonl", "--out", "a.jsonl"], "existing file"),
    (["run", "--out", "a.jsonl"], "existing file"),
    # each names its option and the value (once said only "n must be a positive int, got 0")
    (["check", "--impl", "im2col", "--case", "n0c1h3w3o1k1"], "--case 'n0c1h3w3o1k1': n must be"),
    (["check", "--impl", "im2col", "--case", "n1c2h6w6o2k9"], "--case 'n1c2h6w6o2k9': kernel height"),
    (["bench", "--impl", "im2col", "--case", "n1c3h6w6o2k3g2"], "--case 'n1c3h6w6o2k3g2': groups=2"),
    (["check", "--impl", "im2col", "--suite", "nosuch"], "--suite 'nosuch': "),
    (["check", "--op", "nosuch"], "--op 'nosuch': "),
    (["check", "--impl", "nosuch_impl"], "--impl 'nosuch_impl': "),
    (["check", "--impl", "im2col", "--json", "."], "--json '.': is a directory"),
    (["bench", "--impl", "im2col", "--out", "."], "--out '.': "),
    (["bench", "--impl", "im2col", "--out", "notes.txt"], "--out 'notes.txt': not a JSON-lines"),
    # a baseline named that the records do not hold once gave exit 0 and a note
    (["report", "a.jsonl", "--baseline", "nosuch", "--out", "r"], "--baseline 'nosuch': no implementation"),
    # an empty file (a run ended before its first record) once gave exit 0 and an empty report
    (["report", "empty.jsonl", "--out", "r"], "'empty.jsonl': no records"),
])
def test_bad_values_are_one_line_exit_2(args, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text(json.dumps(REC) + "\n")
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "empty.jsonl").write_text("")
    assert main(args) == 2
    one_line_error(capsys.readouterr().err, fragment)


def _asv_like(d: Path) -> Path:
    (d / "m").mkdir(parents=True)
    (d / "m" / "x.json").write_text(json.dumps({"results": {"a.B.time_forward": 5}, "result_columns": "zz"}))
    return d


@pytest.mark.parametrize("make,fragment", [
    (lambda p: (p / "torn.jsonl").write_text(json.dumps(REC) + "\n" + "{torn\n" * 3 + json.dumps(REC) + "\n")
     and None, None),
    (lambda p: (p / "bin.jsonl").write_bytes(bytes(range(256)) * 8), "not a JSON-lines"),
    (lambda p: (p / "pb.json").write_text(json.dumps({"benchmarks": "x", "machine_info": {}})), "pytest-benchmark"),
    (lambda p: (p / "pb2.json").write_text(json.dumps({"benchmarks": [5], "machine_info": {}})), "malformed"),
    (lambda p: (p / "notasv").mkdir() or (p / "notasv" / "a.txt").write_text("x"), "no asv results"),
    (lambda p: _asv_like(p / "badasv") and None, "asv result"),
    (lambda p: (p / "bad.json").write_text(json.dumps([{"check": "x"}, 5])), "item 1"),
    # JSON that holds no record once gave a report of one "error" row with exit status 0
    (lambda p: (p / "pb3.json").write_text(json.dumps({"benchmarks": "x"})), "not a convbench record"),
    (lambda p: (p / "other.jsonl").write_text('{"a": 1}\n{"a": 2}\n'), "not a convbench record"),
])
def test_report_and_compare_on_bad_inputs_never_show_a_traceback(tmp_path, make, fragment):
    make(tmp_path)
    made = [p for p in tmp_path.iterdir() if p.name not in ("r",)][0]
    for args in (["report", str(made), "--out", str(tmp_path / "r")], ["compare", str(made), str(made)]):
        res = run_cli(*args, cwd=tmp_path)
        assert "Traceback" not in res.stderr, res.stderr
        if fragment is None:   # a torn line mid-file: read, with a counted warning
            assert res.returncode in (0, 1) and "skipped 3 torn" in res.stderr, res.stderr
        else:
            assert res.returncode == 2, res.stderr
            one_line_error(res.stderr, fragment)


# --- convbench run keeps an earlier run's records -----------------------------------------------

def test_run_moves_an_earlier_runs_records_aside_and_says_where(tmp_path, monkeypatch, capsys):
    from convbench import main_job

    out = tmp_path / "rep"
    out.mkdir()
    (out / "bench.jsonl").write_text(json.dumps(REC) + "\n")
    calls = []

    def stop(*a, **k):   # the earlier records must be safe before any work starts
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(main_job, "fingerprint", stop)   # the first work of the run
    assert main(["run", "--out", str(out), "--op", "conv2d"]) == 130
    moved = list(out.glob("bench.*.jsonl"))
    assert calls and len(moved) == 1 and store.read(moved[0]) == [REC]
    assert str(moved[0]) in capsys.readouterr().err


# --- Markdown of user text -----------------------------------------------------------------------

def test_user_text_in_report_md_is_inert_markdown(tmp_path):
    import reports

    evil = "[x](javascript:alert(4)) ![i](http://e/x.png) `code` a|b <script>"
    rec = {"impl": "mine", "op": "conv2d", "case": "c1", "direction": "forward", "check": "exact",
           "status": "error", "max_abs_err": None, "err_ratio": None, "tolerance": None, "message": evil,
           "repro": "convbench check"}
    frame = reports.load([])
    md = reports.write_report(frame, tmp_path, formats=["md"], check_records=[rec])["md"].read_text()
    assert "javascript" in md    # the message is there, as text
    import re

    assert not re.search(r"(?<!\\)\]\(", md)     # no unescaped "](": no link, no image
    assert "<script>" not in md and "a|b" not in md and "`code`" not in md
