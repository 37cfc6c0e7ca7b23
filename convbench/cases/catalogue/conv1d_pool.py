"""The suites of conv1d, max_pool2d and avg_pool2d (registered with :func:`convbench.cases.table.suite`)."""
from __future__ import annotations

from typing import Any

from convbench.cases.case import Case
from convbench.cases.table import suite
from convbench.ops.avg_pool2d import AvgPool2dParams
from convbench.ops.conv1d import Conv1dParams
from convbench.ops.max_pool2d import MaxPool2dParams

__all__ = ["conv1d_case", "max_pool", "avg_pool"]


def _kernel(kw: dict[str, Any]) -> dict[str, Any]:
    if "k" in kw:
        kw["kh"] = kw["kw"] = kw.pop("k")
    return kw


def conv1d_case(id: str, dtype: str = "float32", count: int = 1, tags: tuple[str, ...] = (), **kw: Any) -> Case:
    """A conv1d case from keyword parameters (``n, c, l, o, k, stride, padding, ...``)."""
    return Case(id=id, params=Conv1dParams(**kw), dtype=dtype, count=count, tags=tags)


def max_pool(id: str, dtype: str = "float32", count: int = 1, tags: tuple[str, ...] = (), **kw: Any) -> Case:
    """A max_pool2d case from keyword parameters (``n, c, h, w, k`` or ``kh, kw``, ...)."""
    return Case(id=id, params=MaxPool2dParams(**_kernel(kw)), dtype=dtype, count=count, tags=tags)


def avg_pool(id: str, dtype: str = "float32", count: int = 1, tags: tuple[str, ...] = (), **kw: Any) -> Case:
    """An avg_pool2d case from keyword parameters (``n, c, h, w, k`` or ``kh, kw``, ...)."""
    return Case(id=id, params=AvgPool2dParams(**_kernel(kw)), dtype=dtype, count=count, tags=tags)


# --- conv1d ----------------------------------------------------------------------------------

@suite("conv1d", "edge")
def conv1d_edge() -> list[Case]:
    """Small cases covering every parameter and its corner."""
    c = conv1d_case
    return [
        c("basic.k3", n=2, c=3, l=11, o=4, k=3),
        c("pad1", n=1, c=2, l=7, o=3, k=3, padding=1),
        c("stride.remainder", n=2, c=3, l=12, o=2, k=3, stride=2),  # (12-3) % 2 != 0
        c("stride3.pad", n=1, c=2, l=13, o=2, k=2, stride=3, padding=1),
        c("pad.same.odd", n=2, c=3, l=9, o=4, k=3, padding="same"),
        c("pad.same.even", n=1, c=2, l=10, o=2, k=4, padding="same"),  # asymmetric
        c("pad.same.dilated", n=1, c=2, l=12, o=2, k=3, padding="same", dilation=3),
        c("pad.valid", n=2, c=2, l=8, o=3, k=3, padding="valid"),
        c("pad.large", n=1, c=1, l=3, o=2, k=3, padding=3),
        c("dilation2", n=2, c=2, l=15, o=3, k=3, dilation=2),
        c("dilation.stride.pad", n=1, c=2, l=17, o=2, k=4, dilation=3, stride=2, padding=2),
        c("groups2", n=2, c=4, l=9, o=6, k=3, groups=2, padding=1),
        c("depthwise", n=2, c=4, l=10, o=4, k=5, groups=4, padding=2),
        c("nobias", n=2, c=3, l=8, o=2, k=3, bias=False),
        c("k1", n=2, c=5, l=6, o=3, k=1),
        c("kernel.eq.input", n=2, c=2, l=5, o=3, k=5),
        c("single.out", n=1, c=1, l=1, o=1, k=1),
        c("all.at.once", n=2, c=6, l=19, o=6, k=3, stride=2, padding=1, dilation=2, groups=3, bias=False),
        c("batch3.pad1", n=3, c=2, l=9, o=3, k=3, padding=1),
        c("float64.basic", n=2, c=3, l=11, o=4, k=3, stride=2, dtype="float64"),
    ]


