"""Case descriptors and suites."""
from __future__ import annotations

import pytest

from convbench import ParamError
from convbench.cases import cases_from, get_suite, parse_descriptor, suite, suite_names, table


@pytest.mark.parametrize("text,expect", [
    ("n8c64h56w56o64k3s1p1", dict(n=8, c=64, h=56, w=56, o=64, kh=3, kw=3, stride=(1, 1), padding=(1, 1))),
    ("c64h56o64w56k3p1s1n8", dict(n=8, c=64, h=56, w=56, o=64, kh=3, kw=3, stride=(1, 1), padding=(1, 1))),
    ("n2c6h7w10o6kh3kw2sh2sw1ph1pw0dh2dw1g3nb",
     dict(n=2, c=6, h=7, w=10, o=6, kh=3, kw=2, stride=(2, 1), padding=(1, 0), dilation=(2, 1), groups=3, bias=False)),
    ("c3h8w8o2k3psame", dict(n=1, padding="same", stride=(1, 1), dilation=(1, 1), groups=1, bias=True)),
    ("c3h8w8o2k3pvalid", dict(padding="valid")),
])
def test_descriptor_parses(text, expect):
    p = parse_descriptor(text).params
    for k, v in expect.items():
        assert getattr(p, k) == v, (k, getattr(p, k), v)


def test_descriptor_dtype():
    assert parse_descriptor("c3h8w8o2k3dt64").dtype == "float64"
    assert parse_descriptor("c3h8w8o2k3").dtype == "float32"
    c = parse_descriptor("c3h8w8o2k3dt64")
    assert parse_descriptor(c.descriptor) == c


@pytest.mark.parametrize("text,fragment", [
    ("n8c64x3h5w5o2k3", "'x3' at position 5"),
    ("n8c64h5w5o2", "kernel size"),
    ("n8h5w5o2k3", "needs key 'c'"),
    ("c3h8w8o2k3dt16", "dt32 or dt64"),
    ("c3h8w8o2k3k5", "given twice"),
    ("c3h8w8o2k3s0", "stride"),
    ("c3h8w8o2k3l5", "do not apply to conv2d"),
    ("", "empty"),
    ("c3h8w8o2k3psomething", "position"),
])
def test_malformed_descriptor_points_at_the_token(text, fragment):
    with pytest.raises(ParamError, match=fragment.replace("(", r"\(")):
        parse_descriptor(text)


def test_suites_exist_and_ids_are_unique():
    assert {"edge", "quick"} <= set(suite_names("conv2d"))
    for name in suite_names("conv2d"):
        ids = [c.id for c in get_suite(name)]
        assert len(ids) == len(set(ids)), name


def test_edge_suite_covers_what_the_issue_lists():
    edge = get_suite("edge")
    feats = set().union(*(c.params.features() for c in edge))
    assert {"stride", "padding", "asymmetric_padding", "padding_same", "padding_valid", "dilation",
            "groups", "no_bias", "rectangular", "bias"} <= feats
    ps = [c.params for c in edge]
    assert any(p.groups == p.c == p.o for p in ps)  # depthwise
    assert any(p.kh == p.kw == 1 for p in ps)
    assert any(p.n == 1 for p in ps) and any(p.n > 1 for p in ps)
    assert any(p.h != p.w for p in ps)
    assert any((p.h + sum(p.pads[:2]) - (p.dilation[0] * (p.kh - 1) + 1)) % p.stride[0] for p in ps)
    assert any(not isinstance(p.padding, str) and p.padding[0] != p.padding[1] for p in ps)


def test_cases_from_combines_suites_and_descriptors_without_duplicates():
    cs = cases_from("conv2d", ["edge"], ["n1c2h5w5o3k3p1", "c3h8w8o2k3"])
    assert len(cs) == len(get_suite("edge")) + 1  # the first descriptor is edge's batch1.pad1
    assert cases_from("conv2d") == get_suite("quick")


def test_unknown_suite_names_the_known_ones():
    with pytest.raises(ParamError, match="known: .*edge"):
        get_suite("nonesuch")


def test_with_batch():
    c = get_suite("quick")[0]
    assert c.with_batch(32).params.n == 32 and c.with_batch(32).id == c.id


def test_a_suite_registered_outside_the_catalogue_is_found_by_name():
    @suite("max_pool2d", "mine")
    def mine():
        return [parse_descriptor("n1c2h6w6k2", "max_pool2d")]

    try:
        assert "mine" in suite_names("max_pool2d") and "mine" not in suite_names("conv2d")
        assert [c.descriptor for c in cases_from("max_pool2d", ["mine"])] == [mine()[0].descriptor]
    finally:
        del table._SUITES[("max_pool2d", "mine")]
    with pytest.raises(ParamError, match="suite 'mine' is not defined for max_pool2d"):
        get_suite("mine", "max_pool2d")


def test_a_descriptor_with_a_non_ascii_digit_is_refused_naming_it():
    # "n１c2..." (a fullwidth one) was read as n1 by int()
    with pytest.raises(ParamError, match="'１' at position 1 is not ASCII"):
        parse_descriptor("n１c2h6w6o2k3")
