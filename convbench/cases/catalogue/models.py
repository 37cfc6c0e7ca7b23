"""The ``models`` and ``scaling`` suites: conv layers of published networks, and sweeps around one.

``models`` holds every *distinct* convolution of each network once, with ``count`` = how many
times it occurs, so ``sum(case.count * case.params.macs)`` is the network's convolution cost.
Layers are at the resolution the network was published for, batch 1 (``Case.with_batch`` sets
another); ids follow the framework's module names where one exists (torchvision for ResNet-50 and
MobileNetV2). Sources and the choices made where a source leaves room:

- ResNet-50: torchvision's v1.5 layout (stride 2 on the 3x3 of each stage's first block, not on
  the 1x1), 224x224, no bias (batch norm follows every conv). 53 convs, ~4.09 GMACs.
- MobileNetV2: torchvision, width 1.0, 224x224, no bias; expansion 1x1, depthwise 3x3 and
  projection 1x1 of every inverted-residual block, the stem and the 1x1 head. ~0.30 GMACs.
- VGG-16: configuration D, 224x224, 13 convs 3x3 padding 1 with bias. ~15.35 GMACs.
- AlexNet: the original two-GPU network (Krizhevsky et al. 2012), 227x227 input so that conv1
  gives 55x55 without padding: conv1 3->96 k11 s4; conv2 96->256 k5 p2 groups=2 (each GPU's 128
  filters see its own 48 channels); conv3 256->384 k3 p1 (crosses GPUs, not grouped); conv4
  384->384 k3 p1 groups=2; conv5 384->256 k3 p1 groups=2. ~666 MMACs.
- LeNet-5: LeCun et al. 1998 at 32x32, C3 fully connected to S2's 6 maps (the modern reading,
  not the paper's partial connection table); C5 is the 5x5 conv that leaves 1x1.
- CIFAR-10 course CNN: conv 3->32 3x3 p1 at 32x32, 2x2 max pool, conv 32->64 3x3 p1 at 16x16.
- DeepBench (baidu-research/DeepBench ``conv_problems.h``, training set): a handful of rows, batch
  as listed there, including ResNet's 1x1 kernel with padding 3 and stride 2.
"""
from __future__ import annotations

from collections.abc import Iterable

from convbench._errors import ParamError
from convbench.cases.case import Case, conv
from convbench.cases.table import suite
from convbench.ops.conv2d import Conv2dParams

__all__ = ["models", "resnet50", "scaling", "model_cases", "SCALING_BASE", "RESNET50_BATCH"]

# (name, c, size, o, k, stride, padding, groups) in network order, before deduplication
_Layer = tuple[str, int, int, int, int, int, int, int]


def _resnet50() -> list[_Layer]:
    out: list[_Layer] = [("conv1", 3, 224, 64, 7, 2, 3, 1)]
    cin, size = 64, 56
    for stage, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
        for b in range(blocks):
            s = stride if b == 0 else 1
            name = f"layer{stage}.{b}"
            out.append((f"{name}.conv1", cin, size, width, 1, 1, 0, 1))
            out.append((f"{name}.conv2", width, size, width, 3, s, 1, 1))
            osize = size // s
            out.append((f"{name}.conv3", width, osize, width * 4, 1, 1, 0, 1))
            if b == 0:
                out.append((f"{name}.downsample", cin, size, width * 4, 1, s, 0, 1))
            cin, size = width * 4, osize
    return out


def _mobilenetv2() -> list[_Layer]:
    out: list[_Layer] = [("stem.3x224.s2", 3, 224, 32, 3, 2, 1, 1)]
    cin, size = 32, 112
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            if t != 1:
                out.append((f"expand.{cin}x{size}.{hidden}", cin, size, hidden, 1, 1, 0, 1))
            out.append((f"dw.{hidden}x{size}.s{stride}", hidden, size, hidden, 3, stride, 1, hidden))
            size = (size + 2 - 3) // stride + 1
            out.append((f"project.{hidden}x{size}.{c}", hidden, size, c, 1, 1, 0, 1))
            cin = c
    out.append((f"head.{cin}x{size}.1280", cin, size, 1280, 1, 1, 0, 1))
    return out


def _vgg16() -> list[_Layer]:
    out: list[_Layer] = []
    cin, size = 3, 224
    for block, (width, reps) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for r in range(1, reps + 1):
            out.append((f"conv{block}_{r}", cin, size, width, 3, 1, 1, 1))
            cin = width
        size //= 2
    return out


_ALEXNET: list[_Layer] = [
    ("conv1", 3, 227, 96, 11, 4, 0, 1),
    ("conv2", 96, 27, 256, 5, 1, 2, 2),
    ("conv3", 256, 13, 384, 3, 1, 1, 1),
    ("conv4", 384, 13, 384, 3, 1, 1, 2),
    ("conv5", 384, 13, 256, 3, 1, 1, 2),
]
_LENET5: list[_Layer] = [("c1", 1, 32, 6, 5, 1, 0, 1), ("c3", 6, 14, 16, 5, 1, 0, 1), ("c5", 16, 5, 120, 5, 1, 0, 1)]
_CIFAR10CNN: list[_Layer] = [("conv1", 3, 32, 32, 3, 1, 1, 1), ("conv2", 32, 16, 64, 3, 1, 1, 1)]

