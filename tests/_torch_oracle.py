"""torch float64 as the reference of conv2d tests: forward and every gradient of one call."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from convbench.ops.conv2d import Conv2dParams


def torch_float64(p: Conv2dParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray):
    """``(y, grad_input, grad_weight, grad_bias or None)`` computed by torch in float64."""
    xt, wt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w))
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if b is not None else None
    pt, pb, pl, pr = p.pads
    y = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=p.stride, dilation=p.dilation, groups=p.groups)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy()
