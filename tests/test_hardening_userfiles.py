"""Hardening: a user's implementation file is imported only inside an isolated worker, so nothing
it does at import (loop, exit, print, raise) hangs the command, ends it or pollutes its output,
and one bad --impl leaves the others running. Each test is a probe that misbehaved once."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import convbench.cli as cli
from convbench import ParamError, load_impl
from convbench.cli import main

CASE = "n1c2h5w5o2k3"
GOOD = textwrap.dedent('''
    import numpy as np

    def conv(x, w, b=None):
        o, _, kh, kw = w.shape
        y = np.zeros((x.shape[0], o, x.shape[2] - kh + 1, x.shape[3] - kw + 1), x.dtype)
        for i in range(kh):
            for j in range(kw):
                y += np.einsum("nchw,oc->nohw", x[:, :, i:i + y.shape[2], j:j + y.shape[3]], w[:, :, i, j])
        return y if b is None else y + b[None, :, None, None]
''')
HOSTILE = {
    "loop": "while True:\n    pass\n",
    "exit3": "import sys\nsys.exit(3)\n",
    "oexit7": "import os\nos._exit(7)\n",
    "syntax": "def conv(x, w, b=None)\n    return x\n",
    "raises": "raise RuntimeError('nope at import')\n",
}
SAYS = {"loop": "import never finished", "exit3": "sys.exit(3)", "oexit7": "exited with code 7",
        "syntax": "SyntaxError", "raises": "RuntimeError: nope at import"}


def errors(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [ln for ln in err.splitlines() if ": error: " in ln]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_import_time_misbehaviour_is_reported_and_the_other_impls_still_run(tmp_path, kind, capsys, monkeypatch):
    bad = tmp_path / f"{kind}.py"
    bad.write_text(HOSTILE[kind] + GOOD)
    # loading gets the --timeout or MIN_LOAD_TIMEOUT: short for the endless import, long enough
    # for the others on a loaded machine (starting a worker takes seconds there)
    monkeypatch.setattr(cli, "MIN_LOAD_TIMEOUT", 8.0 if kind == "loop" else 120.0)
    timeout = "2" if kind == "loop" else "60"
    rc = main(["check", "--impl", f"{bad}:conv", "--impl", "im2col", "--case", CASE, "--timeout", timeout])
    out, err = capsys.readouterr()
    (line,) = errors(err)
    assert rc == 2 and SAYS[kind] in line and f"{bad}:conv" in line, err
    assert "im2col" in out and "passed" in out
    assert not any(str(bad.resolve()).replace("/", "_") in m for m in sys.modules)   # never imported here


def test_the_command_never_imports_a_users_file_itself(tmp_path, capsys):
    good = tmp_path / "good.py"
    good.write_text("import os\nopen(os.path.join(os.path.dirname(__file__), f'imported-by-{os.getpid()}'), 'w')\n"
                    + GOOD)
    import os

    assert main(["check", "--impl", f"{good}:conv", "--case", CASE]) == 0
    assert "passed" in capsys.readouterr().out
    pids = {p.name.split("-")[-1] for p in tmp_path.glob("imported-by-*")}
    assert pids and str(os.getpid()) not in pids


def test_megabytes_printed_at_import_stay_out_of_the_output(tmp_path):
    loud = tmp_path / "loud.py"
    loud.write_text("print('x' * 5_000_000)\n" + GOOD)
    res = subprocess.run([sys.executable, "-m", "convbench.cli", "check", "--impl", f"{loud}:conv", "--case", CASE],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "x" * 100 not in res.stdout and len(res.stdout) < 20_000
    assert len(res.stderr) < 200_000 and "more bytes of output" in res.stderr


def test_an_unregistered_implementation_class_from_a_file_is_isolated_too(tmp_path, capsys):
    f = tmp_path / "unreg.py"
    f.write_text(textwrap.dedent('''
        import os
        from convbench.registry import Implementation, ImplInfo

        class Mine(Implementation):
            info = ImplInfo(op="conv2d", name="mine")

            def forward(self, p, x, w, b):
                os._exit(9)
    '''))
    for extra in ([], ["--timeout", "30"]):
        assert main(["check", "--impl", f"{f}:Mine", "--case", CASE, *extra]) == 1
        out = capsys.readouterr().out
        assert "CRASHED" in out and "code 9" in out and "not a registered" not in out


@pytest.mark.parametrize("spec", [":", "file.py:", ":conv"])
def test_a_spec_without_file_or_object_is_a_usage_error(spec, capsys):
    assert main(["check", "--impl", spec, "--case", CASE]) == 2
    (line,) = errors(capsys.readouterr().err)
    assert repr(spec) in line and "OBJECT" in line


@pytest.mark.parametrize("command", ["check", "bench", "run"])
def test_help_and_the_docs_say_that_impl_files_run_unsandboxed(capsys, monkeypatch, command):
    # on one line, whatever the terminal's width (it once wrapped between "no" and "sandbox"), and
    # for run too, which runs --impl files as check and bench do (it once said nothing)
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert any("no sandbox" in line for line in capsys.readouterr().out.splitlines())
    docs = (Path(__file__).parents[1] / "docs" / "verification.md").read_text()
    assert "## Security" in docs and "not a sandbox" in docs


def test_a_run_wide_deadline_stops_a_hanging_implementation_and_skips_the_rest(tmp_path, capsys):
    import time

    f = tmp_path / "sleepy.py"
    f.write_text("import time\n\ndef conv(x, w, b=None):\n    time.sleep(1000)\n")
    t0 = time.monotonic()
    rc = main(["check", "--impl", f"{f}:conv", "--impl", "im2col", "--case", CASE, "--case", "n1c2h6w6o2k3",
               "--deadline", "6"])
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    assert rc == 1 and "TIMEOUT" in out and "deadline passed" in out
    assert took < 40, took


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_deadline_must_be_positive_seconds(value, capsys):
    assert main(["check", "--impl", "im2col", "--deadline", value]) == 2
    (line,) = errors(capsys.readouterr().err)
    assert repr(value) in line


def test_a_file_that_registers_a_name_again_is_isolated_like_a_new_one(tmp_path):
    from convbench.registry import load_impl

    src = ("from convbench.registry import Implementation, ImplInfo, register\n"
           "class Mine(Implementation):\n    pass\n"
           "mine = Mine()\nregister(mine, op='conv2d', name='fake_registered_twice', replace=True)\n")
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "twice.py").write_text(src)
        impl = load_impl(f"{tmp_path / d / 'twice.py'}:mine")
        assert impl.info.isolate and impl.info.spec.startswith(str(tmp_path / d)), impl.info


def test_run_imports_a_users_file_only_in_a_worker(tmp_path):
    # a file that ends the process at import once ended `convbench run` itself (exit 7, no word)
    bad = tmp_path / "oexit7.py"
    bad.write_text(HOSTILE["oexit7"] + GOOD)
    p = subprocess.run([sys.executable, "-m", "convbench.cli", "run", "--impl", f"{bad}:conv", "--out",
                        str(tmp_path / "rep"), "--budget", "5"], capture_output=True, text=True, timeout=300)
    (line,) = errors(p.stderr)
    assert p.returncode == 2 and "--impl" in line and f"{bad}:conv" in line and SAYS["oexit7"] in line, p.stderr



def test_check_impl_imports_a_users_file_only_in_a_worker(tmp_path):
    good = tmp_path / "good.py"
    good.write_text("import os\nopen(os.path.join(os.path.dirname(__file__), f'imported-by-{os.getpid()}'), 'w')\n"
                    + GOOD)
    import os

    import convbench

    recs = convbench.check_impl(f"{good}:conv", cases=[CASE])
    forward = [r for r in recs if r["direction"] == "forward"]
    assert forward and all(r["status"] == "passed" for r in forward), recs
    pids = {p.name.split("-")[-1] for p in tmp_path.glob("imported-by-*")}
    assert pids and str(os.getpid()) not in pids


@pytest.mark.parametrize("kind", ["oexit7", "exit3", "raises", "syntax"])
def test_check_impl_on_a_file_that_misbehaves_at_import_raises_param_error_and_the_caller_lives_on(tmp_path, kind):
    # the public API once imported the file in the caller: os._exit(7) ended the user's session
    bad = tmp_path / f"{kind}.py"
    bad.write_text(HOSTILE[kind] + GOOD)
    code = textwrap.dedent(f'''
        import convbench
        try:
            convbench.check_impl({f"{bad}:conv"!r}, cases=[{CASE!r}])
        except convbench.ParamError as exc:
            print("ParamError:", exc)
        print("still here")
    ''')
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.endswith("still here\n"), (p.stdout, p.stderr)
    assert f"{bad}:conv" in p.stdout and SAYS[kind] in p.stdout, p.stdout


@pytest.mark.parametrize("spec", [":", "x.py:", ":conv2d", ".x:f", "a..b:f"])
def test_a_spec_that_is_no_module_or_object_is_a_param_error_naming_it(spec):
    # load_impl(":") once raised importlib's own "ValueError: Empty module name"
    with pytest.raises(ParamError, match=re.escape(repr(spec))):
        load_impl(spec)
