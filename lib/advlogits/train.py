"""Training: the config that determines a model (`TrainConfig`) and the three training methods, standard (ST),
PGD adversarial (AT) and distillation on clean images (KD).

All three share one loop (`fit`), which takes the config whole: SGD with Nesterov momentum and a triangular
learning-rate schedule, a data order drawn from ``seed`` and the epoch number (`epoch_generator`, so a resumed run
sees the same batches), an optional augmentation of every training batch (`advlogits.augmentation.augment`, also
drawn from seed and epoch), a checkpoint after every epoch but the last (which the caller saves as the model) and
resumption from it, a tqdm bar, and a history dict for the curves. A config's ``precision`` and ``compile``
choose how forward passes run (`advlogits.accel`, for GPUs).

Adversarial training also logs, after every epoch, the PGD accuracy of its validation images (``val_pgd_acc``,
the training attack with a seeded random start); standard and distilled training have no such key.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from .accel import accelerate, check_options, model_device, to_device
from .attacks import pgd
from .augmentation import AUGMENTATIONS, augment
from .checks import check_choice, check_int, check_number, check_seed, fail
from .data import DATASETS, dataset_info
from .distill import TARGET_KINDS, kd_loss
from .evaluation import accuracy, attack_correct
from .fileio import StoreError, atomic_torch_save, load_state_dict_checked, safe_torch_load
from .models import ARCHS, ARCHS_FOR

Method = Literal["standard", "adversarial", "distilled"]
METHODS: tuple[str, ...] = ("standard", "adversarial", "distilled")
# Targets that need a second teacher: its class order ("reorder"), or its mean confidence ("soften").
REFERENCE_TARGETS: tuple[str, ...] = ("reorder", "soften")

# A loss step maps (model, x batch, target batch, attack generator) to a scalar loss and the logits used
# for the training-accuracy count.
LossStep = Callable[[nn.Module, Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]
# An epoch hook maps (model, epoch index) to extra per-epoch history values, e.g. {"val_pgd_acc": 0.4}.
EpochMetrics = Callable[[nn.Module, int], dict[str, float]]

# Streams of `epoch_generator`: what each of an epoch's CPU generators draws. New purposes take new numbers (< 101).
STREAM_ORDER = 0  # the permutation of the training images
STREAM_ATTACK = 1  # the training attack's random starts (adversarial training)
STREAM_AUGMENT = 2  # the augmentation of the training batches
STREAM_VAL_ATTACK = 3  # the random starts of the validation PGD attack (adversarial training)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model. Its hash (with the code version) names the stored entry, and the
    training functions take it whole."""

    dataset: str  # "fashion-mnist" or "cifar10"
    arch: str  # see advlogits.models.build_model
    method: Method  # "standard", "adversarial" (PGD-AT) or "distilled" (KD on clean inputs only)
    epochs: int  # passes over the training set
    batch_size: int  # images per SGD step
    lr: float  # peak learning rate of the triangular schedule (SGD, Nesterov momentum 0.9)
    weight_decay: float  # L2 penalty on all parameters
    n_train: int | None  # seeded subset of the training split; None = all of it
    seed: int  # fixes initialisation, data order and the attacks' random starts
    n_val: int = 1000  # test images whose clean accuracy is logged after every epoch (curves only)
    eps: float = 0.0  # AT: L-inf radius in [0, 1] pixel units
    alpha: float = 0.0  # AT: PGD step size, pixel units
    steps: int = 0  # AT: PGD steps per training batch
    teacher: TrainConfig | None = None  # distilled: the model whose logits are the targets
    targets: str = "kd"  # distilled: how the teacher's logits are turned into targets (advlogits.distill)
    reference: TrainConfig | None = None  # distilled: second teacher some targets need (e.g. ST ordering)
    T: float = 1.0  # distilled: softmax temperature of the KD loss
    label_corrected: bool = False  # distilled: label-correct the teacher (true class swapped to the top) first
    confidence: float | None = None  # distilled, targets "flatten": the confidence set; None: the teacher's average
    precision: str = "fp32"  # "fp32", or "bf16" autocast for forward passes (advlogits.accel; GPUs)
    compile: bool = False  # train through torch.compile (advlogits.accel; GPUs)
    augment: str = "none"  # training-batch augmentation: "none", or "crop-flip" (random padded crop and flip)

    def __post_init__(self) -> None:
        _check_config(self)