@suite("conv1d", "quick")
def conv1d_quick() -> list[Case]:
    """Small real-world shapes: a text CNN, a temporal conv block, a strided audio front end, depthwise."""
    c = conv1d_case
    return [
        c("textcnn.k3", n=16, c=128, l=64, o=100, k=3, tags=("small",)),
        c("textcnn.k5", n=16, c=128, l=64, o=100, k=5, tags=("small",)),
        c("tcn.k3.d4", n=8, c=64, l=256, o=64, k=3, dilation=4, padding="same"),
        c("audio.frontend.k9.s4", n=8, c=1, l=2048, o=32, k=9, stride=4, padding=4),
        c("separable.dw.k5", n=4, c=128, l=256, o=128, k=5, padding=2, groups=128),
    ]


@suite("conv1d", "models")
def conv1d_models() -> list[Case]:
    """wav2vec 2.0's feature encoder (one second of 16 kHz audio) and a ConvTasNet-style separable block."""
    c = conv1d_case
    w2v = ("model:wav2vec2",)
    return [
        c("wav2vec2.fe.conv0", n=1, c=1, l=16000, o=512, k=10, stride=5, bias=False, tags=w2v),
        c("wav2vec2.fe.conv1", n=1, c=512, l=3199, o=512, k=3, stride=2, bias=False, tags=w2v),
        c("wav2vec2.fe.conv6", n=1, c=512, l=99, o=512, k=2, stride=2, bias=False, tags=w2v),
        c("wav2vec2.posconv", n=1, c=768, l=49, o=768, k=128, padding=64, groups=16, tags=w2v),
        c("convtasnet.dw.d8", n=1, c=512, l=3999, o=512, k=3, dilation=8, padding=8, groups=512,
          tags=("model:convtasnet",)),
    ]


@suite("conv1d", "scaling")
def conv1d_scaling() -> list[Case]:
    """Sequence length doubling at fixed channels: time should grow linearly."""
    return [conv1d_case(f"c64.k3.l{n}", n=4, c=64, l=n, o=64, k=3, padding=1, tags=("scaling",))
            for n in (64, 128, 256, 512, 1024, 2048, 4096)]


# --- max_pool2d ------------------------------------------------------------------------------

@suite("max_pool2d", "edge")
def max_pool2d_edge() -> list[Case]:
    """Every parameter and its corner. The exact fill of max_pool2d is tie-heavy (values in [-3, 3]),
    so every case also checks which of tied maxima gets the gradient; ``ties.*`` are there for it."""
    m = max_pool
    return [
        m("k2s2", n=2, c=3, h=8, w=8, k=2),
        m("k2s2.odd.input", n=2, c=2, h=7, w=9, k=2),  # floor drops the last row/column
        m("overlap.k3s2", n=2, c=3, h=9, w=9, k=3, stride=2),  # AlexNet's overlapping pools
        m("overlap.k3s1", n=1, c=2, h=6, w=7, k=3, stride=1),
        m("stride.gt.kernel", n=1, c=2, h=10, w=11, k=2, stride=3),
        m("pad.max.k3p1.s2", n=2, c=2, h=7, w=8, k=3, stride=2, padding=1),  # ResNet's stem pool
        m("pad.max.k5p2", n=1, c=2, h=6, w=6, k=5, stride=1, padding=2),
        m("pad.max.k2p1", n=1, c=2, h=5, w=6, k=2, padding=1),
        m("ceil.past.edge", n=2, c=2, h=8, w=8, k=3, stride=2, ceil_mode=True),
        m("ceil.pad.last.dropped", n=1, c=2, h=5, w=6, k=2, stride=2, padding=1, ceil_mode=True),
        m("ceil.exact.fit", n=1, c=2, h=9, w=9, k=3, stride=2, ceil_mode=True),
        m("ceil.k3s2p1", n=1, c=3, h=10, w=7, k=3, stride=2, padding=1, ceil_mode=True),
        m("dilation2", n=2, c=2, h=9, w=9, k=3, stride=1, dilation=2),
        m("dilation.pair.pad.ceil", n=1, c=2, h=11, w=9, k=3, stride=2, padding=1, dilation=(2, 1),
          ceil_mode=True),
        m("rectangular", n=2, c=2, h=9, w=8, kh=3, kw=2, stride=(2, 1), padding=(1, 0)),
        m("kernel.eq.input", n=2, c=3, h=4, w=5, kh=4, kw=5),  # global max pool
        m("k1.identity", n=1, c=2, h=4, w=3, k=1),
        m("batch3.k3s2p1", n=3, c=2, h=7, w=7, k=3, stride=2, padding=1),
        m("rect.default.stride", n=1, c=2, h=4, w=9, kh=2, kw=3),  # stride (2, 3): not kernel_size[0]
        m("float64.k2", n=2, c=2, h=6, w=7, k=2, dtype="float64"),
        m("k1.s2", n=1, c=2, h=5, w=5, k=1, stride=2),
        m("ties.constant.blocks", n=2, c=4, h=6, w=6, k=2, tags=("ties",)),
        m("ties.overlap", n=2, c=4, h=7, w=7, k=3, stride=1, padding=1, tags=("ties",)),
    ]


