"""Running a model for its predictions: eval mode, the one batched inference loop, and its progress bar.

`eval_mode` puts every submodule in eval mode and restores each one's own flag afterwards, so that an attack or an
evaluation never leaves a model in another mode than it found it (torchattacks' ``Attack.__call__`` does the same).
`predict_logits` is the library's one batched inference loop: accuracies, stored logits and feature hooks all go
through it. `progress_bar` is the bar the batched loops (attacks, AutoAttack) show on a terminal.

Shapes: ``x`` is (N, C, H, W) with values in [0, 1]; logits are (N, K).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .accel import model_device, to_device
from .checks import check_int


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own train/eval flag on exit.

    Examples::

        with eval_mode(model), torch.no_grad():
            logits = model(x)
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def predict_logits(model: nn.Module, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Logits (N, K) of ``model`` on clean ``x`` (N, C, H, W), in eval mode, in batches on the model's device.

    Returned in float32 on the CPU; the model's train/eval modes are restored.

    Examples::

        logits = predict_logits(model, x)
        accuracy = (logits.argmax(1) == y).float().mean()
    """
    check_int("batch_size", batch_size, at_least=1)
    device = model_device(model, fallback=x.device)
    with eval_mode(model), torch.no_grad():  # not inference_mode: callers may combine the logits with parameters
        starts = range(0, len(x), batch_size) if len(x) else (0,)  # an empty x still gives (0, K) logits
        out = [model(to_device(x[i : i + batch_size], device)).float().cpu() for i in starts]
    return torch.cat(out)


def progress_bar(items: Sequence[int], *, desc: str, unit: str, active: bool = True) -> Iterable[int]:
    """``items`` with a tqdm progress bar on a terminal (none in notebooks, logs or pipes, and none when not
    ``active`` or when there is a single item).

    Examples::

        for start in progress_bar(range(0, len(x), 500), desc="PGD attack", unit="batch"):
            ...
    """
    if not active or len(items) <= 1:
        return items
    return tqdm(items, desc=desc, unit=unit, leave=False, disable=None)
