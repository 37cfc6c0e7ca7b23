"""The command line: exit codes, usage errors, list."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _reports_fakes import QUICK, bench_records
from convbench.cli import main

LAYERS = Path(__file__).parent / "seed_layers" / "course_layers.py"


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "convbench.cli", *args], capture_output=True, text=True, **kw)


def test_list_shows_the_five_families_and_why_cuda_is_missing(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("naive", "im2col", "stride_tricks", "torch_cpu", "torch_cuda"):
        assert name in out
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        line = next(l for l in out.splitlines() if "torch_cuda" in l)
        assert "no:" in line and "CUDA" in line


def test_list_json(capsys):
    assert main(["list", "--json", "--op", "conv2d"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert all(i["op"] == "conv2d" for i in infos)
    assert {"name", "backend", "device", "available", "reason", "directions", "dtypes"} <= set(infos[0])


@pytest.mark.parametrize("args,fragment", [
    (["check", "--case", "n1c3x5"], "'x5'"),
    (["check", "--impl", "nonesuch"], "nonesuch"),
    (["check", "--op", "conv9d"], "conv9d"),
    (["check", "--suite", "nonesuch"], "nonesuch"),
    (["bench", "--resume"], "--resume needs --out"),
    (["bench", "--threads", "0"], "--threads must be between 1 and"),
    (["bench", "--threads", "100000"], "got 100000"),            # tens of thousands: a segfault once
    (["bench", "--impl", "im2col", "--baseline", "im2col"], "--baseline 'im2col' is also an --impl"),
    (["report", "x.jsonl", "--out", "/proc/no-such-dir"], "--out '/proc/no-such-dir'"),   # an internal error once
    (["bench", "--budget", "-5"], "--budget: expected seconds (a finite number > 0), got '-5'"),
    (["report", "does-not-exist.jsonl"], "does-not-exist.jsonl"),
    (["report", "x.jsonl", "--format", "pdf"], "pdf"),
    (["compare", "a.jsonl", "b.jsonl", "--threshold", "ten"], "ten"),
])
def test_usage_errors_exit_2_with_the_bad_value(args, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = bench_records(impls=("im2col",), cases=QUICK[:1], directions=("forward",))[0]
    (tmp_path / "x.jsonl").write_text(json.dumps(rec) + "\n")   # a record: what is wrong is the option
    assert main(args) == 2
    assert fragment in capsys.readouterr().err


def test_argparse_usage_error_exits_2():
    out = run_cli("check", "--no-such-flag")
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr


def test_the_operator_comes_from_the_layer_when_op_is_not_given(capsys):
    spec = f"{LAYERS}:MaxPool2D"
    assert main(["check", "--impl", spec, "--case", "n2c3h8w8k2"]) == 0
    assert "max_pool2d" in capsys.readouterr().out


def test_check_says_how_long_its_checks_took_and_where_they_ran(tmp_path, capsys):
    """The figure to compare ``--jobs 1``, the default pool and a cluster with: one line on
    stderr, the count and the workers read from the records."""
    out = tmp_path / "c.json"
    assert main(["check", "--impl", "im2col", "--case", "n1c2h6w6o2k3", "--jobs", "1", "--json", str(out)]) == 0
    recs = json.loads(out.read_text())
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf"{len(recs)} checks in \d+\.\d s on 1 worker: {re.escape(socket.gethostname())}/main",
                        line), line


def test_a_layer_that_cannot_be_the_named_op_is_a_usage_error(capsys):
    assert main(["check", "--op", "conv2d", "--impl", f"{LAYERS}:MaxPool2D"]) == 2
    err = capsys.readouterr().err
    assert "--op max_pool2d" in err and "Traceback" not in err


def test_a_reader_that_goes_away_stops_the_command_quietly():
    """`convbench list | head -1`: the closed pipe ends the command without a traceback."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "import sys; from convbench.cli import main; sys.exit(main(['list']))"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    p.stdout.close()  # before the child has printed anything: its first write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
