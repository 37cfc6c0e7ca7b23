"""The Makefile's install path, run with a stand-in for the environment's Python that logs the pip
calls it is given: the pinned CPU build of torch comes from pip's own sources where they have it,
from PyTorch's CPU index only where they do not, and a clear line where neither has it."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# torch's own install succeeds where $HAVE names the source that holds it (local, index or none)
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$PIP_LOG"
case "$*" in
  *" torch")
    case "$*" in
      *--extra-index-url*) [ "$HAVE" = index ] ;;
      *) [ "$HAVE" = local ] ;;
    esac
    exit $? ;;
esac
exit 0
"""


def _install(tmp_path: Path, have: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(FAKE_PYTHON)
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "pip.log"
    env = {**os.environ, "PIP_LOG": str(log), "HAVE": have}
    r = subprocess.run(["make", "-C", str(ROOT), "install", f"VENV={venv}"], env=env,
                       capture_output=True, text=True, timeout=60)
    return r, log.read_text().splitlines() if log.exists() else []


def test_a_local_wheel_is_used_and_no_other_index_is_asked(tmp_path):
    r, calls = _install(tmp_path, "local")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any("--extra-index-url" in c for c in calls)
    torch_at = next(i for i, c in enumerate(calls) if c.endswith(" torch"))
    assert calls[torch_at] == "-m pip install --quiet -c constraints.txt torch"
    assert "-e .[dev]" in calls[-1] and torch_at < len(calls) - 1
    assert (tmp_path / "venv" / ".convbench-installed").exists()


def test_without_a_local_wheel_torch_comes_from_pytorchs_cpu_index(tmp_path):
    r, calls = _install(tmp_path, "index")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"-m pip install --quiet -c constraints.txt --extra-index-url {CPU_INDEX} torch" in calls
    assert f"installing it from {CPU_INDEX}" in r.stdout
    assert "-e .[dev]" in calls[-1] and "--extra-index-url" not in calls[-1]


def test_with_torch_nowhere_the_install_stops_with_a_line_saying_what_to_do(tmp_path):
    r, calls = _install(tmp_path, "none")
    assert r.returncode != 0
    assert "could not install torch==" in r.stderr and "PIP_FIND_LINKS=DIR make install" in r.stderr
    assert not any("-e .[dev]" in c for c in calls)
    assert not (tmp_path / "venv" / ".convbench-installed").exists()
