"""PyTorch on the CPU (oneDNN / ATen kernels) as a family of every operator.

``torch_cpu`` is measured as a plain torch script gets it: glibc's heap in the state of a process
running the call alone, whose large buffers go back to the kernel after each call.
``torch_cpu_heap`` is the same call measured with freed buffers kept in the heap, the state of a
process that freed a larger buffer before (convbench measured torch_cpu so until now): on
``n8c64h28w28o64k3p1`` the difference is ~1000 page faults per call.
"""
from __future__ import annotations

from convbench.protocol import register
from impls._torch import TorchAvgPool2d, TorchConv1d, TorchConv2d, TorchMaxPool2d

__all__ = ["TorchCpuConv2d", "TorchCpuHeapConv2d", "TorchCpuConv1d", "TorchCpuMaxPool2d", "TorchCpuAvgPool2d"]


@register(op="conv2d", name="torch_cpu", backend="torch", device="cpu", deterministic=True,
          description="torch.nn.functional.conv2d + aten.convolution_backward on the CPU")
class TorchCpuConv2d(TorchConv2d):
    """PyTorch's CPU convolution; see :class:`impls._torch.TorchConv2d`."""

    def __init__(self) -> None:
        super().__init__("cpu")


@register(op="conv2d", name="torch_cpu_heap", backend="torch", device="cpu", deterministic=True,
          description="torch_cpu's conv2d with freed buffers kept in the heap (no page faults per call)")
class TorchCpuHeapConv2d(TorchConv2d):
    """torch_cpu's conv2d, measured with glibc's thresholds raised so that freed buffers stay in
    the heap: the state of a process that freed a large buffer before (in a network, after a
    larger layer). The call is torch_cpu's; only the measurement's heap state differs."""

    def __init__(self) -> None:
        super().__init__("cpu", heap="kept")


@register(op="conv1d", name="torch_cpu", backend="torch", device="cpu", deterministic=True,
          description="torch.nn.functional.conv1d + aten.convolution_backward on the CPU")
class TorchCpuConv1d(TorchConv1d):
    """PyTorch's CPU conv1d; see :class:`impls._torch.TorchConv1d`."""

    def __init__(self) -> None:
        super().__init__("cpu")


@register(op="max_pool2d", name="torch_cpu", backend="torch", device="cpu", deterministic=True,
          description="aten.max_pool2d_with_indices and its backward on the CPU")
class TorchCpuMaxPool2d(TorchMaxPool2d):
    """PyTorch's CPU max pooling; see :class:`impls._torch.TorchMaxPool2d`."""

    def __init__(self) -> None:
        super().__init__("cpu")


@register(op="avg_pool2d", name="torch_cpu", backend="torch", device="cpu", deterministic=True,
          description="torch.nn.functional.avg_pool2d + aten.avg_pool2d_backward on the CPU")
class TorchCpuAvgPool2d(TorchAvgPool2d):
    """PyTorch's CPU average pooling; see :class:`impls._torch.TorchAvgPool2d`."""

    def __init__(self) -> None:
        super().__init__("cpu")
