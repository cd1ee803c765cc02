"""The few calls a chapter makes: get a profile's models, their evaluation and their logits, all through the store.

Each function computes once and stores the result under the config that made it, so re-running a chapter
(or another chapter asking for the same model) costs a file read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from .accel import accelerate
from .attacks import autoattack_correct, robust_correct
from .data import input_shape, load_dataset
from .models import build_model
from .profiles import Profile
from .store import Store
from .train import TrainConfig, train_adversarial, train_distilled, train_standard


def model_for(config: TrainConfig) -> nn.Module:
    """A freshly initialised model of ``config`` (initialisation seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    return build_model(config.arch, num_classes=10, in_channels=input_shape(config.dataset)[0])


def train_from_config(config: TrainConfig, *, device: str | torch.device, checkpoint: Any = None,
                      progress: bool = True, store: Store | None = None) -> tuple[nn.Module, dict]:
    """Train the model ``config`` describes (resuming from ``checkpoint`` if it exists); returns (model, history)."""
    x, y = load_dataset(config.dataset, "train", n=config.n_train, seed=config.seed)
    x_val, y_val = load_dataset(config.dataset, "test", n=config.n_val, seed=config.seed)
    model = model_for(config).to(device)
    common = dict(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                  weight_decay=config.weight_decay, seed=config.seed, checkpoint=checkpoint, progress=progress,
                  x_val=x_val, y_val=y_val, precision=config.precision, compile=config.compile)
    if config.method == "standard":
        history = train_standard(model, x, y, **common)
    elif config.method == "adversarial":
        history = train_adversarial(model, x, y, eps=config.eps, alpha=config.alpha, steps=config.steps, **common)
    elif config.method == "distilled":
        targets = distillation_targets(config, x, y, device=device, store=store or Store())
        history = train_distilled(model, x, targets, T=config.T, y=y, **common)
    else:
        raise ValueError(f"method must be one of standard, adversarial, distilled (got {config.method!r})")
    return model.eval(), history


@torch.inference_mode()
def predict_logits(model: nn.Module, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Logits (N, K) of ``model`` on clean ``x``, in eval mode, returned on the CPU; the model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(x[i : i + batch_size].to(device, non_blocking=True)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def train_logits(config: TrainConfig, *, dataset: str, n_train: int | None, seed: int,
                 device: str | torch.device = "cpu", store: Store | None = None) -> Tensor:
    """Logits of the model ``config`` on the training images ``load_dataset(dataset, "train", n=n_train, seed=seed)``.

    These are a student's distillation targets (before any manipulation); stored once per teacher and image set.
    """
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model, _ = store.get_or_train(config, device=device)
        x, _ = load_dataset(dataset, "train", n=n_train, seed=seed)
        return {"logits": predict_logits(model, x)}

    params = {"dataset": dataset, "n_train": n_train, "seed": seed}
    return store.get_or_compute_tensors(config, "train-logits", params, compute)["logits"]


def distillation_targets(config: TrainConfig, x: Tensor, y: Tensor, *, device: str | torch.device,
                         store: Store) -> Tensor:
    """The targets of a distilled student: its teacher's logits on the student's training images, passed
    through ``config.targets`` (see `advlogits.distill.make_targets`)."""
    from .distill import correct_labels, make_targets

    if config.teacher is None:
        raise ValueError("a distilled config needs a teacher config")
    for other in (config.teacher, config.reference):
        if other is not None and other.dataset != config.dataset:
            raise ValueError(f"teacher and reference must be trained on the student's data set {config.dataset!r} "
                             f"(got {other.dataset!r})")
    images = dict(dataset=config.dataset, n_train=config.n_train, seed=config.seed, device=device, store=store)
    teacher = train_logits(config.teacher, **images)
    reference = train_logits(config.reference, **images) if config.reference else None
    average = None
    if config.targets in ("flatten", "label_smoothing"):  # the data-set average confidence of the teacher
        from .logits import confidence

        average = confidence(correct_labels(teacher, y) if config.corrected else teacher).mean().item()
    return make_targets(config.targets, teacher, y=y, corrected=config.corrected, reference=reference,
                        confidence=average, generator=torch.Generator().manual_seed(config.seed))


def eval_split(profile: Profile) -> tuple[Tensor, Tensor]:
    """The profile's fixed, seeded evaluation subset of the test split: (x, y)."""
    return load_dataset(profile.dataset, "test", n=profile.n_eval, seed=profile.seed)


def evaluate(profile: Profile, config: TrainConfig, *, store: Store | None = None, autoattack: bool = True,
             progress: bool = True) -> dict:
    """Clean, PGD (CE loss) and AutoAttack accuracy of the model ``config`` on the profile's evaluation subset.

    PGD: ``eval_steps`` steps of ``eval_alpha`` with a random start, ``eval_restarts`` restarts, on all
    ``n_eval`` images. AutoAttack (``autoattack_version``) on the first ``n_autoattack`` of them, as an ensemble
    with that PGD: an image counts as robust only if it is classified correctly and survives both, so AutoAttack
    runs only on the images PGD did not break (the ones it broke are non-robust whatever AutoAttack finds; this
    is what makes weak models cheap to evaluate, and the number can only be lower than AutoAttack's alone).
    PGD is re-reported on the AutoAttack images so the two can be compared. Accuracies are fractions in [0, 1];
    per-image correctness is kept so chapters can bootstrap confidence intervals.
    """
    store = store or Store()
    params = {k: getattr(profile, k) for k in ("eps", "eval_alpha", "eval_steps", "eval_restarts", "n_eval",
                                               "n_autoattack", "autoattack_version", "seed", "dataset")}
    params["autoattack"] = autoattack

    def compute() -> dict:
        model = evaluation_model(profile, config, store=store, progress=progress)
        x, y = eval_split(profile)
        logits = predict_logits(model, x)
        clean = (logits.argmax(1) == y)
        robust = clean & pgd_correct(model, x, y, eps=profile.eps, alpha=profile.eval_alpha,
                                     steps=profile.eval_steps, restarts=profile.eval_restarts, seed=profile.seed)
        result = {"clean_acc": clean.float().mean().item(), "pgd_acc": robust.float().mean().item(),
                  "clean_correct": clean.tolist(), "pgd_correct": robust.tolist(), "n_eval": len(y)}
        if autoattack and profile.n_autoattack > 0:
            k = profile.n_autoattack
            attacked = robust[:k].nonzero().flatten()
            survived = torch.zeros(k, dtype=torch.bool)
            if len(attacked):
                survived[attacked] = autoattack_correct(model, x[attacked], y[attacked], eps=profile.eps,
                                                        version=profile.autoattack_version, seed=profile.seed)
            result.update(autoattack_acc=survived.float().mean().item(), autoattack_correct=survived.tolist(),
                          pgd_acc_on_autoattack_subset=robust[:k].float().mean().item(), n_autoattack=k,
                          n_autoattacked=len(attacked))
        return result

    return store.get_or_compute_json(config, "evaluation", params, compute)


def evaluation_model(profile: Profile, config: TrainConfig, *, store: Store, progress: bool = True) -> nn.Module:
    """The model ``config`` (from the store, trained there if missing), run at the profile's ``precision``."""
    model, _ = store.get_or_train(config, device=profile.device, progress=progress)
    return accelerate(model, precision=profile.precision)


def pgd_correct(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int,
                restarts: int = 1, seed: int = 0, loss: str = "ce", batch_size: int = 500) -> Tensor:
    """Per-image robustness (N,) bool under L-inf PGD, computed in batches on the model's device (CPU result).

    The attack stops on each image at its first misclassified iterate (`pgd`'s ``early_stop``): the same or a
    lower accuracy than the plain attack, at a fraction of its cost against models that are easy to fool.
    """
    return robust_correct(model, x, y, attack="pgd", batch_size=batch_size, eps=eps, alpha=alpha, steps=steps,
                          restarts=restarts, loss=loss, generator=torch.Generator().manual_seed(seed),
                          early_stop=True)


def test_logits(profile: Profile, config: TrainConfig, *, store: Store | None = None) -> Tensor:
    """Logits (n_eval, K) of the model ``config`` on the profile's evaluation subset, stored once."""
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model, _ = store.get_or_train(config, device=profile.device)
        return {"logits": predict_logits(model, eval_split(profile)[0])}

    params = {"dataset": profile.dataset, "n_eval": profile.n_eval, "seed": profile.seed}
    return store.get_or_compute_tensors(config, "test-logits", params, compute)["logits"]


def describe(config: TrainConfig) -> dict:
    """A flat, JSON-able view of a config for tables (teachers shown by their method)."""
    out = dataclasses.asdict(config)
    for key in ("teacher", "reference"):
        if out[key] is not None:
            out[key] = getattr(config, key).method
    return out


GAP_FLAG = 0.05  # PAPER.md: flag a PGD / AutoAttack gap above 5 points


def accuracy_interval(correct: list[bool] | Tensor, *, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy and its bootstrap 95% CI, in percent, from per-image correctness (N,)."""
    from .logits import bootstrap_ci

    values = torch.as_tensor(correct, dtype=torch.float64)
    estimate, low, high = bootstrap_ci("mean", values, seed=seed)
    return 100 * estimate, 100 * low, 100 * high


def accuracy_table(results: dict[str, dict], *, pgd_steps: int):
    """Clean, PGD and AutoAttack accuracy (percent, with bootstrap 95% CIs), one row per model (a DataFrame).

    AutoAttack's interval is bootstrapped from its count of robust images (the same distribution as resampling
    its per-image outcomes).
    """
    import pandas as pd

    rows = {}
    for name, r in results.items():
        row = {"clean": accuracy_interval(r["clean_correct"]), f"PGD-{pgd_steps}": accuracy_interval(r["pgd_correct"])}
        if "autoattack_acc" in r:
            k, n = round(r["autoattack_acc"] * r["n_autoattack"]), r["n_autoattack"]
            row[f"PGD-{pgd_steps}, AutoAttack subset"] = accuracy_interval(r["pgd_correct"][:n])
            row["AutoAttack"] = accuracy_interval([True] * k + [False] * (n - k))
        rows[name] = {key: f"{e:.1f} [{lo:.1f}, {hi:.1f}]" for key, (e, lo, hi) in row.items()}
    return pd.DataFrame(rows).T


def gap_note(results: dict[str, dict]) -> str:
    """A sentence flagging models whose PGD accuracy exceeds their AutoAttack accuracy by more than 5 points."""
    flagged = [f"{name} ({100 * (r['pgd_acc_on_autoattack_subset'] - r['autoattack_acc']):.1f} points)"
               for name, r in results.items()
               if "autoattack_acc" in r and r["pgd_acc_on_autoattack_subset"] - r["autoattack_acc"] > GAP_FLAG]
    if not flagged:
        return "No model's PGD accuracy exceeds its AutoAttack accuracy by more than 5 points on the same images."
    return ("Flagged: PGD overstates the robustness of " + ", ".join(flagged) +
            " compared with AutoAttack on the same images; trust the AutoAttack number.")
