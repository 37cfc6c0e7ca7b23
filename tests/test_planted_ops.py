"""Every planted bug in tests/planted_ops/ (conv1d and pooling) is caught by the verification layer,
with the check and direction that should catch it named, on the operators' edge suites."""
from __future__ import annotations

from pathlib import Path

import pytest

from convbench.cases import get_suite
from convbench.registry import load_impl, registered
from convbench.verify import run_checks

PLANTED = Path(__file__).parent / "planted_ops"

# spec -> (op, check, direction, status, a case it must fail on)
BUGS = {
    # the random fill has no ties, so only the tie-heavy exact fill can see this one
    "max_ties_all.py:TiesAllMaxPool2d": ("max_pool2d", "exact", "grad_input", "failed", "ties.overlap"),
    "avg_pad_counted.py:PadCountedAvgPool2d": ("avg_pool2d", "random", "forward", "failed", "pad1.cip0"),
    "ceil_in_padding.py:CeilInPaddingMaxPool2d": ("max_pool2d", "shape", "forward", "failed",
                                                  "ceil.pad.last.dropped"),
    "conv1d_no_dilation.py:NoDilationConv1d": ("conv1d", "exact", "forward", "failed", "dilation2"),
}
# cases the bug does not touch: every check there must pass
UNTOUCHED = {
    "max_ties_all.py:TiesAllMaxPool2d": None,  # every exact case has ties
    "avg_pad_counted.py:PadCountedAvgPool2d": "pad1.cip1",
    "ceil_in_padding.py:CeilInPaddingMaxPool2d": "ceil.past.edge",
    "conv1d_no_dilation.py:NoDilationConv1d": "pad1",
}


def _records(spec: str) -> list[dict]:
    op = BUGS[spec][0]
    impl = load_impl(str(PLANTED / spec), op=op)
    return run_checks([impl], get_suite("edge", op), shrink=False)


@pytest.mark.parametrize("spec", sorted(BUGS))
def test_planted_bug_is_caught(spec):
    op, check, direction, status, case = BUGS[spec]
    recs = _records(spec)
    hits = [r for r in recs if (r["check"], r["direction"], r["status"]) == (check, direction, status)]
    assert hits, f"{spec}: no {status} {check}/{direction}; got " + \
        str(sorted({(r['check'], r['direction'], r['status']) for r in recs if r['status'] != 'passed'}))
    assert case in {r["case"] for r in hits}
    for r in hits:
        assert r["impl"] and r["op"] == op and r["message"]
        assert r["repro"].startswith(f"convbench check --op {op} --impl ") and "--case " in r["repro"]
    quiet = UNTOUCHED[spec]
    if quiet is not None:
        loud = [r for r in recs if r["case"] == quiet and r["status"] not in ("passed", "unsupported")]
        assert not loud, f"{spec}: {loud[0]['check']} fired on {quiet}: {loud[0]['message']}"


@pytest.mark.parametrize("op", ["conv1d", "max_pool2d", "avg_pool2d"])
def test_the_shipped_families_pass_the_same_checks(op):
    """The contrast: what the checks flag above is the bug, not the case."""
    impls = [i for i in registered(op) if i.info.name in ("stride_tricks", "naive")]
    recs = run_checks(impls, get_suite("edge", op), shrink=False)
    bad = [r for r in recs if r["status"] not in ("passed", "unsupported")]
    assert not bad, [(r["impl"], r["case"], r["check"], r["direction"], r["message"]) for r in bad[:3]]


def test_a_file_importing_a_shipped_family_leaves_its_registrations_alone():
    """Loading a planted file (which imports impls.stride_tricks) in a fresh process must not turn the
    shipped stride_tricks implementations into isolated copies of the planted object."""
    import subprocess
    import sys

    code = ("from convbench.registry import load_impl, get_impl\n"
            f"load_impl({str(PLANTED / 'avg_pad_counted.py:PadCountedAvgPool2d')!r}, op='avg_pool2d')\n"
            "i = get_impl('stride_tricks', 'conv1d').info\n"
            "print(i.spec, i.isolate)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["stride_tricks", "False"]
