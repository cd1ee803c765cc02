"""Tests for advlogits.chapters.standard_vs_adversarial (chapter 1): the run's settings table and the means of the
per-image statistics."""

from __future__ import annotations

import pytest
import torch

from advlogits import profiles
from advlogits.chapters import standard_vs_adversarial as chapter
from advlogits.logits import confidence, logit_gap, max_logit


def test_settings_table_shows_the_profiles_values():
    p = profiles.resolve("smoke", device="cpu")
    table = chapter.settings_table(p)
    assert list(table.columns) == ["value"]
    assert table["value"].to_dict() == {
        "data set, architecture": "fashion-mnist, cnn-small",
        "training images": 512,
        "ST / AT epochs": "1 / 1",
        "batch size, peak learning rate": "128, 0.05",
        "AT attack: eps, alpha, steps": "0.1, 0.05, 2",
        "PGD evaluation: images, alpha, steps": "128, 0.025, 5",
        "AutoAttack: images, version": "32, fast",
        "device": "cpu",
    }


def test_settings_table_follows_overrides_and_the_whole_training_split():
    p = profiles.resolve("cpu", device="cpu", eps=8 / 255, epochs=2, n_eval=300, n_autoattack=200)
    value = chapter.settings_table(p)["value"]
    assert value["training images"] == "all"  # n_train None: the whole split
    assert value["ST / AT epochs"] == f"2 / {p.adv_epochs}"
    assert value["AT attack: eps, alpha, steps"] == f"0.03137, {p.alpha:.4g}, {p.steps}"
    assert value["PGD evaluation: images, alpha, steps"] == f"300, {p.eval_alpha:.4g}, {p.eval_steps}"


def test_statistic_means_by_hand():
    z = {"ST": torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), "AT": torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.5, 0.0]])}
    means = chapter.statistic_means(z, {"max logit": max_logit, "logit gap": logit_gap, "confidence": confidence})
    assert list(means.index) == ["ST", "AT"] and list(means.columns) == ["max logit", "logit gap", "confidence"]
    assert means.loc["ST", "max logit"] == pytest.approx(2.5)  # (3 + 2) / 2
    assert means.loc["ST", "logit gap"] == pytest.approx(1.5)  # (2 + 1) / 2
    assert means.loc["AT", "max logit"] == pytest.approx(0.75)
    assert means.loc["AT", "logit gap"] == pytest.approx(0.25)  # a tie at the top has gap 0; (0 + 0.5) / 2
    e = torch.e
    expected = (1 / (2 + 1 / e) + e**0.5 / (e**0.5 + 2)) / 2
    assert means.loc["AT", "confidence"] == pytest.approx(expected, rel=1e-6)


def test_overfitting_flags_and_their_sentence():
    steady = {"val_pgd_acc": [0.40, 0.55, 0.60]}
    flags = chapter.overfitting_flags(steady)
    assert flags == {"catastrophic": False, "robust_overfitting": False, "best_epoch": 3, "last": 0.60, "best": 0.60}
    assert chapter.overfitting_note(flags).endswith("It shows neither catastrophic nor robust overfitting.")
    collapse = chapter.overfitting_flags({"val_pgd_acc": [0.40, 0.45, 0.10]})
    assert collapse["catastrophic"] and collapse["robust_overfitting"] and collapse["best_epoch"] == 2
    assert "catastrophic overfitting and robust overfitting" in chapter.overfitting_note(collapse)
    slow = chapter.overfitting_flags({"val_pgd_acc": [0.40, 0.50, 0.46]})  # a 4-point fall, not 20
    assert (slow["catastrophic"], slow["robust_overfitting"]) == (False, True)
    edge = chapter.overfitting_flags({"val_pgd_acc": [0.50, 0.30, 0.47]})  # exactly 20 points is not "more than"
    assert edge["catastrophic"] is False and edge["robust_overfitting"] is False
    assert chapter.overfitting_flags({})["catastrophic"] is None
    assert chapter.overfitting_note(chapter.overfitting_flags({})).startswith("The adversarial training of this run")


def test_subset_accuracies_read_autoattacks_images_only():
    result = {
        "n_autoattack": 4,
        "clean_correct": [True, True, True, False, True, True],
        "pgd_correct": [True, True, False, False, False, False],
        "pgd_cw_correct": [True, False, False, False],
        "autoattack_correct": [True, True, False, False],
        "robust_correct": [True, False, False, False],
    }
    assert chapter.subset_accuracies(result) == {
        "clean": 0.75,
        "PGD-CE": 0.5,
        "PGD-CW": 0.25,
        "AutoAttack": 0.5,
        "robust (worst case)": 0.25,
    }


def test_subset_intervals_measure_every_attack_on_autoattack_images_with_intervals():
    from advlogits.chapters.standard_vs_adversarial import subset_intervals

    k = 100
    result = {
        "n_autoattack": k,
        "clean_correct": [True] * 80 + [False] * 20 + [True] * 50,
        "pgd_correct": [True] * 60 + [False] * 40 + [True] * 50,
        "pgd_cw_correct": [True] * 55 + [False] * 45,
        "robust_correct": [True] * 50 + [False] * 50,
    }
    intervals = subset_intervals(result)
    assert list(intervals) == ["clean", "PGD-CE", "PGD-CW", "worst case"], "no AutoAttack number: none shown"
    assert [round(v[0], 6) for v in intervals.values()] == [0.8, 0.6, 0.55, 0.5], "the first k images only"
    for e, lo, hi in intervals.values():
        assert lo < e < hi and hi - lo < 0.25
