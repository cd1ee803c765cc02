"""Chapter 1, standard and adversarial training: the run's settings, and the logits of ST and AT at a glance."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
from torch import Tensor

from ..profiles import Profile


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


def statistic_means(logits: Mapping[str, Tensor], statistics: Mapping[str, Callable[[Tensor], Tensor]]
                    ) -> pd.DataFrame:
    """The mean of each per-image statistic (columns) for each model (rows)."""
    return pd.DataFrame({name: {stat: f(z).mean().item() for stat, f in statistics.items()}
                         for name, z in logits.items()}).T
