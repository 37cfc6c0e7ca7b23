"""The models and scaling suites against published output sizes and whole-model totals."""
from __future__ import annotations

import re

import pytest

from convbench.cases import get_suite
from convbench.cases.catalogue.models import SCALING_BASE, model_cases


def _by_id(model: str) -> dict:
    return {c.id: c for c in model_cases(model)}


def _total_macs(model: str) -> int:
    return sum(c.count * c.params.macs for c in model_cases(model))


def _n_convs(model: str) -> int:
    return sum(c.count for c in model_cases(model))


@pytest.mark.parametrize(("model", "convs", "gmacs", "rel"), [
    ("resnet50", 53, 4.09, 0.02),       # torchvision resnet50: 4.09 GMACs at 224x224 (convs ~4.087)
    ("vgg16", 13, 15.35, 0.01),         # 15.47 GMACs with the 0.12 G of the classifier
    ("mobilenetv2", 52, 0.300, 0.03),   # paper: 300 M multiply-adds
    ("alexnet", 5, 0.666, 0.01),        # two-GPU AlexNet: 666 M conv MACs (724 M with the FC layers)
])
def test_whole_model_totals(model, convs, gmacs, rel):
    assert _n_convs(model) == convs
    assert _total_macs(model) / 1e9 == pytest.approx(gmacs, rel=rel)


def test_resnet50_layers():
    r = _by_id("resnet50")
    assert r["resnet50.conv1"].params.out_hw == (112, 112)
    c = r["resnet50.layer1.0.conv2"]
    assert (c.params.c, c.params.o, c.params.kh, c.count, c.params.out_hw) == (64, 64, 3, 3, (56, 56))
    # v1.5: the stride sits on the 3x3, and on the downsample 1x1
    assert r["resnet50.layer2.0.conv2"].params.stride == (2, 2)
    assert r["resnet50.layer2.0.conv1"].params.stride == (1, 1)
    assert r["resnet50.layer2.0.downsample"].params.out_hw == (28, 28)
    assert r["resnet50.layer4.0.conv2"].params.out_hw == (7, 7)
    assert r["resnet50.layer3.1.conv2"].count == 5
    assert not any(c.params.bias for c in r.values())


def test_mobilenetv2_layers():
    m = _by_id("mobilenetv2")
    dw = m["mobilenetv2.dw.144x56.s2"].params
    assert (dw.groups, dw.c, dw.o, dw.out_hw) == (144, 144, 144, (28, 28))
    assert m["mobilenetv2.expand.24x56.144"].params.kh == 1
    assert m["mobilenetv2.head.320x7.1280"].params.out_hw == (7, 7)
    assert sum(c.count for c in m.values() if ".dw." in c.id) == 17


def test_vgg16_alexnet_lenet_cifar_layers():
    v = _by_id("vgg16")
    assert v["vgg16.conv5_1"].count == 3 and v["vgg16.conv5_1"].params.out_hw == (14, 14)
    a = _by_id("alexnet")
    assert a["alexnet.conv1"].params.out_hw == (55, 55)
    c2 = a["alexnet.conv2"].params
    assert (c2.c, c2.o, c2.kh, c2.padding, c2.groups, c2.out_hw) == (96, 256, 5, (2, 2), 2, (27, 27))
    assert a["alexnet.conv3"].params.groups == 1 and a["alexnet.conv5"].params.out_hw == (13, 13)
    le = _by_id("lenet5")
    assert [le[f"lenet5.{k}"].params.out_hw for k in ("c1", "c3", "c5")] == [(28, 28), (10, 10), (1, 1)]
    # LeCun et al. 1998: C1 has 122,304 connections, C5 48,120 (weights plus bias)
    for k, conns in (("c1", 122_304), ("c5", 48_120)):
        p = le[f"lenet5.{k}"].params
        assert p.macs + p.o * p.out_hw[0] * p.out_hw[1] == conns
    cf = _by_id("cifar10cnn")
    assert [(c.params.c, c.params.o, c.params.out_hw) for c in cf.values()] == [(3, 32, (32, 32)), (32, 64, (16, 16))]


