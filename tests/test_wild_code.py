"""Code in the forms people write (tests/seed_layers/wild_*.py), through the real command line:
every correct form passes without a false alarm, every mistake fails with its cause named, and a
form that cannot be driven is one usage error."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = "tests/seed_layers"
FORMS = f"{SEEDS}/wild_functions.py"
TORCH = f"{SEEDS}/wild_torch.py"
SHIM = f"{SEEDS}/wild_shim.py"
MISTAKES = f"{SEEDS}/wild_mistakes.py"

# op -> the correct objects of that operator, each checked on the edge suite
CORRECT = {
    "conv2d": [f"{FORMS}:conv2d_naive", f"{FORMS}:conv2d_single", f"{FORMS}:conv2d_chw", f"{FORMS}:conv2d_padsize",
               f"{FORMS}:conv2d_bias_required", f"{FORMS}:conv_forward_square", f"{FORMS}:ConvKernelPair",
               f"{FORMS}:conv_forward_hwio", f"{FORMS}:conv2d_step", f"{FORMS}:conv_forward_cached", f"{TORCH}:conv2d_chw", f"{SHIM}:conv_nhwc",
               f"{SHIM}:conv_step"],
    "conv1d": [f"{FORMS}:conv1d_cl"],
    "max_pool2d": [f"{FORMS}:max_pool2d", f"{FORMS}:pool_max_chw", f"{TORCH}:maxpool2d"],
    "avg_pool2d": [f"{FORMS}:avg_pool", f"{TORCH}:avgpool2d"],
}
# the reasons some cases are unsupported: what cannot be said to them, said plainly
REASONS = {
    "wild_functions_conv_kernel_pair": "takes stride as an int (its source reads kernel_size as a pair, stride never), "
                                       "the case needs stride=(2, 1)",
    "wild_functions_conv_forward_square": "takes square kernels only (n_f, c, f, f = w.shape)",
    "wild_functions_conv_forward_hwio": "takes square kernels only (f, f, n_C_prev, n_C = W.shape)",
    "wild_functions_conv2d_step": "it has parameter(s) convbench cannot identify: step, border; if one is what the "
                                  "case needs, name it: convbench.adapt(conv2d_step, names={'step': '...'})",
    "wild_functions_conv2d_naive": "takes one channel (an (H, W) image); the case has 3 input channels",
}
# what each form ran: the cases it must have passed (so none of them was refused for nothing)
RAN = {
    "wild_functions_conv2d_naive": {"single.channel.b3"},
    "wild_functions_conv2d_single": {"single.channel.b3", "single.channel.s2p1"},
    "wild_functions_conv_kernel_pair": {"nonsquare.kernel", "batch4.pad1"},
    "wild_functions_conv2d_padsize": {"batch1.pad1", "stride.remainder"},
    "wild_functions_conv2d_bias_required": {"nobias", "basic.3x3"},
    "wild_shim_conv_step": {"batch1.pad1", "stride.remainder"},
    "wild_shim_conv_nhwc": {"nonsquare.kernel", "batch4.pad1", "float64.b3.s2p1"},
    "wild_torch_conv2d_chw": {"batch4.pad1"},
    "wild_functions_conv1d_cl": {"basic.k3", "stride.remainder"},
    "wild_functions_pool_max_chw": {"overlap.k3s2", "k2s2"},
    "wild_torch_maxpool2d": {"pad.max.k3p1.s2", "batch3.k3s2p1"},
    "wild_functions_avg_pool": {"pad1.cip1", "k2s2"},
}


def _check(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path / "records.json"
    r = subprocess.run([sys.executable, "-m", "convbench.cli", "check", "--suite", "edge", "--json", str(out), *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    return r, (json.loads(out.read_text()) if out.exists() else [])


@pytest.mark.parametrize("op", sorted(CORRECT))
def test_every_correct_form_passes_through_the_command_line(op, tmp_path):
    r, recs = _check("--op", op, *[a for spec in CORRECT[op] for a in ("--impl", spec)], tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    by = {i: Counter(x["status"] for x in recs if x["impl"] == i) for i in {x["impl"] for x in recs}}
    assert len(by) == len(CORRECT[op]) and all(c["passed"] > 0 for c in by.values()), by
    for impl, words in REASONS.items():
        if impl in by:
            assert any(words in (x["message"] or "") for x in recs if x["impl"] == impl and x["status"] == "unsupported"), impl
    for impl, cases in RAN.items():
        if impl in by:
            passed = {x["case"] for x in recs if x["impl"] == impl and x["status"] == "passed"}
            assert cases <= passed, (impl, cases - passed)
    # a single-channel function runs few of the suite's cases: the verdict says so, and why; a
    # form driven one sample at a time is said to be
    if op == "conv2d":
        assert "note: wild_functions_conv2d_chw is a function " in r.stdout and \
            "fed one sample at a time (inside the timed call)" in r.stdout
        assert "wild_functions_conv2d_naive: only " in r.stdout and " cases ran, so this verdict covers little" in r.stdout


@pytest.mark.parametrize("spec, op, words", [
    (f"{MISTAKES}:AvgPool2dDefaultStride", "avg_pool2d",
     "likely cause: the stride defaults to kernel_size[0] = 2 on both axes: PyTorch's default stride is the whole kernel"),
    (f"{MISTAKES}:conv2d_two_halves", "conv2d", "likely cause: only sample(s) 2 of the batch are wrong"),
    (f"{MISTAKES}:conv2d_bias_per_product", "conv2d", "likely cause: the bias is added once per product"),
    (f"{MISTAKES}:max_pool_forward_nostride", "max_pool2d", "likely cause: the backward ignores the stride"),
    (f"{MISTAKES}:conv_forward_crop", "conv2d", "likely cause: grad_input is cropped with [p:-p]"),
    (f"{MISTAKES}:Conv2DFloat64", "conv2d", "values right in all"),
])
def test_every_mistake_fails_with_its_cause_named(spec, op, words, tmp_path):
    r, recs = _check("--op", op, "--impl", spec, tmp_path=tmp_path)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert words in r.stdout, r.stdout[-3000:]
    assert not [x for x in recs if x["status"] == "error"], [x["message"] for x in recs if x["status"] == "error"][:2]


def test_a_float64_layer_passes_at_its_own_precision(tmp_path):
    r, recs = _check("--impl", f"{MISTAKES}:Conv2DFloat64", "--dtype", "float64", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    assert recs and {x["case"] for x in recs} and all(x["status"] in ("passed", "unsupported") for x in recs)


def test_a_form_that_cannot_be_driven_is_one_usage_error(tmp_path):
    r, recs = _check("--impl", f"{FORMS}:conv2d_act", tmp_path=tmp_path)
    assert r.returncode == 2 and not recs
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "its required parameter 'activation' has no counterpart in conv2d" in lines[0], r.stderr
    assert "docs/verification.md" in lines[0] and "Traceback" not in r.stderr


def test_run_with_the_users_implementation_checks_benches_and_reports_it_first(tmp_path, monkeypatch, capsys):
    from convbench import main_job
    from convbench.cases import parse_descriptor
    from convbench.cli import main

    # two shipped families and a few small cases keep it short; the job is convbench run's own
    shipped = main_job.registered
    monkeypatch.setattr(main_job, "registered",
                        lambda op=None: [i for i in shipped(op) if i.info.name in ("torch_cpu", "im2col")])
    small = {"edge": [parse_descriptor("n3c2h6w6o3k3p1"), parse_descriptor("n1c2h5w7o2k3s2nb")],
             "quick": [parse_descriptor("n2c3h8w8o4k3p1")]}
    monkeypatch.setattr(main_job, "get_suite", lambda name, op="conv2d": small[name])
    cached = main_job.peaks
    monkeypatch.setattr(main_job, "peaks", lambda fp, refresh=False: cached(fp))
    rc = main(["run", "--impl", str(ROOT / MISTAKES) + ":conv2d_bias_per_product", "--budget", "30",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1  # its checks failed: the report is written all the same
    mine = "wild_mistakes_conv2d_bias_per_product"
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Verdict") < md.index("## Implementations") < md.index("## Machines")
    verdict = md.split("## Verdict\n")[1].split("\n## ")[0].strip().splitlines()
    assert verdict[0].startswith(f"- {mine}: FAILED") and "value checks" in verdict[0]
    assert any(line.startswith("- torch_cpu: OK") for line in verdict)
    assert f"| » {mine} |" in md and "No scaling-suite cases were run, so no exponents." in md
    assert "Verdict" in (tmp_path / "index.html").read_text()
    bench = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert {r["impl"] for r in bench} >= {mine, "torch_cpu", "im2col"}
    # the terminal ends with the verdict, the user's first, then the speed table
    tail = out.rsplit("likely causes (failed checks):", 1)[-1]
    assert tail.index(f"{mine}: FAILED") < tail.index("torch_cpu: OK") < tail.index(f"» {mine}")
    assert "Scaling exponents" not in tail


def test_adapt_says_what_the_source_cannot_and_refuses_what_makes_no_sense():
    import convbench
    from convbench.registry import load_impl
    from convbench.verify import run_checks
    from convbench.cases import parse_descriptor

    pool = load_impl(f"{ROOT / SHIM}:pool_chw")  # the operator from the adapted function, not its class
    assert pool.info.op == "max_pool2d" and pool.layout == "CHW"
    recs = run_checks([pool], [parse_descriptor("n3c2h7w7k3s2", "max_pool2d")], checks=["random"], isolate=False)
    assert {r["status"] for r in recs if r["direction"] == "forward"} == {"passed"}
    sys.path.insert(0, str(ROOT / SEEDS))
    import wild_functions as wf

    for kwargs, words in [(dict(layout="NHCW C"), "layout='NHCW C': expected the letters of 'NCHW'"),
                          (dict(layout="HWC", weight_layout="IOHW X"), "weight_layout='IOHW X'"),
                          (dict(names={"stride_length": "stride"}), "has no parameter 'stride_length'"),
                          (dict(names={"step": "speed"}), "'speed' is not a parameter of conv2d")]:
        with pytest.raises(TypeError, match=re.escape(words)):
            convbench.adapt(wf.conv2d_step, **kwargs)
    with pytest.raises(TypeError, match="convbench.adapt takes a function"):
        convbench.adapt(wf.ConvKernelPair)