@suite("max_pool2d", "quick")
def max_pool2d_quick() -> list[Case]:
    """Small real-world pools for `make run`."""
    m = max_pool
    return [
        m("cifar.k2s2.c32", n=8, c=32, h=32, w=32, k=2, tags=("small",)),
        m("resnet.stem.k3s2p1.c64.56", n=2, c=64, h=56, w=56, k=3, stride=2, padding=1),
        m("alexnet.k3s2.c192.27", n=4, c=192, h=27, w=27, k=3, stride=2),
        m("vgg.k2s2.c256.28", n=4, c=256, h=28, w=28, k=2),
    ]


@suite("max_pool2d", "models")
def max_pool2d_models() -> list[Case]:
    """The max pools of ResNet-50, VGG-16 and AlexNet (torchvision), batch 1, 224x224 images."""
    m = max_pool
    return [
        m("resnet50.maxpool", n=1, c=64, h=112, w=112, k=3, stride=2, padding=1, tags=("model:resnet50",)),
        m("vgg16.pool1", n=1, c=64, h=224, w=224, k=2, tags=("model:vgg16",)),
        m("vgg16.pool2", n=1, c=128, h=112, w=112, k=2, tags=("model:vgg16",)),
        m("vgg16.pool3", n=1, c=256, h=56, w=56, k=2, tags=("model:vgg16",)),
        m("vgg16.pool4", n=1, c=512, h=28, w=28, k=2, tags=("model:vgg16",)),
        m("vgg16.pool5", n=1, c=512, h=14, w=14, k=2, tags=("model:vgg16",)),
        m("alexnet.pool1", n=1, c=64, h=55, w=55, k=3, stride=2, tags=("model:alexnet",)),
        m("alexnet.pool2", n=1, c=192, h=27, w=27, k=3, stride=2, tags=("model:alexnet",)),
        m("alexnet.pool5", n=1, c=256, h=13, w=13, k=3, stride=2, tags=("model:alexnet",)),
    ]


@suite("max_pool2d", "scaling")
def max_pool2d_scaling() -> list[Case]:
    """ResNet's stem pool (3x3, stride 2, pad 1) as the image side doubles."""
    return [max_pool(f"k3s2p1.c64.h{s}", n=2, c=64, h=s, w=s, k=3, stride=2, padding=1, tags=("scaling",))
            for s in (14, 28, 56, 112, 224)]


# --- avg_pool2d ------------------------------------------------------------------------------

