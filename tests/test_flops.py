"""Analytic FLOPs per direction against torch.utils.flop_counter.FlopCounterMode.

FlopCounterMode counts the convolution proper (2 FLOPs per multiply-accumulate) and ignores the
bias, so the comparison is with ``Conv2dParams.flops`` less the bias term. Each direction is
counted on its own: ``aten.convolution_backward`` is called with one output mask at a time.

Finding: forward and grad_input agree on every shape. For grad_weight, FlopCounterMode (torch
2.13, ``conv_backward_flop``) counts ``2*N*O*C*kh*kw*OH*OW``: it treats the weight gradient as a
convolution of the transposed input with the transposed grad_output and loses the ``1/groups``,
so it overcounts grouped calls by a factor ``groups``. DESIGN's ``2*N*O*(C/g)*kh*kw*OH*OW`` is
the true count (each of the ``O*(C/g)*kh*kw`` weight-gradient entries is a sum of ``N*OH*OW``
products), confirmed below by counting the products of the definition directly.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from convbench.cases import parse_descriptor

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

SHAPES = [
    "n1c3h8w8o4k3",
    "n2c4h9w9o6k3p1",
    "n2c6h11w9o4kh3kw2sh2sw3ph1pw0dh1dw2g2nb",
    "n2c6h9w9o4k3s2p1d2g2",
    "n1c8h16w16o8k3p1g8",            # depthwise
    "n2c4h16w16o8k3p1g4",            # depthwise, multiplier 2
    "n3c5h7w10o7kh2kw4s1",
    "n1c16h14w14o32k1",
    "n1c16h14w14o32k1s2",
    "n2c3h32w32o16k7s2p3",
    "n1c4h10w10o4k3d3",
    "n1c4h12w13o6kh3kw3dh2dw1ph2pw1",
    "n2c6h8w8o9k3g3p1",
    "n1c2h5w5o3k5",                  # kernel == input
    "n1c2h3w3o3k3p3",                # padding larger than the input
    "n4c8h6w6o8k2s2",
    "n1c12h9w9o12k3s3g4",
    "n2c4h20w6o2kh5kw1sh3sw1ph2pw0",
    "n1c6h8w8o6k3psame",
    "n1c4h9w8o4kh4kw2psame",         # asymmetric 'same' padding
    "n1c4h9w9o8k3psamed2",
    "n1c4h7w7o4k3pvalid",
    "n5c1h1w1o1k1",
    "n2c10h15w15o20k3s2p1g5nb",
]


def _tensors(p):
    x = torch.randn(p.n, p.c, p.h, p.w, dtype=torch.float64)
    w = torch.randn(p.o, p.c // p.groups, p.kh, p.kw, dtype=torch.float64)
    pt, pb, pl, pr = p.pads
    if pt != pb or pl != pr:  # torch takes symmetric padding only: pad explicitly
        x = torch.nn.functional.pad(x, (pl, pr, pt, pb))
        pad = (0, 0)
    else:
        pad = (pt, pl)
    return x, w, pad


def torch_counts(p):
    """FlopCounterMode's count for forward, grad_input and grad_weight (bias excluded)."""
    x, w, pad = _tensors(p)
    with FlopCounterMode(display=False) as m:
        y = torch.nn.functional.conv2d(x, w, None, stride=p.stride, padding=pad, dilation=p.dilation, groups=p.groups)
    out = {"forward": m.get_total_flops()}
    dy = torch.randn_like(y)
    for name, mask in (("grad_input", [True, False, False]), ("grad_weight", [False, True, False])):
        with FlopCounterMode(display=False) as m:
            torch.ops.aten.convolution_backward(dy, x, w, None, list(p.stride), list(pad), list(p.dilation),
                                                False, [0, 0], p.groups, mask)
        out[name] = m.get_total_flops()
    return out


def ours(p, direction):
    bias = p.n * p.o * p.out_hw[0] * p.out_hw[1] if (p.bias and direction == "forward") else 0
    return p.flops(direction) - bias


def test_at_least_twenty_shapes_with_every_feature():
    feats = set()
    for d in SHAPES:
        feats |= parse_descriptor(d).params.features()
    assert len(SHAPES) >= 20
    assert {"stride", "padding", "dilation", "groups", "asymmetric_padding", "no_bias"} <= feats


@pytest.mark.parametrize("desc", SHAPES)
def test_forward_and_grad_input_equal_flop_counter_mode(desc):
    p = parse_descriptor(desc).params
    t = torch_counts(p)
    assert ours(p, "forward") == t["forward"]
    assert ours(p, "grad_input") == t["grad_input"]


@pytest.mark.parametrize("desc", SHAPES)
def test_grad_weight_equals_flop_counter_mode_up_to_its_groups_overcount(desc):
    p = parse_descriptor(desc).params
    t = torch_counts(p)
    if p.groups == 1:
        assert ours(p, "grad_weight") == t["grad_weight"]
    else:
        # torch 2.13's conv_backward_flop drops 1/groups for the weight gradient
        assert t["grad_weight"] == p.groups * ours(p, "grad_weight")


def test_backward_is_the_sum_of_its_gradients():
    for d in SHAPES:
        p = parse_descriptor(d).params
        assert p.flops("backward") == p.flops("grad_input") + p.flops("grad_weight") + p.flops("grad_bias")


def _products_of_the_definition(p):
    """Multiply-accumulates of every direction, counted by enumerating the definition's index space."""
    (sh, sw), (dh, dw), (oh, ow) = p.stride, p.dilation, p.out_hw
    cg, og = p.c // p.groups, p.o // p.groups
    n_all = 0
    for n, o, i, j, c, u, v in itertools.product(range(p.n), range(p.o), range(oh), range(ow), range(cg),
                                                 range(p.kh), range(p.kw)):
        n_all += 1  # one x*w product per (output, c, tap): padded taps included, as in GEMM lowerings
    return n_all


@pytest.mark.parametrize("desc", ["n2c6h9w9o4k3s2p1d2g2", "n1c4h6w6o4k3p1g4", "n2c4h5w5o6k2g2"])
def test_grouped_grad_weight_count_is_the_definitions(desc):
    """Against the torch overcount: each weight-gradient entry sums N*OH*OW products, no more."""
    p = parse_descriptor(desc).params
    macs = _products_of_the_definition(p)
    oh, ow = p.out_hw
    entries = p.o * (p.c // p.groups) * p.kh * p.kw
    assert macs == entries * p.n * oh * ow
    assert ours(p, "grad_weight") == 2 * macs == ours(p, "forward")


def test_a_wrong_formula_is_caught():
    """Planted bug: forgetting the groups in the forward count fails against FlopCounterMode."""
    p = parse_descriptor("n1c8h16w16o8k3p1g8").params
    oh, ow = p.out_hw
    wrong = 2 * p.n * p.o * p.c * p.kh * p.kw * oh * ow
    assert wrong != torch_counts(p)["forward"]


def test_bytes_min_counts_every_array_once():
    p = parse_descriptor("n2c4h9w9o6k3p1").params
    s = p.shapes()
    size = {k: int(np.prod(v)) for k, v in s.items()}
    assert p.bytes_min("forward", 4) == 4 * (size["x"] + size["w"] + size["b"] + size["y"])
    assert p.bytes_min("backward", 8) == 8 * (size["dy"] + size["x"] + size["w"] + size["grad_input"]
                                             + size["grad_weight"] + size["grad_bias"])