def test_deepbench_problems():
    d = _by_id("deepbench")
    p = d["deepbench.7x7.c2048.o512.k1x1.p3.s2"].params
    assert (p.kh, p.kw, p.padding, p.stride, p.n, p.out_hw) == (1, 1, (3, 3), (2, 2), 8, (7, 7))
    # DeepSpeech 2's first layer feeds the second: 161x700 -> 79x341
    assert d["deepbench.161x700.c1.o32.k5x20.s2"].params.out_hw == (79, 341)
    assert len(d) >= 5


def test_models_ids_unique_readable_and_batch_settable():
    cases = get_suite("models")
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+(\.[a-z0-9_x]+)+", i) for i in ids), ids
    assert all(any(t.startswith("model:") for t in c.tags) for c in cases)
    c = next(c for c in cases if c.id == "resnet50.layer1.0.conv2")
    assert c.with_batch(32).params.macs == 32 * c.params.macs and c.with_batch(32).id == c.id


def test_dedupe_counts_repeated_layers():
    # a planted duplicate: three identical layers collapse into one case counted three times
    from convbench.cases.catalogue.models import _dedupe
    from convbench.ops.conv2d import Conv2dParams

    p = Conv2dParams(n=1, c=4, h=8, w=8, o=4, kh=3, kw=3)
    q = Conv2dParams(n=1, c=4, h=8, w=8, o=8, kh=3, kw=3)
    out = _dedupe("toy", [("a", p), ("b", q), ("c", p), ("d", p)])
    assert [(c.id, c.count) for c in out] == [("toy.a", 3), ("toy.b", 1)]


def test_unknown_model_names_the_argument():
    with pytest.raises(ValueError, match="model must be one of .*'resnet5'"):
        model_cases("resnet5")


def test_scaling_sweeps_vary_one_dimension_geometrically():
    cases = get_suite("scaling")
    sweeps: dict[str, list] = {}
    for c in cases:
        sweep = next(t.split(":")[1] for t in c.tags if t.startswith("sweep:"))
        value = int(next(t.split(":")[1] for t in c.tags if t.startswith("value:")))
        assert c.id == f"scale.{sweep}.{value}"
        sweeps.setdefault(sweep, []).append((value, c.params))
    assert set(sweeps) == {"batch", "hw", "channels", "kernel"}
    base_macs = 4 * 32 * 32 * 32 * 32 * 9
    for value, p in sweeps["batch"]:
        assert p.macs == base_macs * value // SCALING_BASE["n"]
    for value, p in sweeps["hw"]:
        assert p.out_hw == (value, value) and p.macs == base_macs * value**2 // 32**2
    for value, p in sweeps["channels"]:
        assert p.macs == base_macs * value**2 // 32**2
    for value, p in sweeps["kernel"]:
        assert p.out_hw == (32, 32) and p.macs == base_macs * value**2 // 9
    for dim in ("batch", "hw", "channels"):
        vals = [v for v, _ in sweeps[dim]]
        assert all(b == 2 * a for a, b in zip(vals, vals[1:])), (dim, vals)
    # small enough for NumPy: at most ~2.5 GMACs (well under a second of BLAS)
    assert max(c.params.macs for c in cases) <= 2.5e9


def test_resnet50_suite_is_the_models_rows_at_batch_8():
    suite = get_suite("resnet50")
    rows = model_cases("resnet50")
    assert [c.id for c in suite] == [c.id for c in rows]
    assert {c.params.n for c in suite} == {8}
    assert [c.params.descriptor.replace("n8", "n1", 1) for c in suite] == [c.params.descriptor for c in rows]
    assert sum(c.count for c in suite) == 53
    assert sum(c.count * c.params.macs for c in suite) == 8 * _total_macs("resnet50")