def _check_config(c: TrainConfig) -> None:
    """Refuse an invalid config when it is made, so a bad value fails before anything is trained (a student's
    temperature, say, before its teacher). Sizes that depend on the data set are checked when it is loaded."""
    try:
        check_choice("dataset", c.dataset, DATASETS)
        check_choice("arch", c.arch, ARCHS)
        check_choice("arch", c.arch, ARCHS_FOR[c.dataset], hint=f"those are the architectures that fit {c.dataset}")
        check_choice("method", c.method, METHODS)
        check_options(c.precision, c.compile)
        check_choice("augment", c.augment, AUGMENTATIONS)
        info = dataset_info(c.dataset)
        for name in ("epochs", "batch_size"):
            check_int(name, getattr(c, name), at_least=1)
        check_int("n_val", c.n_val, at_least=1, at_most=info.test_size, hint=f"the {c.dataset} test split's size")
        if c.n_train is not None:
            check_int(
                "n_train",
                c.n_train,
                at_least=1,
                at_most=info.train_size,
                hint=f"None trains on all {info.train_size} images of {c.dataset}",
            )
        check_seed("seed", c.seed)
        check_number("lr", c.lr, above=0)
        check_number("weight_decay", c.weight_decay, at_least=0)
        if c.method == "adversarial":
            check_number("eps", c.eps, above=0, below=1, hint="an L-inf radius in pixel units")
            check_number("alpha", c.alpha, above=0, at_most=c.eps)
            check_int("steps", c.steps, at_least=1)
        if c.method == "distilled":
            if c.teacher is None:
                fail("teacher", "a teacher config for a distilled config", None)
            check_choice("targets", c.targets, TARGET_KINDS)
            check_number("T", c.T, above=0)
            if (c.targets in REFERENCE_TARGETS) != (c.reference is not None):
                fail(
                    "reference",
                    f"a second teacher for targets in {REFERENCE_TARGETS}, and None otherwise",
                    c.reference,
                    shown="None" if c.reference is None else "a config",
                )
            if c.confidence is not None:
                if c.targets != "flatten":
                    fail("confidence", "None unless targets is 'flatten'", c.confidence, hint="drop it")
                check_number("confidence", c.confidence, above=0, below=1, hint="a softmax probability, e.g. 0.5")
            for name in ("teacher", "reference"):
                other = getattr(c, name)
                if other is not None and other.dataset != c.dataset:
                    fail(name, f"a model of the student's data set {c.dataset!r}", other.dataset)
    except ValueError as error:
        raise ValueError(f"TrainConfig: {error}") from None


