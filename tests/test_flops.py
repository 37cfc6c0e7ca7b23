"""FLOPs per direction of conv2d and conv1d against counts made by running convolutions.

The independent count: with the input padded explicitly by ones (a padded tap is a product like
any other, as in GEMM lowerings) and weights and ``dy`` of ones, every element of a result is the
number of products summed into it, so the sum of the forward's output is the forward's
multiply-accumulates, the sum of ``grad_input`` those of the input gradient, the sum of
``grad_weight`` those of the weight gradient, and ``dy``'s size the additions of ``grad_bias``.
torch computes the three (each direction its own kernel), over the catalogue's cases: every
parameter and corner (``edge``, ``random``), small real layers (``quick``), ResNet-50's and
MobileNetV2's layers at batch 1.

torch.utils.flop_counter.FlopCounterMode, on meta tensors, counts the same but for one known
difference, pinned once below: for ``grad_weight`` (torch 2.13, ``conv_backward_flop``) it
treats the weight gradient as a convolution of the transposed input with the transposed
``grad_output`` and loses the ``1/groups``, overcounting grouped calls by the factor ``groups``.
"""
from __future__ import annotations

import dataclasses

import pytest

from convbench.cases import Case, get_suite
from convbench.cases.catalogue.models import model_cases
from convbench.ops import Conv1dParams, Conv2dParams

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

CONV2D = [*get_suite("edge"), *get_suite("random"), *get_suite("quick"),
          *model_cases("resnet50"), *model_cases("mobilenetv2")]
CONV1D = [*get_suite("edge", "conv1d"), *get_suite("quick", "conv1d")]
CASES = CONV2D + CONV1D


def _geometry(p: Conv2dParams | Conv1dParams) -> tuple[list[int], list[int], tuple[int, ...]]:
    """stride, dilation, and the padding in ``torch.nn.functional.pad``'s order (last dim first)."""
    if isinstance(p, Conv1dParams):
        return [p.stride], [p.dilation], p.pads
    pt, pb, pl, pr = p.pads
    return list(p.stride), list(p.dilation), (pl, pr, pt, pb)


def counted(p: Conv2dParams | Conv1dParams) -> dict[str, int]:
    """Products (and, for grad_bias, additions) of each direction, counted by running it on ones."""
    shp = p.shapes()
    stride, dilation, pad = _geometry(p)
    x = torch.nn.functional.pad(torch.ones(shp["x"]), pad, value=1.0)
    w = torch.ones(shp["w"])
    zeros = [0] * len(stride)

    def backward(dy, mask):
        return torch.ops.aten.convolution_backward(dy, x, w, None, stride, zeros, dilation, False, zeros,
                                                   p.groups, mask)

    y = torch.ops.aten.convolution(x, w, None, stride, zeros, dilation, False, zeros, p.groups)
    dy = torch.ones_like(y)
    total = {"forward": y, "grad_input": backward(dy, [True, False, False])[0],
             "grad_weight": backward(dy, [False, True, False])[1]}
    # every count is a small integer, exact in float32; the sums are taken in int64
    out = {k: int(v.to(torch.int64).sum()) for k, v in total.items()}
    out["grad_bias"] = dy.numel() if p.bias else 0
    return out


def flops_from_counts(c: dict[str, int]) -> dict[str, int]:
    """FLOPs of each direction: two per multiply-accumulate, one per bias addition."""
    out = {"forward": 2 * c["forward"] + c["grad_bias"], "grad_input": 2 * c["grad_input"],
           "grad_weight": 2 * c["grad_weight"], "grad_bias": c["grad_bias"]}
    out["backward"] = out["grad_input"] + out["grad_weight"] + out["grad_bias"]
    return out


def mismatches(p: Conv2dParams | Conv1dParams) -> dict[str, tuple[int, int]]:
    """Directions where ``p.flops`` differs from the counted figure: {direction: (ours, counted)}."""
    want = flops_from_counts(counted(p))
    return {d: (p.flops(d), n) for d, n in want.items() if p.flops(d) != n}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.op}-{c.id}" for c in CASES])
def test_flops_equal_the_products_a_convolution_makes(case: Case):
    assert mismatches(case.params) == {}


def test_a_count_that_forgets_the_groups_is_caught(monkeypatch):
    """Planted bug: the forward's multiply-accumulates without the ``1/groups``."""
    def macs(self):
        oh, ow = self.out_hw
        return self.n * self.o * self.c * self.kh * self.kw * oh * ow

    monkeypatch.setattr(Conv2dParams, "macs", property(macs))
    grouped = [c.params for c in CONV2D if c.params.groups > 1]
    ungrouped = [c.params for c in CONV2D if c.params.groups == 1][:5]
    assert grouped and all(set(mismatches(p)) == {"forward", "grad_input", "grad_weight", "backward"}
                           for p in grouped)
    assert all(mismatches(p) == {} for p in ungrouped)


@pytest.mark.parametrize("direction", ["grad_input", "grad_weight", "grad_bias"])
def test_a_direction_miscounted_is_named(monkeypatch, direction):
    """Planted bug: one gradient's FLOPs off by one; only it and the backward total are named."""
    real = Conv2dParams.flops

    def flops(self, d):
        return real(self, d) + (d in (direction, "backward"))

    monkeypatch.setattr(Conv2dParams, "flops", flops)
    p = get_suite("quick")[0].params
    assert set(mismatches(p)) == {direction, "backward"}


def flop_counter_mode(p: Conv2dParams) -> dict[str, int]:
    """FlopCounterMode's count for forward, grad_input and grad_weight, on meta tensors."""
    stride, dilation, _ = _geometry(p)
    pt, pb, pl, pr = p.pads
    x = torch.empty(p.n, p.c, p.h + pt + pb, p.w + pl + pr, device="meta")
    w = torch.empty(p.shapes()["w"], device="meta")
    with FlopCounterMode(display=False) as m:
        y = torch.nn.functional.conv2d(x, w, None, stride=stride, dilation=dilation, groups=p.groups)
    out = {"forward": m.get_total_flops()}
    dy = torch.empty_like(y)
    for name, mask in (("grad_input", [True, False, False]), ("grad_weight", [False, True, False])):
        with FlopCounterMode(display=False) as m:
            torch.ops.aten.convolution_backward(dy, x, w, None, stride, [0, 0], dilation, False, [0, 0],
                                                p.groups, mask)
        out[name] = m.get_total_flops()
    return out


@pytest.mark.parametrize("case", [c for c in get_suite("models") if c.params.groups == 1], ids=lambda c: c.id)
def test_torch_flop_counter_agrees_on_ungrouped_layers(case: Case):
    p = case.params
    t = flop_counter_mode(p)
    assert t == {d: p.flops(d) - (p.flops("grad_bias") if d == "forward" else 0) for d in t}


def test_torch_flop_counter_overcounts_a_grouped_weight_gradient_by_the_groups():
    """Pinned: torch 2.13 drops the 1/groups of grad_weight; forward and grad_input agree. If this
    fails after a torch upgrade, torch has fixed its count and the module docstring is stale."""
    p = dataclasses.replace(get_suite("edge")[0].params, c=6, o=9, groups=3)
    t = flop_counter_mode(p)
    assert (t["forward"], t["grad_input"]) == (p.flops("forward") - p.flops("grad_bias"), p.flops("grad_input"))
    assert t["grad_weight"] == 3 * p.flops("grad_weight") == 3 * flops_from_counts(counted(p))["grad_weight"]