@suite("avg_pool2d", "edge")
def avg_pool2d_edge() -> list[Case]:
    """Every parameter and its corner, each padding case with count_include_pad both ways."""
    a = avg_pool
    return [
        a("k2s2", n=2, c=3, h=8, w=8, k=2),
        a("k2s2.odd.input", n=2, c=2, h=7, w=9, k=2),
        a("overlap.k3s2", n=2, c=3, h=9, w=9, k=3, stride=2),
        a("overlap.k3s1", n=1, c=2, h=6, w=7, k=3, stride=1),
        a("stride.gt.kernel", n=1, c=2, h=10, w=11, k=2, stride=3),
        a("pad1.cip1", n=2, c=2, h=7, w=7, k=3, stride=1, padding=1),
        a("pad1.cip0", n=2, c=2, h=7, w=7, k=3, stride=1, padding=1, count_include_pad=False),
        a("pad.max.k5p2.cip1", n=1, c=2, h=6, w=6, k=5, stride=2, padding=2),
        a("pad.max.k5p2.cip0", n=1, c=2, h=6, w=6, k=5, stride=2, padding=2, count_include_pad=False),
        a("ceil.past.edge", n=2, c=2, h=8, w=8, k=3, stride=2, ceil_mode=True),
        a("ceil.past.padded.edge.cip1", n=1, c=2, h=8, w=10, k=3, stride=2, padding=1, ceil_mode=True),
        a("ceil.past.padded.edge.cip0", n=1, c=2, h=8, w=10, k=3, stride=2, padding=1, ceil_mode=True,
          count_include_pad=False),
        a("ceil.pad.last.dropped", n=1, c=2, h=5, w=6, k=2, stride=2, padding=1, ceil_mode=True),
        a("divisor_override", n=2, c=2, h=7, w=7, k=3, stride=2, padding=1, divisor_override=4),
        a("divisor_override.ceil.cip0", n=1, c=2, h=8, w=8, k=3, stride=2, padding=1, ceil_mode=True,
          count_include_pad=False, divisor_override=7),
        a("rectangular.cip0", n=2, c=2, h=9, w=8, kh=3, kw=2, stride=(2, 1), padding=(1, 0),
          count_include_pad=False),
        a("global", n=2, c=3, h=7, w=7, k=7),  # ResNet's global average pool
        a("k1.identity", n=1, c=2, h=4, w=3, k=1),
        a("batch3.k3s2p1", n=3, c=2, h=7, w=7, k=3, stride=2, padding=1),
        a("rect.default.stride", n=2, c=2, h=4, w=9, kh=2, kw=3),  # stride (2, 3): not kernel_size[0]
        a("float64.k2", n=2, c=2, h=6, w=7, k=2, dtype="float64"),
    ]


@suite("avg_pool2d", "quick")
def avg_pool2d_quick() -> list[Case]:
    """Small real-world pools for `make run`."""
    a = avg_pool
    return [
        a("lenet.s2.c6", n=8, c=6, h=28, w=28, k=2, tags=("small",)),
        a("lenet.s4.c16", n=8, c=16, h=10, w=10, k=2, tags=("small",)),
        a("inception.k3s1p1.c192", n=2, c=192, h=35, w=35, k=3, stride=1, padding=1),
        a("densenet.transition.c128", n=4, c=128, h=56, w=56, k=2),
        a("resnet.global.c512", n=8, c=512, h=7, w=7, k=7),
    ]


@suite("avg_pool2d", "models")
def avg_pool2d_models() -> list[Case]:
    """LeNet-5's subsampling layers, ResNet-50's global pool, Inception-v3's 3x3 branch pool."""
    a = avg_pool
    return [
        a("lenet5.s2", n=1, c=6, h=28, w=28, k=2, tags=("model:lenet5",)),
        a("lenet5.s4", n=1, c=16, h=10, w=10, k=2, tags=("model:lenet5",)),
        a("resnet50.avgpool", n=1, c=2048, h=7, w=7, k=7, tags=("model:resnet50",)),
        a("inception_v3.mixed5b.pool", n=1, c=192, h=35, w=35, k=3, stride=1, padding=1,
          tags=("model:inception_v3",)),
        a("inception_v3.mixed6b.pool", n=1, c=768, h=17, w=17, k=3, stride=1, padding=1, count=4,
          tags=("model:inception_v3",)),
    ]


@suite("avg_pool2d", "scaling")
def avg_pool2d_scaling() -> list[Case]:
    """A 2x2 stride-2 pool as the image side doubles."""
    return [avg_pool(f"k2s2.c64.h{s}", n=2, c=64, h=s, w=s, k=2, tags=("scaling",))
            for s in (14, 28, 56, 112, 224)]
