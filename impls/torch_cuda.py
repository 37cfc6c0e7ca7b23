"""PyTorch on a CUDA device (cuDNN) as a conv2d family."""
from __future__ import annotations

from convbench.registry import register
from impls._torch import TorchConv2d

__all__ = ["TorchCudaConv2d"]


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
