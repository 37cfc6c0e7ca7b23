"""The PyTorch families' shared code: one class per operator, parametrised by device.

torch is imported lazily, inside methods, so that importing a family (``convbench list``) stays
fast and never fails where torch is missing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convbench.ops.avg_pool2d import AvgPool2dParams
from convbench.ops.conv1d import Conv1dParams
from convbench.ops.conv2d import Conv2dParams
from convbench.ops.max_pool2d import MaxPool2dParams
from convbench.protocol import Implementation

__all__ = ["TorchConv2d", "TorchConv1d", "TorchMaxPool2d", "TorchAvgPool2d", "torch_availability"]


def torch_availability(device: str) -> str | None:
    """None when torch can run on ``device`` here, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if device == "cuda":
        if torch.version.cuda is None:
            return f"CUDA not available (torch {torch.__version__}, built without CUDA)"
        if not torch.cuda.is_available():
            return f"CUDA not available (torch {torch.__version__}, no CUDA device visible)"
    return None


class TorchConv2d(Implementation):
    """``torch.nn.functional.conv2d`` forward, ``aten.convolution_backward`` backward, on ``device``.

    Parameters
    ----------
    device : str
        ``'cpu'`` or ``'cuda'``. Inputs are copied there by :meth:`prepare`, untimed.
    heap : str, optional
        ``"fresh"`` or ``"kept"``; default ``"fresh"`` on the CPU, none on a GPU.

    Notes
    -----
    Backward is one ``torch.ops.aten.convolution_backward`` call: all three gradients, no
    autograd graph to build or walk. Padding torch cannot express (the asymmetric pads of
    ``'same'`` with an even effective kernel) is applied with ``F.pad`` first; backward then crops
    ``grad_input`` back to the input. Runs under ``torch.no_grad()``; torch's global settings
    (threads, cuDNN flags) are left as they are.
    """

    def __init__(self, device: str = "cpu", heap: str | None = None) -> None:
        self.device = device
        #: the C heap's state the bench runner measures this in (:mod:`convbench.measure.heap`):
        #: on the CPU, that of a plain process running the call alone, unless a variant says otherwise
        self.heap = heap if heap is not None else ("fresh" if device == "cpu" else None)

    def availability(self) -> str | None:
        return torch_availability(self.device)

    def prepare(self, *arrays: np.ndarray | None) -> tuple[Any, ...]:
        import torch

        # copied into torch's own allocator (64-byte aligned), as a torch user's tensors are, not
        # NumPy's buffers shared; ascontiguousarray: torch refuses negative strides
        return tuple(None if a is None else torch.tensor(np.ascontiguousarray(a), device=self.device)
                     for a in arrays)

    @staticmethod
    def _padding(p: Conv2dParams) -> tuple[tuple[int, int, int, int] | None, tuple[int, int]]:
        """(F.pad argument or None, the symmetric padding handed to the convolution)."""
        pt, pb, pl, pr = p.pads
        if pt == pb and pl == pr:
            return None, (pt, pl)
        return (pl, pr, pt, pb), (0, 0)

    def forward(self, p: Conv2dParams, x: Any, w: Any, b: Any) -> Any:
        import torch
        import torch.nn.functional as F

        extra, padding = self._padding(p)
        with torch.no_grad():
            if extra is not None:
                x = F.pad(x, extra)
            return F.conv2d(x, w, b, stride=p.stride, padding=padding, dilation=p.dilation, groups=p.groups)

    def backward(self, p: Conv2dParams, dy: Any, x: Any, w: Any) -> tuple[Any, Any, Any]:
        import torch
        import torch.nn.functional as F

        extra, padding = self._padding(p)
        with torch.no_grad():
            if extra is not None:
                x = F.pad(x, extra)
            dx, dw, db = torch.ops.aten.convolution_backward(
                dy, x, w, [p.o] if p.bias else None, list(p.stride), list(padding), list(p.dilation),
                False, [0, 0], p.groups, [True, True, p.bias])
            if extra is not None:
                pt, _, pl, _ = p.pads
                dx = dx[:, :, pt:pt + p.h, pl:pl + p.w]
        return dx, dw, (db if p.bias else None)

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.detach().cpu().numpy()


