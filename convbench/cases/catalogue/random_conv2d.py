"""The ``random`` suite: seeded random small conv2d calls covering every parameter together.

The same seed gives the same cases on every machine, so a failure reproduces by its descriptor.
Cases carry the tag ``random``: the verifier shrinks their failures to the smallest failing case.
"""
from __future__ import annotations

import random

from convbench._errors import ParamError
from convbench.cases.case import Case
from convbench.cases.table import suite
from convbench.ops.conv2d import Conv2dParams

__all__ = ["random_conv2d_params", "conv2d_random"]

SEED = 1234
COUNT = 40


def random_conv2d_params(rng: random.Random) -> Conv2dParams:
    """One valid small conv2d call drawn from ``rng`` (redrawn until valid)."""
    while True:
        g = rng.choice([1, 1, 1, 2, 3])
        c = g * rng.randint(1, 3)
        o = g * rng.randint(1, 3)
        kh, kw = rng.randint(1, 4), rng.choice([None, rng.randint(1, 4)])
        kw = kh if kw is None else kw
        sh, sw = rng.choice([(1, 1), (1, 1), (2, 2), (2, 1), (1, 3), (3, 3)])
        dil = rng.choice([(1, 1), (1, 1), (1, 1), (2, 2), (2, 1)])
        pad = rng.choice([(0, 0), (1, 1), (2, 1), (0, 2), "same", "valid"])
        if pad == "same" and (sh, sw) != (1, 1):
            pad = (1, 1)
        try:
            return Conv2dParams(n=rng.randint(1, 3), c=c, h=rng.randint(1, 9), w=rng.randint(1, 9), o=o,
                                kh=kh, kw=kw, stride=(sh, sw), padding=pad, dilation=dil, groups=g,
                                bias=rng.random() < 0.75)
        except ParamError:
            continue


@suite("conv2d", "random")
def conv2d_random() -> list[Case]:
    """40 seeded random small cases, a quarter of them float64."""
    rng = random.Random(SEED)
    out = []
    for i in range(COUNT):
        p = random_conv2d_params(rng)
        dtype = "float64" if rng.random() < 0.25 else "float32"
        out.append(Case(id=f"random.{i:02d}.{p.descriptor}", params=p, dtype=dtype, tags=("random",)))
    return out
