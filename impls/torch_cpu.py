"""PyTorch on the CPU (oneDNN / ATen kernels) as a family of every operator."""
from __future__ import annotations

from convbench.protocol import register
from impls._torch import TorchAvgPool2d, TorchConv1d, TorchConv2d, TorchMaxPool2d

__all__ = ["TorchCpuConv2d", "TorchCpuConv1d", "TorchCpuMaxPool2d", "TorchCpuAvgPool2d"]


@register(op="conv2d", name="torch_cpu", backend="torch", device="cpu", deterministic=True,
          description="torch.nn.functional.conv2d + aten.convolution_backward on the CPU")
class TorchCpuConv2d(TorchConv2d):
    """PyTorch's CPU convolution; see :class:`impls._torch.TorchConv2d`."""

    def __init__(self) -> None:
        super().__init__("cpu")


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