class _TorchOn(Implementation):
    """Device plumbing of the other operators' torch classes (as :class:`TorchConv2d` does it)."""

    __init__ = TorchConv2d.__init__
    availability = TorchConv2d.availability
    prepare = TorchConv2d.prepare
    sync = TorchConv2d.sync
    to_numpy = TorchConv2d.to_numpy


class TorchConv1d(_TorchOn):
    """``F.conv1d`` forward, one ``aten.convolution_backward`` call backward; asymmetric ``'same'``
    padding applied with ``F.pad`` first and cropped off ``grad_input`` after."""

    def forward(self, p: Conv1dParams, x: Any, w: Any, b: Any) -> Any:
        import torch
        import torch.nn.functional as F

        left, right = p.pads
        with torch.no_grad():
            if left != right:
                x, left = F.pad(x, (left, right)), 0
            return F.conv1d(x, w, b, stride=p.stride, padding=left, dilation=p.dilation, groups=p.groups)

    def backward(self, p: Conv1dParams, dy: Any, x: Any, w: Any) -> tuple[Any, Any, Any]:
        import torch
        import torch.nn.functional as F

        left, right = p.pads
        pad = left
        with torch.no_grad():
            if left != right:
                x, pad = F.pad(x, (left, right)), 0
            dx, dw, db = torch.ops.aten.convolution_backward(
                dy, x, w, [p.o] if p.bias else None, [p.stride], [pad], [p.dilation],
                False, [0], p.groups, [True, True, p.bias])
            if left != right:
                dx = dx[:, :, left:left + p.l]
        return dx, dw, (db if p.bias else None)


class TorchMaxPool2d(_TorchOn):
    """``aten.max_pool2d_with_indices`` and its backward (the indices are recomputed in backward,
    which is stateless). A window holding no input element is refused for backward: PyTorch
    scatters its gradient through an out-of-range index there."""

    def unsupported(self, p: MaxPool2dParams, dtype: str, direction: str) -> str | None:  # type: ignore[override]
        if direction == "backward" and p.window_misses_input():
            return ("a window holds no input element; PyTorch's max_pool2d backward writes through an "
                    "out-of-range index there")
        return super().unsupported(p, dtype, direction)

    @staticmethod
    def _args(p: MaxPool2dParams) -> tuple[list[int], list[int], list[int], list[int], bool]:
        return [p.kh, p.kw], list(p.stride), list(p.padding), list(p.dilation), p.ceil_mode

    def forward(self, p: MaxPool2dParams, x: Any) -> Any:
        import torch

        with torch.no_grad():
            return torch.ops.aten.max_pool2d_with_indices(x, *self._args(p))[0]

    def backward(self, p: MaxPool2dParams, dy: Any, x: Any) -> tuple[Any]:
        import torch

        with torch.no_grad():
            _, idx = torch.ops.aten.max_pool2d_with_indices(x, *self._args(p))
            return (torch.ops.aten.max_pool2d_with_indices_backward(dy, x, *self._args(p), idx),)


class TorchAvgPool2d(_TorchOn):
    """``F.avg_pool2d`` forward, ``aten.avg_pool2d_backward`` backward."""

    def forward(self, p: AvgPool2dParams, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            return F.avg_pool2d(x, (p.kh, p.kw), p.stride, p.padding, p.ceil_mode, p.count_include_pad,
                                p.divisor_override)

    def backward(self, p: AvgPool2dParams, dy: Any, x: Any) -> tuple[Any]:
        import torch

        with torch.no_grad():
            return (torch.ops.aten.avg_pool2d_backward(dy, x, [p.kh, p.kw], list(p.stride), list(p.padding),
                                                        p.ceil_mode, p.count_include_pad, p.divisor_override),)