def triangular_lr(step: int, total: int, *, warmup: float = 0.2) -> float:
    """Learning-rate factor in [0, 1]: linear rise over the first ``warmup`` fraction of steps, then linear decay
    to 0."""
    peak = max(1, round(warmup * total))
    if step < peak:
        return (step + 1) / peak
    return max(0.0, (total - step) / max(1, total - peak))


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """The CPU generator of one (seed, epoch, stream) triple (the streams are `STREAM_ORDER`, `STREAM_ATTACK`,
    `STREAM_AUGMENT` and `STREAM_VAL_ATTACK`): an epoch's randomness depends on the seed and the epoch alone, so a
    run resumed at an epoch reproduces it.

    Examples::

        order = torch.randperm(len(x), generator=epoch_generator(config.seed, epoch, STREAM_ORDER))
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


_DESCRIPTIONS = {"standard": "ST", "adversarial": "AT", "distilled": "KD"}  # the progress bar's label of a method


def _check_method(config: object, method: str) -> None:
    if not isinstance(config, TrainConfig) or config.method != method:
        fail(
            "config",
            f"a TrainConfig with method={method!r}",
            getattr(config, "method", config),
            hint="each training function trains the method its config names",
        )


def _check_data(x: Tensor, target: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        fail("x", "a tensor of shape (N, C, H, W)", x, shown=str(tuple(getattr(x, "shape", ()))))
    if len(target) != len(x):
        fail("targets", f"one row per image ({len(x)})", target, shown=f"{len(target)} rows")


def fit(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    config: TrainConfig,
    *,
    step: LossStep,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
    y_true: Tensor | None = None,
    epoch_metrics: EpochMetrics | None = None,
) -> dict:
    """The one training loop, with the hyper-parameters of ``config`` (epochs, batch_size, lr, weight_decay, seed,
    precision, compile, augment). ``target`` is what ``step`` consumes (labels or teacher logits); ``y_true`` counts
    accuracy. ``step(net, x batch, target batch, attack generator)`` returns the loss and the logits.

    ``checkpoint``: where the weights, optimizer, scheduler and history are saved after every epoch but the last, and
    resumed from when the file exists. None is written after the last epoch: the caller stores the trained model next
    (a run killed before that retrains only its last epoch), and a ResNet's checkpoint, optimizer state included, is
    twice the model's size.

    ``step`` gets the `accelerate`-d model (bf16 autocast and/or compiled, sharing ``model``'s weights); the loop
    never reads a value back from the device inside an epoch, so a GPU runs ahead of the host.

    ``config.augment`` transforms every training batch on its device before ``step`` sees it (so adversarial training
    attacks the augmented batch), drawing from ``epoch_generator(seed, epoch, STREAM_AUGMENT)``: a resumed run sees
    the same augmentations. "none" draws nothing and changes nothing.

    ``epoch_metrics(model, epoch)``, if given, runs after each epoch's ``val_acc`` (``epoch`` counts from 0); each
    value of the dict it returns is appended to ``history[key]``. It must leave the weights, the model's modes and
    the global RNG as it found them, and draw its randomness from its own generator (e.g. ``epoch_generator(seed,
    epoch, STREAM_VAL_ATTACK)``). Its values travel in the checkpoint with the rest of the history.
    """
    _check_data(x, target)
    net = accelerate(model, precision=config.precision, compile=config.compile)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: triangular_lr(s, total))
    ckpt = Path(checkpoint) if checkpoint is not None else None
    history, start = _resume(ckpt, model, optimizer, scheduler, epochs=config.epochs)
    model.train()
    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        label = f"{_DESCRIPTIONS[config.method]} epoch {epoch + 1}/{config.epochs}"
        batches = tqdm(range(steps_per_epoch), desc=label, disable=not progress, mininterval=2.0, leave=False)
        train = _train_epoch(net, model, (x, target, y_true), config, epoch, step, (optimizer, scheduler), batches)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(train["train_loss"])
        history["train_acc"].append(train["train_acc"])
        history["batch_loss"].extend(train["batch_loss"])
        history["val_acc"].append(accuracy(model, x_val, y_val) if x_val is not None else float("nan"))
        for key, value in (epoch_metrics(model, epoch) if epoch_metrics is not None else {}).items():
            # a checkpoint written without this key gives the earlier epochs NaN
            history.setdefault(key, [float("nan")] * epoch).append(float(value))
        history["seconds"].append(time.perf_counter() - began)
        model.train()
        if ckpt is not None and epoch + 1 < config.epochs:  # after the last epoch the caller stores the model
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            state.update(scheduler=scheduler.state_dict(), epoch=epoch, history=history)
            _save_checkpoint(ckpt, state)
    model.eval()
    return history


def _resume(
    ckpt: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: object, *, epochs: int
) -> tuple[dict, int]:
    """The history so far and the first epoch to run: from the checkpoint when it exists (the weights, optimizer and
    scheduler loaded from it), else an empty history and epoch 0."""
    if ckpt is None or not ckpt.exists():
        return {key: [] for key in ("epoch", "train_loss", "train_acc", "val_acc", "seconds", "batch_loss")}, 0
    state = _load_checkpoint(ckpt, model, epochs=epochs)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["history"], state["epoch"] + 1


def _train_epoch(
    net: nn.Module,
    model: nn.Module,
    data: tuple[Tensor, Tensor, Tensor | None],
    config: TrainConfig,
    epoch: int,
    step: LossStep,
    optimization: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler],
    batches: Iterable[int],
) -> dict[str, Any]:
    """One pass over the training images ``data`` (x, target, y_true) in the epoch's order: each batch augmented,
    its loss from ``step``, one SGD step. Returns the epoch's ``train_loss`` (mean), ``train_acc`` (NaN without
    ``y_true``) and ``batch_loss`` (every batch's), read back from the device once, at the end."""
    (x, target, y_true), (optimizer, scheduler) = data, optimization
    device = model_device(model)
    order = torch.randperm(len(x), generator=epoch_generator(config.seed, epoch, STREAM_ORDER))
    attack_gen = epoch_generator(config.seed, epoch, STREAM_ATTACK)
    augment_gen = epoch_generator(config.seed, epoch, STREAM_AUGMENT)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    batch_losses = []
    for b in batches:
        idx = order[b * config.batch_size : (b + 1) * config.batch_size]
        xb, tb = to_device(x[idx], device), to_device(target[idx], device)
        xb = augment(xb, config.augment, generator=augment_gen)  # "none": xb itself, nothing drawn
        loss, logits = step(net, xb, tb, attack_gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        model.train()
        detached = loss.detach()
        batch_losses.append(detached)
        loss_sum += detached * len(idx)
        if y_true is not None:
            correct += (logits.detach().argmax(1) == to_device(y_true[idx], device)).sum()
    return {
        "train_loss": loss_sum.item() / len(x),
        "train_acc": correct.item() / len(x) if y_true is not None else float("nan"),
        "batch_loss": torch.stack(batch_losses).tolist(),
    }


def _save_checkpoint(path: Path, state: dict) -> None:
    atomic_torch_save(state, path)


def _load_checkpoint(path: Path, model: nn.Module, *, epochs: int) -> dict:
    """Read a checkpoint of `fit` safely and load its weights into ``model``, refusing one that does not fit
    (wrong keys or shapes, named; missing parts; an epoch outside this run) with a StoreError that says what to do."""
    state = safe_torch_load(path)
    parts = ("model", "optimizer", "scheduler", "epoch", "history")
    missing = [k for k in parts if not isinstance(state, dict) or k not in state]
    if missing:
        raise StoreError(
            f"checkpoint {path} lacks {', '.join(missing)}: it was not written by this training loop. "
            f"Delete it to train from scratch."
        )
    if not (isinstance(state["epoch"], int) and 0 <= state["epoch"] < epochs):
        raise StoreError(
            f"checkpoint {path} ends at epoch index {state['epoch']!r}, outside this run of {epochs} "
            f"epochs: it belongs to another run. Delete it to train from scratch."
        )
    load_state_dict_checked(model, state["model"], source=f"checkpoint {path}")
    return state


def train_standard(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
) -> dict:
    """Standard (clean) training with cross-entropy, as ``config`` (method "standard") says. x: (N, C, H, W) in [0, 1];
    y: (N,) int64.

    Returns the history: per-epoch ``train_loss``, ``train_acc``, ``val_acc`` (clean accuracy on x_val),
    ``seconds``, and every batch's loss in ``batch_loss``. ``config.augment`` transforms every training batch (see
    `fit`).

    Examples::

        history = train_standard(model, x, y, profiles.resolve("smoke").standard())
    """
    _check_method(config, "standard")

    def step(m: nn.Module, xb: Tensor, yb: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        logits = m(xb)
        return F.cross_entropy(logits, yb), logits

    run = dict(checkpoint=checkpoint, progress=progress, x_val=x_val, y_val=y_val)
    return fit(model, x, y, config, step=step, y_true=y, **run)


def train_adversarial(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
) -> dict:
    """PGD adversarial training (Madry et al. 2018), as ``config`` (method "adversarial") says: every batch is
    replaced by its L-inf PGD attack.

    The attack (random start, ``config.steps`` steps of size ``config.alpha`` in the ``config.eps`` ball, pixel units)
    runs in eval mode on the (augmented, see `fit`) batch; its random starts come from ``epoch_generator(seed, epoch,
    STREAM_ATTACK)``. ``train_acc`` is the accuracy on the adversarial batches, ``val_acc`` the clean accuracy on
    x_val.

    With x_val given, the history also holds ``val_pgd_acc``: after every epoch, the fraction of x_val still
    classified correctly under the same attack (`advlogits.evaluation.attack_correct` with ``early_stop=True``, eval
    mode, the model's float32 weights), its random starts drawn from ``epoch_generator(seed, epoch,
    STREAM_VAL_ATTACK)``. It draws nothing from the global RNG and restores the model's modes, so the trained weights
    are those of the same run without it. Standard and distilled training have no ``val_pgd_acc`` key.

    Examples::

        history = train_adversarial(model, x, y, profiles.resolve("smoke").adversarial(), x_val=x_val, y_val=y_val)
    """
    _check_method(config, "adversarial")
    attack = dict(eps=config.eps, alpha=config.alpha, steps=config.steps)

    def step(m: nn.Module, xb: Tensor, yb: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        x_adv = pgd(m, xb, yb, **attack, generator=gen)
        m.train()
        logits = m(x_adv)
        return F.cross_entropy(logits, yb), logits

    def val_pgd(m: nn.Module, epoch: int) -> dict[str, float]:
        if len(x_val) == 0:
            return {"val_pgd_acc": 0.0}  # as `accuracy` of no images
        kw = dict(attack="pgd", batch_size=config.batch_size, **attack, random_start=True, early_stop=True)
        correct = attack_correct(
            m, x_val, y_val, **kw, generator=epoch_generator(config.seed, epoch, STREAM_VAL_ATTACK)
        )
        return {"val_pgd_acc": correct.sum().item() / len(correct)}

    run = dict(checkpoint=checkpoint, progress=progress, x_val=x_val, y_val=y_val)
    return fit(model, x, y, config, step=step, y_true=y, epoch_metrics=val_pgd if x_val is not None else None, **run)


def train_distilled(
    student: nn.Module,
    x: Tensor,
    targets: Tensor,
    config: TrainConfig,
    *,
    y: Tensor | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
) -> dict:
    """Distillation on clean inputs only, as ``config`` (method "distilled") says: the student matches ``targets``
    (N, K teacher logits) with the KD loss at temperature ``config.T``.

    ``targets`` are precomputed (the teacher never runs inside the loop; `advlogits.pipeline.training` builds them
    from ``config.teacher``). Integer ``targets`` of shape (N,) are hard labels and use cross-entropy. ``y`` (true
    labels), if given, is only used to log ``train_acc``. ``config.augment`` transforms every training batch (see
    `fit`); the targets stay those of the original images.

    Examples::

        history = train_distilled(student, x, teacher_logits, config, y=y)
    """
    _check_method(config, "distilled")
    hard = targets.ndim == 1
    if not hard and (targets.ndim != 2 or not targets.is_floating_point()):
        shown = f"{tuple(targets.shape)}, {targets.dtype}"
        fail("targets", "(N, K) float logits or (N,) int64 labels", targets, shown=shown)

    def step(m: nn.Module, xb: Tensor, tb: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        logits = m(xb)
        loss = F.cross_entropy(logits, tb) if hard else kd_loss(logits, tb, T=config.T)
        return loss, logits

    run = dict(checkpoint=checkpoint, progress=progress, x_val=x_val, y_val=y_val)
    return fit(student, x, targets, config, step=step, y_true=y, **run)
