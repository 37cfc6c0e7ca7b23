"""PyTorch's own sample inputs for conv2d, conv1d, max_pool2d and avg_pool2d (the OpInfo samples
of ``torch.testing._internal``, a suite no one here wrote), through convbench's public API with
every CPU implementation: every argument form torch's functional API takes is taken (unbatched
input, 1-element tuples, positional hyperparameters), and every result agrees with torch's.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench._api import UnsupportedError
from convbench.registry import registered

# torch's functional signatures, in order: a sample's positional arguments after the input
ARGS = {"conv2d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
        "conv1d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
        "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
        "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")}


def _samples(op: str) -> list[Any]:
    # the OpInfo database imports expecttest and builds every operator's entry: a few seconds
    cmi = pytest.importorskip("torch.testing._internal.common_methods_invocations")
    info = next(o for o in cmi.op_db if o.name == f"nn.functional.{op}" and not o.variant_test_name)
    # max_pool2d's come twice, with and without return_indices: the same call to convbench
    seen, out = set(), []
    for s in info.sample_inputs("cpu", torch.float64):
        key = (tuple(s.input.shape), repr(s.args), repr({k: v for k, v in s.kwargs.items() if k != "return_indices"}))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _plain(v: Any) -> Any:
    return v.detach().numpy() if isinstance(v, torch.Tensor) else v


def _through_convbench(op: str, s: Any, impl: str) -> np.ndarray:
    kw = {**dict(zip(ARGS[op], s.args)), **s.kwargs}
    kw.pop("return_indices", None)  # the indices are torch's extra output, not an argument form
    kw = {k: _plain(v) for k, v in kw.items()}
    x = _plain(s.input)
    if op.startswith("conv"):
        return getattr(convbench, op)(x, kw.pop("weight"), kw.pop("bias", None), impl=impl, **kw)
    return getattr(convbench, op)(x, kw.pop("kernel_size"), impl=impl, **kw)


def _torch(op: str, s: Any) -> np.ndarray:
    y = getattr(F, op)(s.input, *s.args, **s.kwargs)
    return (y[0] if isinstance(y, tuple) else y).detach().numpy()


@pytest.mark.parametrize("op", sorted(ARGS))
def test_pytorch_sample_inputs_agree_through_the_public_api(op):
    samples = _samples(op)
    # the shipped ones: a file another test loaded into this process (a planted abort) is not one
    shipped = {m.info.name for m in registered(op) if type(m).__module__.split(".")[0] == "impls"}
    impls = [i.name for i in convbench.implementations(op) if i.available and i.device == "cpu" and i.name in shipped]
    assert len(samples) >= 7 and len(impls) >= 3
    tally: Counter[str] = Counter()
    refused, wrong = [], []
    for s in samples:
        want = _torch(op, s)
        for name in ["reference", *impls]:
            try:
                got = _through_convbench(op, s, name)
            except UnsupportedError:  # an implementation without, say, dilation: it says so
                tally["unsupported"] += 1
                continue
            except (convbench.ParamError, TypeError, ValueError) as exc:
                refused.append(f"{name} {tuple(s.input.shape)} {s.args[1:]} {s.kwargs}: {exc}")
                continue
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-10, atol=1e-10):
                wrong.append(f"{name} {tuple(s.input.shape)} {s.kwargs}")
            tally["agree"] += 1
    assert not refused, f"{len(refused)} refused that PyTorch takes, e.g. {refused[:3]}"
    assert not wrong, f"{len(wrong)} disagree with torch, e.g. {wrong[:3]}"
    assert tally["agree"] >= len(samples) * 2, tally  # the reference and torch_cpu at least, on every sample


def test_one_sample_without_its_batch_axis_and_one_element_tuples():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 7, 6)), rng.standard_normal((4, 3, 3, 2))
    want = F.conv2d(torch.tensor(x), torch.tensor(w), stride=(2,), padding=(1,)).numpy()
    got = convbench.conv2d(x, w, stride=(2,), padding=(1,), impl="im2col")
    assert got.shape == want.shape == (4, 4, 4) and np.allclose(got, want)
    dy = rng.standard_normal(want.shape)
    dx, dw, db = convbench.conv2d_backward(dy, x, w, stride=2, padding=1, bias=False)
    assert dx.shape == x.shape and dw.shape == w.shape and db is None
    assert convbench.max_pool2d(x, (2,)).shape == (3, 3, 3)
    assert convbench.conv1d(x[:, 0], w[:, :, 0], stride=(2,)).shape == (4, 3)
