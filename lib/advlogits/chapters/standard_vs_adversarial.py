"""Chapter 1, standard and adversarial training: the run's settings, and the logits of ST and AT at a glance."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
from torch import Tensor

from ..profiles import Profile
from ..stats import accuracy_interval


def settings_table(profile: Profile) -> pd.DataFrame:
    """The hyper-parameters of this run that the chapter's models and evaluation depend on, one row each."""
    settings = {
        "data set, architecture": f"{profile.dataset}, {profile.arch}",
        "training images": profile.n_train or "all",
        "ST / AT epochs": f"{profile.epochs} / {profile.adv_epochs}",
        "batch size, peak learning rate": f"{profile.batch_size}, {profile.lr}",
        "AT attack: eps, alpha, steps": f"{profile.eps:.4g}, {profile.alpha:.4g}, {profile.steps}",
        "PGD evaluation: images, alpha, steps": f"{profile.n_eval}, {profile.eval_alpha:.4g}, {profile.eval_steps}",
        "AutoAttack: images, version": f"{profile.n_autoattack}, {profile.autoattack_version}",
        "device": profile.device,
    }
    return pd.Series(settings, name="value").to_frame()


def statistic_means(logits: Mapping[str, Tensor], statistics: Mapping[str, Callable[[Tensor], Tensor]]) -> pd.DataFrame:
    """The mean of each per-image statistic (columns) for each model (rows)."""
    return pd.DataFrame(
        {name: {stat: f(z).mean().item() for stat, f in statistics.items()} for name, z in logits.items()}
    ).T


ROBUST_MARGIN = 0.10  # chapter 1 calls the models what their names promise when AT keeps this much more than ST
CATASTROPHIC_DROP = 0.20  # catastrophic overfitting: validation PGD accuracy falls by more than this in one epoch
ROBUST_OVERFIT_DROP = 0.03  # robust overfitting: the last epoch's PGD accuracy this far below the best epoch's
_SLACK = 1e-9  # accuracies are multiples of 1/n: a fall of exactly the threshold is not "more than" it


def overfitting_flags(history: Mapping) -> dict:
    """The adversarial-training flags of the book's protocol, from the validation PGD accuracy logged every epoch:
    catastrophic overfitting (a fall of more than `CATASTROPHIC_DROP` between two epochs) and robust overfitting
    (the last epoch more than `ROBUST_OVERFIT_DROP` below the best). No checkpoint is selected: the last epoch is the
    model, whatever the flags say. Without the logged values both flags are None."""
    values = [v for v in history.get("val_pgd_acc", []) if v == v]  # NaN-free
    if not values:
        return {"catastrophic": None, "robust_overfitting": None, "best_epoch": None, "last": None, "best": None}
    falls = [a - b for a, b in zip(values, values[1:])]
    best = max(values)
    return {
        "catastrophic": any(f > CATASTROPHIC_DROP + _SLACK for f in falls),
        "robust_overfitting": best - values[-1] > ROBUST_OVERFIT_DROP + _SLACK,
        "best_epoch": values.index(best) + 1,
        "last": values[-1],
        "best": best,
    }


def subset_accuracies(result: Mapping) -> dict[str, float]:
    """Accuracies (fractions) on AutoAttack's images, from an `advlogits.pipeline.evaluate` result: clean, each
    attack, and the per-image worst case, so that every number compares on the same images."""
    k = result["n_autoattack"]
    keys = {
        "clean": "clean_correct",
        "PGD-CE": "pgd_correct",
        "PGD-CW": "pgd_cw_correct",
        "AutoAttack": "autoattack_correct",
        "robust (worst case)": "robust_correct",
    }
    return {label: sum(result[key][:k]) / k for label, key in keys.items()}


def subset_intervals(result: Mapping, *, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """`subset_accuracies` with bootstrap 95% intervals over the images: {measure: (estimate, low, high)} as
    fractions, for `advlogits.chapters.figures.accuracy_dots`. AutoAttack's own number is left out where it was not
    measured (AutoAttack run on the PGD survivors only)."""
    k = result["n_autoattack"]
    keys = {
        "clean": "clean_correct",
        "PGD-CE": "pgd_correct",
        "PGD-CW": "pgd_cw_correct",
        "AutoAttack": "autoattack_correct",
        "worst case": "robust_correct",
    }
    return {
        label: tuple(v / 100 for v in accuracy_interval(result[key][:k], seed=seed))
        for label, key in keys.items()
        if key in result
    }


def overfitting_note(flags: Mapping) -> str:
    """A sentence on the AT teacher's training from `overfitting_flags`."""
    if flags["catastrophic"] is None:
        return "The adversarial training of this run logged no validation PGD accuracy."
    problems = [
        text
        for key, text in (("catastrophic", "catastrophic overfitting"), ("robust_overfitting", "robust overfitting"))
        if flags[key]
    ]
    found = (
        "It shows " + " and ".join(problems) + ": the last epoch is kept anyway, as the protocol says."
        if problems
        else "It shows neither catastrophic nor robust overfitting."
    )
    return (
        f"The AT model's validation PGD accuracy was best at epoch {flags['best_epoch']} "
        f"({100 * flags['best']:.1f}%) and ends at {100 * flags['last']:.1f}%. {found}"
    )
