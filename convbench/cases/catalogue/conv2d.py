"""The suites of the catalogue (registered with :func:`convbench.cases.table.suite`)."""
from __future__ import annotations

from convbench.cases.case import Case, conv
from convbench.cases.table import suite


@suite("conv2d", "edge")
def conv2d_edge() -> list[Case]:
    """Small cases covering every parameter and its corner: checked by every implementation."""
    return [
        conv("basic.3x3", n=2, c=3, h=7, w=7, o=4, k=3),
        conv("batch1.pad1", n=1, c=2, h=5, w=5, o=3, k=3, padding=1),
        conv("nonsquare.input", n=2, c=3, h=5, w=9, o=2, k=3, padding=1),
        conv("nonsquare.kernel", n=2, c=2, h=6, w=7, o=3, kh=3, kw=2),
        conv("nonsquare.stride", n=2, c=2, h=9, w=8, o=2, k=3, stride=(2, 1), padding=1),
        conv("stride.remainder", n=2, c=3, h=8, w=8, o=2, k=3, stride=2),  # (8-3) % 2 != 0
        conv("stride3.remainder", n=1, c=2, h=10, w=11, o=2, k=2, stride=3, padding=1),
        conv("pad.same.odd", n=2, c=3, h=6, w=5, o=4, k=3, padding="same"),
        conv("pad.same.even", n=1, c=2, h=6, w=7, o=2, kh=4, kw=2, padding="same"),  # asymmetric
        conv("pad.same.dilated", n=1, c=2, h=9, w=8, o=2, k=3, padding="same", dilation=2),
        conv("pad.valid", n=2, c=2, h=6, w=6, o=3, k=3, padding="valid"),
        conv("pad.pair", n=2, c=2, h=5, w=6, o=2, k=3, padding=(2, 0)),
        conv("pad.large", n=1, c=1, h=3, w=3, o=2, k=3, padding=3),
        conv("dilation2", n=2, c=2, h=9, w=9, o=3, k=3, dilation=2),
        conv("dilation.pair", n=1, c=2, h=9, w=10, o=2, kh=2, kw=3, dilation=(3, 2), padding=1, stride=2),
        conv("groups2", n=2, c=4, h=6, w=6, o=6, k=3, groups=2, padding=1),
        conv("depthwise", n=2, c=4, h=7, w=6, o=4, k=3, groups=4, padding=1),
        conv("depthwise.mult2.s2", n=1, c=3, h=8, w=8, o=6, k=3, groups=3, stride=2),
        conv("nobias", n=2, c=3, h=5, w=5, o=2, k=3, bias=False),
        conv("k1x1", n=2, c=5, h=4, w=3, o=3, k=1),
        conv("k1x1.s2.p1", n=1, c=3, h=7, w=7, o=2, k=1, stride=2, padding=1),
        conv("kernel.eq.input", n=2, c=2, h=4, w=5, o=3, kh=4, kw=5),
        conv("single.pixel.out", n=1, c=1, h=1, w=1, o=1, k=1),
        conv("all.at.once", n=2, c=6, h=7, w=10, o=6, kh=3, kw=2, stride=(2, 1), padding=(1, 0),
             dilation=(2, 1), groups=3, bias=False),
        # one channel in (a single-channel function's cases), batches of 3 and more (code that
        # breaks only there), and the float64 a course layer may compute in
        conv("single.channel.b3", n=3, c=1, h=7, w=6, o=1, k=3, bias=False),
        conv("single.channel.s2p1", n=1, c=1, h=8, w=9, o=2, kh=3, kw=2, stride=2, padding=1, bias=False),
        conv("batch4.pad1", n=4, c=2, h=6, w=5, o=3, k=3, padding=1),
        conv("float64.basic", n=2, c=3, h=7, w=7, o=4, k=3, dtype="float64"),
        conv("float64.b3.s2p1", n=3, c=2, h=8, w=7, o=3, k=3, stride=2, padding=1, dtype="float64"),
    ]


@suite("conv2d", "quick")
def conv2d_quick() -> list[Case]:
    """Small real-world shapes for `make run`: a course CNN, ResNet-style blocks, a depthwise layer."""
    return [
        conv("cifar.conv1", n=8, c=3, h=32, w=32, o=32, k=3, padding=1, tags=("small",)),
        conv("cifar.conv2", n=8, c=32, h=16, w=16, o=64, k=3, padding=1, tags=("small",)),
        conv("lenet.conv1", n=8, c=1, h=32, w=32, o=6, k=5, tags=("small",)),
        conv("resnet.3x3.c64.28", n=4, c=64, h=28, w=28, o=64, k=3, padding=1),
        conv("resnet.1x1.c256.14", n=4, c=256, h=14, w=14, o=64, k=1),
        conv("resnet.stem.7x7.s2", n=1, c=3, h=112, w=112, o=64, k=7, stride=2, padding=3),
        conv("mobilenet.dw.3x3.c96", n=4, c=96, h=28, w=28, o=96, k=3, padding=1, groups=96),
    ]
