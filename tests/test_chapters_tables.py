"""Tests for advlogits.chapters.tables: the accuracy tables (with intervals, and as numbers with PGD-CW), the
interval table, and the notes that flag PGD accuracies far above AutoAttack's, against hand computations.

Bootstrap intervals of an accuracy are checked against the binomial distribution they estimate: resampling n
per-image outcomes with k correct gives k* ~ Binomial(n, k / n), so the 95% bounds lie near its 2.5% and 97.5%
quantiles.
"""

from __future__ import annotations

import re

import pytest
from scipy import stats

from advlogits.chapters import tables
from advlogits.chapters.tables import PGD_EXCESS_FLAG, accuracy_table, interval_table, pgd_excess_note, pgd_excess_notes
from advlogits.stats import accuracy_interval


def _cell(text: str) -> tuple[float, float, float]:
    """ "90.0 [84.0, 95.0]" -> (90.0, 84.0, 95.0)."""
    estimate, interval = text.replace("\u00a0", " ").split(" [")
    low, high = interval.rstrip("]").split(", ")
    return float(estimate), float(low), float(high)


def _bracket(text: str) -> tuple[float, float]:
    low, high = text.strip("[]").split(", ")
    return float(low), float(high)


def _binomial_bounds(k: int, n: int) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of Binomial(n, k / n), in percent of n."""
    return 100 * stats.binom.ppf(0.025, n, k / n) / n, 100 * stats.binom.ppf(0.975, n, k / n) / n


# ---------------------------------------------------------------------------------------------------------
# accuracy_table with intervals (chapter 1)
# ---------------------------------------------------------------------------------------------------------


def outcomes(**counts: int) -> dict:
    """An evaluation of 100 AutoAttack images (200 evaluation images) from counts of correct images per attack; the
    worst case is the first min(counts) images."""
    n = 100
    keys = {
        "clean": "clean_correct",
        "ce": "pgd_correct",
        "cw": "pgd_cw_correct",
        "aa": "autoattack_correct",
        "worst": "robust_correct",
    }
    out = {key: [True] * counts[name] + [False] * (n - counts[name]) for name, key in keys.items()}
    for key in ("clean_correct", "pgd_correct", "pgd_cw_correct"):
        out[key] = out[key] + [False] * 100  # the evaluation images beyond AutoAttack's do not count
    return {**out, "n_autoattack": n}


def test_accuracy_table_compares_every_attack_on_autoattack_images_with_intervals():
    results = {
        "AT": outcomes(clean=80, ce=70, cw=68, aa=69, worst=66),
        "ST": outcomes(clean=90, ce=5, cw=4, aa=3, worst=2),
    }
    table = accuracy_table(results, pgd_steps=20)
    assert list(table.columns) == ["clean (%)", "PGD-20 CE (%)", "PGD-20 CW (%)", "AutoAttack (%)", "worst case (%)"]
    assert list(table.index) == ["AT", "ST"]
    cells = {column: _cell(table.loc["AT", column]) for column in table.columns}
    assert [c[0] for c in cells.values()] == [80.0, 70.0, 68.0, 69.0, 66.0], "on the first 100 images only"
    for (_, low, high), k in zip(cells.values(), (80, 70, 68, 69, 66)):
        expected_low, expected_high = _binomial_bounds(k, 100)
        assert abs(low - expected_low) <= 2.0 and abs(high - expected_high) <= 2.0
    assert all(re.fullmatch(r"\d+\.\d\u00a0\[\d+\.\d,\u00a0\d+\.\d\]", cell) for cell in table.loc["AT"]), (
        "one decimal; the interval joined by no-break spaces, so it never wraps"
    )
    estimate, low, high = accuracy_interval([True] * 500 + [False] * 500)
    assert estimate == 50 and abs((high - low) / 2 - 1.96 * 100 * (0.25 / 1000) ** 0.5) < 0.5


def test_accuracy_table_as_numbers_and_without_autoattack():
    table = accuracy_table({"AT": outcomes(clean=80, ce=70, cw=68, aa=69, worst=66)}, pgd_steps=7, intervals=False)
    assert table.loc["AT"].tolist() == [80.0, 70.0, 68.0, 69.0, 66.0]
    survivors_only = {
        k: v for k, v in outcomes(clean=80, ce=70, cw=68, aa=66, worst=66).items() if k != "autoattack_correct"
    }  # AutoAttack ran on the PGD survivors: no own number
    table = accuracy_table({"KD-AT": survivors_only}, pgd_steps=7)
    assert table.loc["KD-AT", "AutoAttack (%)"] == "n/a" and table.loc["KD-AT", "worst case (%)"].startswith("66.0")
    with pytest.raises(
        ValueError,
        match=r"^results must be evaluations with AutoAttack \(n_autoattack > 0\) "
        r"\(got 'ST'\)",
    ):
        accuracy_table({"ST": {"clean_correct": [True]}}, pgd_steps=7)


def test_pgd_excess_notes_on_hand_made_results():
    results = {
        "KD-AT": {"pgd_acc_on_autoattack_subset": 0.60, "pgd_cw_acc_on_autoattack_subset": 0.44, "robust_acc": 0.42},
        "KD-ST": {"pgd_acc_on_autoattack_subset": 0.14, "pgd_cw_acc_on_autoattack_subset": 0.12, "robust_acc": 0.12},
    }
    assert pgd_excess_notes(results) == (
        "Against the worst case over all attacks on the same images, PGD with the CE loss overstates by more than 5 "
        "points the robustness of KD-AT (18.0 points); PGD with the CW loss, of none. Every claim reads the worst "
        "case."
    )


def test_interval_table_formats_estimate_and_bounds():
    table = interval_table({"ST": {"max logit": (1.234, 1.0, 1.5)}})
    assert table.loc["ST", "max logit"] == "1.23\u00a0[1.00,\u00a01.50]"
    rows = {
        "ST": {"max logit": (1.234, 1.0, 1.5), "logit gap": (0.5, 0.25, 0.75)},
        "AT - ST (paired)": {"max logit": (-2.0, -2.5, -1.456), "logit gap": (-0.1, -0.2, 0.0)},
    }
    table = interval_table(rows, digits=1)
    assert list(table.index) == ["ST", "AT - ST (paired)"] and list(table.columns) == ["max logit", "logit gap"]
    assert table.loc["AT - ST (paired)", "max logit"] == "-2.0\u00a0[-2.5,\u00a0-1.5]"
    assert table.loc["ST", "logit gap"] == "0.5\u00a0[0.2,\u00a00.8]"
    assert interval_table(rows, digits=3).loc["AT - ST (paired)", "logit gap"] == "-0.100\u00a0[-0.200,\u00a00.000]"


# ---------------------------------------------------------------------------------------------------------
# PGD against AutoAttack
# ---------------------------------------------------------------------------------------------------------


def test_pgd_excess_note_flags_only_large_excesses():
    assert PGD_EXCESS_FLAG == 0.05
    ok = {"AT": {"pgd_acc_on_autoattack_subset": 0.70, "robust_acc": 0.66}}
    bad = {"KD": {"pgd_acc_on_autoattack_subset": 0.60, "robust_acc": 0.42}}
    assert pgd_excess_note(ok) == (
        "No model's PGD accuracy exceeds its worst case over all attacks (AutoAttack "
        "included) by more than 5 points on the same images."
    )
    assert "KD (18.0 points)" in pgd_excess_note({**ok, **bad})
    assert pgd_excess_note({**ok, **bad}) == (
        "Flagged: PGD overstates the robustness of KD (18.0 points) compared "
        "with the worst case over all attacks on the same images; trust the "
        "worst case."
    )
    assert pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": 0.56, "robust_acc": 0.50}}).startswith("Flagged")
    assert pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": 0.54, "robust_acc": 0.50}}).startswith("No model")
    # models without AutoAttack are not compared; several flagged models are listed in order
    two = {
        "A": {"pgd_acc_on_autoattack_subset": 0.9, "robust_acc": 0.1},
        "B": {"pgd_acc_on_autoattack_subset": 0.9},
        "C": {"pgd_acc_on_autoattack_subset": 0.5, "robust_acc": 0.3},
    }
    assert "of A (80.0 points) and C (20.0 points) compared" in pgd_excess_note(two)


def test_pgd_excess_note_with_the_cw_loss_reads_the_cw_accuracy():
    results = {
        "M": {"pgd_acc_on_autoattack_subset": 0.40, "pgd_cw_acc_on_autoattack_subset": 0.80, "robust_acc": 0.40},
        "no CW": {"pgd_acc_on_autoattack_subset": 0.40, "robust_acc": 0.40},
    }
    assert pgd_excess_note(results).startswith("No model")
    cw = pgd_excess_note(results, loss="CW")
    assert "M (40.0 points)" in cw and "no CW" not in cw
    both = pgd_excess_notes(results)
    assert both.endswith(
        "the robustness of none; PGD with the CW loss, of M (40.0 points). Every claim reads the worst case."
    )
    assert tables.pgd_excess_notes({}) == (
        "Neither PGD with the CE loss nor PGD with the CW loss overstates any model's robustness by more than 5 "
        "points against the worst case over all attacks on the same images."
    )


def test_an_excess_of_exactly_five_points_is_not_flagged():
    """Accuracies are multiples of 1/n: 0.55 - 0.50 in floats is a hair above 0.05, and is still not "more than"."""
    for pgd, aa in ((0.55, 0.50), (0.575, 0.525), (0.15, 0.10)):
        note = pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": pgd, "robust_acc": aa}})
        assert note.startswith("No model"), (pgd, aa)
    note = pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": 0.56, "robust_acc": 0.50}})
    assert note.startswith("Flagged") and "M (6.0 points)" in note


def test_pgd_excess_note_summarises_many_flagged_models_in_one_clause():
    results = {f"S{i}": {"pgd_acc_on_autoattack_subset": 0.50 + 0.01 * i, "robust_acc": 0.40} for i in range(6)}
    results["clean"] = {"pgd_acc_on_autoattack_subset": 0.40, "robust_acc": 0.40}
    note = pgd_excess_note(results)
    assert note == (
        "Flagged: PGD overstates the robustness of 6 of 7 models by 10.0 to 15.0 points (most: S5) compared with "
        "the worst case over all attacks on the same images; trust the worst case."
    )
