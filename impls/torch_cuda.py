"""PyTorch on a CUDA device (cuDNN and ATen CUDA kernels) as a family of every operator."""
from __future__ import annotations

from convbench.protocol import register
from impls._torch import TorchAvgPool2d, TorchConv1d, TorchConv2d, TorchMaxPool2d

__all__ = ["TorchCudaConv2d", "TorchCudaConv1d", "TorchCudaMaxPool2d", "TorchCudaAvgPool2d"]


# cuDNN picks its algorithm per shape (implicit GEMM, FFT, Winograd), some of them with atomics,
# and with torch's defaults float32 convolutions may run in TF32: neither bitwise reproducible nor
# exact, and held to the looser Winograd error model.
@register(op="conv2d", name="torch_cuda", backend="torch", device="cuda", deterministic=False,
          exact=False, algorithm="winograd",
          description="torch.nn.functional.conv2d + aten.convolution_backward on CUDA (cuDNN, torch's "
                      "default flags: float32 may use TF32)")
class TorchCudaConv2d(TorchConv2d):
    """PyTorch's CUDA convolution (cuDNN); see :class:`impls._torch.TorchConv2d`.

    Tensors are created on the device by ``prepare`` and ``sync`` waits for the device, so a
    timed call covers the kernels and nothing else.
    """

    def __init__(self) -> None:
        super().__init__("cuda")


# cuDNN as for conv2d: algorithm chosen per shape, TF32 possible for float32.
@register(op="conv1d", name="torch_cuda", backend="torch", device="cuda", deterministic=False,
          exact=False, algorithm="winograd",
          description="torch.nn.functional.conv1d + aten.convolution_backward on CUDA (cuDNN, torch's "
                      "default flags: float32 may use TF32)")
class TorchCudaConv1d(TorchConv1d):
    """PyTorch's CUDA conv1d; see :class:`impls._torch.TorchConv1d`."""

    def __init__(self) -> None:
        super().__init__("cuda")


# The backward kernels of CUDA pooling accumulate overlapping windows' gradients in an order that
# is not promised; pooling itself selects or sums, so values stay exact on exact inputs.
@register(op="max_pool2d", name="torch_cuda", backend="torch", device="cuda", deterministic=False,
          description="aten.max_pool2d_with_indices and its backward on CUDA")
class TorchCudaMaxPool2d(TorchMaxPool2d):
    """PyTorch's CUDA max pooling; see :class:`impls._torch.TorchMaxPool2d`."""

    def __init__(self) -> None:
        super().__init__("cuda")


@register(op="avg_pool2d", name="torch_cuda", backend="torch", device="cuda", deterministic=False,
          description="torch.nn.functional.avg_pool2d + aten.avg_pool2d_backward on CUDA")
class TorchCudaAvgPool2d(TorchAvgPool2d):
    """PyTorch's CUDA average pooling; see :class:`impls._torch.TorchAvgPool2d`."""

    def __init__(self) -> None:
        super().__init__("cuda")