# DeepBench rows as (w, h, c, n, k, filter_w, filter_h, pad_w, pad_h, wstride, hstride)
_DEEPBENCH = [
    (700, 161, 1, 4, 32, 20, 5, 0, 0, 2, 2),  # DeepSpeech 2, first layer
    (341, 79, 32, 4, 32, 10, 5, 0, 0, 2, 2),  # DeepSpeech 2, second layer
    (480, 48, 1, 16, 16, 3, 3, 1, 1, 1, 1),
    (108, 108, 3, 8, 64, 3, 3, 1, 1, 2, 2),
    (28, 28, 192, 16, 32, 5, 5, 2, 2, 1, 1),
    (7, 7, 832, 16, 128, 5, 5, 2, 2, 1, 1),
    (7, 7, 2048, 8, 512, 1, 1, 3, 3, 2, 2),  # 1x1 kernel, padding 3, stride 2
]

_NETWORKS = {
    "resnet50": (_resnet50, False),
    "mobilenetv2": (_mobilenetv2, False),
    "vgg16": (_vgg16, True),
    "alexnet": (lambda: _ALEXNET, True),
    "lenet5": (lambda: _LENET5, True),
    "cifar10cnn": (lambda: _CIFAR10CNN, True),
}


def _dedupe(model: str, layers: Iterable[tuple[str, Conv2dParams]], extra_tags: tuple[str, ...] = ()) -> list[Case]:
    """One case per distinct call, named after its first occurrence, counted over all of them."""
    first: dict[Conv2dParams, str] = {}
    count: dict[Conv2dParams, int] = {}
    for name, p in layers:
        first.setdefault(p, name)
        count[p] = count.get(p, 0) + 1
    return [Case(id=f"{model}.{name}", params=p, count=count[p], tags=(f"model:{model}", *extra_tags))
            for p, name in first.items()]


def model_cases(model: str) -> list[Case]:
    """The distinct conv layers of ``model`` (a key of the ``models`` suite: ``resnet50``, ...)."""
    if model == "deepbench":
        rows = [(f"{h}x{w}.c{c}.o{k}.k{fh}x{fw}" + (f".p{ph}" if ph else "") + (f".s{sh}" if sh > 1 else ""),
                 Conv2dParams(n=n, c=c, h=h, w=w, o=k, kh=fh, kw=fw, stride=(sh, sw), padding=(ph, pw)))
                for w, h, c, n, k, fw, fh, pw, ph, sw, sh in _DEEPBENCH]
        return _dedupe("deepbench", rows)
    try:
        layers, bias = _NETWORKS[model]
    except KeyError:
        raise ParamError(f"model must be one of {', '.join([*_NETWORKS, 'deepbench'])}; got {model!r}") from None
    return _dedupe(model, ((name, Conv2dParams(n=1, c=c, h=s, w=s, o=o, kh=k, kw=k, stride=st, padding=pad,
                                               groups=g, bias=bias))
                           for name, c, s, o, k, st, pad, g in layers()))


@suite("conv2d", "models")
def models() -> list[Case]:
    """Every distinct conv layer of ResNet-50, MobileNetV2, VGG-16, AlexNet, LeNet-5, a CIFAR-10
    course CNN and a handful of DeepBench problems, with occurrence counts."""
    return [c for m in (*_NETWORKS, "deepbench") for c in model_cases(m)]


#: the batch of the ``resnet50`` suite, the one ResNet-50's layers are compared with torch at
#: in docs/results.md
RESNET50_BATCH = 8


@suite("conv2d", "resnet50")
def resnet50() -> list[Case]:
    """ResNet-50's 23 distinct conv layers at batch 8 (the ``models`` suite's ResNet-50 rows with
    their occurrence counts), for timing a whole network's convolutions against torch."""
    return [c.with_batch(RESNET50_BATCH) for c in model_cases("resnet50")]

#: the layer the ``scaling`` sweeps vary one dimension of
SCALING_BASE = dict(n=4, c=32, h=32, w=32, o=32, k=3, padding=1)
_SWEEPS = {
    "batch": (1, 2, 4, 8, 16, 32),
    "hw": (8, 16, 32, 64, 128),
    "channels": (8, 16, 32, 64, 128, 256),
    "kernel": (1, 3, 5, 7, 9, 11),
}


@suite("conv2d", "scaling")
def scaling() -> list[Case]:
    """Geometric sweeps of batch, spatial size, channels (in = out) and kernel size (padding k//2,
    so the output size stays) around ``n4c32h32w32o32k3p1``, one dimension at a time, for fitting
    how cost grows. Tagged ``sweep:<dimension>`` and ``value:<v>``."""
    out = []
    for dim, values in _SWEEPS.items():
        for v in values:
            kw = dict(SCALING_BASE)
            if dim == "batch":
                kw["n"] = v
            elif dim == "hw":
                kw["h"] = kw["w"] = v
            elif dim == "channels":
                kw["c"] = kw["o"] = v
            else:
                kw["k"], kw["padding"] = v, v // 2
            out.append(conv(f"scale.{dim}.{v}", tags=("scaling", f"sweep:{dim}", f"value:{v}"), **kw))
    return out
