"""Execution options for GPUs: bf16 mixed precision, ``torch.compile`` and asynchronous host-to-device copies.

`accelerate` wraps a model for computing without changing what it is: the wrapper shares the model's
parameters, so optimisers, ``state_dict`` and the store keep working on the original module. Both options run
on a CPU too (that is how the tests check them), but they pay off on a GPU: bf16 autocast halves memory traffic
and uses tensor cores on Ampere and later; ``torch.compile`` fuses the small element-wise kernels of the
ResNets. Logits always come out in float32, so losses, attack gradients and argmaxes are computed in float32.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


class Autocast(nn.Module):
    """Run ``module`` under ``torch.autocast`` in bfloat16 on the input's device; return float32 outputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = self.module(x)
        return out.float()


def check_options(precision: object, compile: object) -> None:
    """Refuse unknown options with a message naming the parameter and the allowed values."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False (got {compile!r})")


def accelerate(model: nn.Module, *, precision: Precision = "fp32", compile: bool = False) -> nn.Module:
    """The module to call for forward passes: ``model`` itself, or wrapped in `Autocast` and/or compiled.

    The result shares ``model``'s parameters and buffers (train it, save ``model``); its ``train()``/``eval()``
    reach ``model``. ``compile=True`` uses ``torch.compile`` with its default (inductor) backend, which needs a C++
    compiler on CPUs and Triton on GPUs; the first calls are slow while it compiles.
    """
    check_options(precision, compile)
    out: nn.Module = Autocast(model) if precision == "bf16" else model
    return torch.compile(out) if compile else out  # type: ignore[return-value]


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """Copy a CPU batch to ``device``; to a GPU through pinned memory, without blocking the host."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
