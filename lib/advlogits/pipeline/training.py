"""Train the model a `TrainConfig` describes: data, initialisation, targets and the training method.

Pure computation, no store: `advlogits.pipeline.stored` calls it on a cache miss and stores what it returns.
The source of this module is part of every model's store key (see `advlogits.pipeline.stored.MODEL_SOURCES`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ..checks import fail
from ..data import load_dataset
from ..distill import average_confidence, label_correct, make_targets
from ..fileio import StoreError, load_state_dict_checked
from ..models import build_for
from ..train import TrainConfig, train_adversarial, train_distilled, train_standard


def init_model(config: TrainConfig) -> nn.Module:
    """A freshly initialised model of ``config`` (initialisation seeded by ``config.seed``), on the CPU."""
    torch.manual_seed(config.seed)
    return build_for(config.arch, config.dataset)


def model_from_state(config: TrainConfig, state: dict[str, Tensor], *, source: str | Path) -> nn.Module:
    """The model of ``config`` holding the weights ``state`` (checked key by key), in eval mode on the CPU.

    The network is built on the meta device and takes the tensors of ``state`` as its parameters and buffers (the
    model owns them from then on; one in another layout than the built model's is copied into that layout): drawing
    initial weights (most of the cost of loading a ResNet), or memory only to copy the state into, would be thrown
    away, and torch's global generator is left as it was."""
    with torch.device("meta"):
        model = build_for(config.arch, config.dataset)
    load_state_dict_checked(model, state, source=source, assign=True)
    unfilled = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if unfilled:  # a tensor outside the state dict (a non-persistent buffer) would have no value
        raise StoreError(f"{source} leaves {', '.join(unfilled)} of {config.arch} without a value")
    return model.eval()


def student_images(config: TrainConfig) -> tuple[Tensor, Tensor]:
    """The training images (x, y) of ``config``: its seeded subset of the training split."""
    return load_dataset(config.dataset, "train", n=config.n_train, seed=config.seed)


def distillation_targets(config: TrainConfig, y: Tensor, teacher: Tensor, reference: Tensor | None) -> Tensor:
    """The targets of a distilled student: its teacher's logits on its training images (``teacher``, (N, K)),
    passed through ``config.targets`` (see `advlogits.distill.make_targets`); ``reference`` is the second
    teacher's logits that ``targets="reorder"`` needs."""
    average = None
    if config.targets == "flatten" and config.confidence is not None:  # a confidence level of its own
        average = config.confidence
    elif config.targets in ("flatten", "label_smoothing"):  # the data-set average confidence of the teacher
        average = average_confidence(label_correct(teacher, y) if config.label_corrected else teacher)
    elif config.targets == "soften":  # the second teacher's average confidence, to which the teacher is softened
        average = average_confidence(reference)
    return make_targets(
        config.targets,
        teacher,
        y=y,
        label_corrected=config.label_corrected,
        reference=reference if config.targets == "reorder" else None,
        confidence=average,
        generator=torch.Generator().manual_seed(config.seed),
    )


def train_model(
    config: TrainConfig,
    *,
    device: str | torch.device,
    teacher_logits: Tensor | None = None,
    reference_logits: Tensor | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> tuple[nn.Module, dict]:
    """Train the model ``config`` describes (resuming from ``checkpoint`` if it exists); returns (model, history).

    A distilled config needs its teacher's logits on its training images (``teacher_logits``, and
    ``reference_logits`` for ``targets="reorder"``), computed by the caller.
    """
    x, y = student_images(config)
    x_val, y_val = load_dataset(config.dataset, "test", n=config.n_val, seed=config.seed)
    model = init_model(config).to(device)
    run = dict(checkpoint=checkpoint, progress=progress, x_val=x_val, y_val=y_val)
    if config.method == "standard":
        history = train_standard(model, x, y, config, **run)
    elif config.method == "adversarial":
        history = train_adversarial(model, x, y, config, **run)
    else:
        if teacher_logits is None:
            fail("teacher_logits", "the teacher's logits on the student's images for a distilled config", None)
        targets = distillation_targets(config, y, teacher_logits, reference_logits)
        history = train_distilled(model, x, targets, config, y=y, **run)
    return model.eval(), history
