"""Where and how forward passes run: the device (``"auto"`` resolved once), bf16 mixed precision,
``torch.compile`` and asynchronous host-to-device copies.

`accelerate` wraps a model for computing without changing what it is: the wrapper shares the model's
parameters, so optimisers, ``state_dict`` and the store keep working on the original module. Both options run
on a CPU too (that is how the tests check them), but they pay off on a GPU: bf16 autocast halves memory traffic
and uses tensor cores on Ampere and later; ``torch.compile`` fuses the small element-wise kernels of the
ResNets. Logits always come out in float32, so losses, attack gradients and argmaxes are computed in float32.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from .checks import check_bool, check_choice, fail

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
    check_choice("precision", precision, PRECISIONS)
    check_bool("compile", compile)


def accelerate(model: nn.Module, *, precision: Precision = "fp32", compile: bool = False) -> nn.Module:
    """The module to call for forward passes: ``model`` itself, or wrapped in `Autocast` and/or compiled.

    The result shares ``model``'s parameters and buffers (train it, save ``model``); its ``train()``/``eval()``
    reach ``model``. ``compile=True`` uses ``torch.compile`` with its default (inductor) backend, which needs a C++
    compiler on CPUs and Triton on GPUs; the first calls are slow while it compiles.
    """
    check_options(precision, compile)
    out: nn.Module = Autocast(model) if precision == "bf16" else model
    return torch.compile(out) if compile else out  # type: ignore[return-value]


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(device: str | torch.device) -> str:
    """``device`` checked against this machine; ``"auto"`` becomes ``"cuda"``, ``"mps"`` or ``"cpu"``."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if device == "cpu":
        return device
    if isinstance(device, str) and re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            fail("device", "'cpu' or 'auto' on this machine", device, hint="CUDA is not available here")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            fail(
                "device",
                f"a CUDA device below cuda:{torch.cuda.device_count()}",
                device,
                hint=f"only {torch.cuda.device_count()} CUDA device(s) exist",
            )
        return device
    if device == "mps":
        if not _mps_available():
            fail("device", "'cpu' or 'auto' on this machine", device, hint="MPS is not available here")
        return device
    fail("device", "one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'", device)


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's first parameter (or buffer); ``fallback`` for a stateless model."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device(fallback)


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """Copy a CPU batch to ``device``; to a GPU through pinned memory, without blocking the host."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
