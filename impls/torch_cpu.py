"""PyTorch on the CPU (oneDNN / ATen kernels) as a conv2d family."""
from __future__ import annotations

from convbench.registry import register
from impls._torch import TorchConv2d

__all__ = ["TorchCpuConv2d"]


@register(op="conv2d", name="torch_cpu", backend="torch", device="cpu", deterministic=True,
          description="torch.nn.functional.conv2d + aten.convolution_backward on the CPU")
class TorchCpuConv2d(TorchConv2d):
    """PyTorch's CPU convolution; see :class:`impls._torch.TorchConv2d`."""

    def __init__(self) -> None:
        super().__init__("cpu")
