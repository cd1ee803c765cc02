"""Tests for advlogits.chapters.tables: the accuracy tables (with intervals, and as numbers with PGD-CW), the
interval table, and the notes that flag PGD accuracies far above AutoAttack's, against hand computations.

Bootstrap intervals of an accuracy are checked against the binomial distribution they estimate: resampling n
per-image outcomes with k correct gives k* ~ Binomial(n, k / n), so the 95% bounds lie near its 2.5% and 97.5%
quantiles.
"""

from __future__ import annotations

import math
import re

import pytest
from scipy import stats

from advlogits.chapters import tables
from advlogits.chapters.tables import PGD_EXCESS_FLAG, accuracy_table, interval_table, pgd_excess_note, pgd_excess_notes
from advlogits.stats import accuracy_interval


def _cell(text: str) -> tuple[float, float, float]:
    """"90.0 [84.0, 95.0]" -> (90.0, 84.0, 95.0)."""
    estimate, interval = text.split(" [")
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


def test_accuracy_table_shows_bootstrap_intervals():
    results = {"ST": {"clean_correct": [True] * 90 + [False] * 10, "pgd_correct": [True] * 5 + [False] * 95,
                      "autoattack_acc": 0.02, "n_autoattack": 50}}
    table = accuracy_table(results, pgd_steps=20)
    assert list(table.columns) == ["clean", "PGD-20", "PGD-20, AutoAttack subset", "AutoAttack"]
    assert table.loc["ST", "clean"].startswith("90.0 [")
    assert table.loc["ST", "AutoAttack"].startswith("2.0 [0.0, ")
    estimate, low, high = accuracy_interval([True] * 500 + [False] * 500)
    half_width = 1.96 * 100 * (0.25 / 1000) ** 0.5  # normal approximation: 3.1 points
    assert estimate == 50 and abs((high - low) / 2 - half_width) < 0.5


def test_accuracy_table_intervals_against_the_binomial():
    results = {"ST": {"clean_correct": [True] * 90 + [False] * 10,
                      "pgd_correct": [True] * 5 + [False] * 45 + [True] * 25 + [False] * 25,
                      "autoattack_acc": 0.02, "n_autoattack": 50},
               "AT": {"clean_correct": [True] * 80 + [False] * 20, "pgd_correct": [True] * 42 + [False] * 58}}
    table = accuracy_table(results, pgd_steps=7, intervals=True)
    assert list(table.index) == ["ST", "AT"]
    cells = {column: _cell(table.loc["ST", column]) for column in table.columns}
    # estimates: 90 of 100 clean, 30 of 100 PGD, 5 of the first 50 (AutoAttack's images) PGD, 1 of 50 AutoAttack
    assert [c[0] for c in cells.values()] == [90.0, 30.0, 10.0, 2.0]
    for column, (k, n) in zip(cells, ((90, 100), (30, 100), (5, 50), (1, 50))):
        _, low, high = cells[column]
        expected_low, expected_high = _binomial_bounds(k, n)
        assert abs(low - expected_low) <= 2.0 and abs(high - expected_high) <= 2.0, (column, low, high)
        assert low <= 100 * k / n <= high
    # the AutoAttack interval is rebuilt from its count: 0.02 of 50 images is 1 robust image
    assert cells["AutoAttack"] == pytest.approx(accuracy_interval([True] + [False] * 49), abs=0.05)
    # one decimal everywhere
    assert all(re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", cell) for cell in table.loc["ST"])
    # a model without AutoAttack has clean and PGD only
    assert _cell(table.loc["AT", "PGD-7"])[0] == 42.0
    assert isinstance(table.loc["AT", "AutoAttack"], float) and math.isnan(table.loc["AT", "AutoAttack"])


# ---------------------------------------------------------------------------------------------------------
# accuracy_table as numbers (chapter 4)
# ---------------------------------------------------------------------------------------------------------


def results_from(robust_values, **extra):
    return {name: {"clean_acc": 0.9, "pgd_acc": r + 0.01, "pgd_acc_on_autoattack_subset": r + 0.02,
                   "pgd_cw_acc": r, "pgd_cw_acc_on_autoattack_subset": r, "autoattack_acc": r, "n_autoattack": 100,
                   **extra.get(name, {})}
            for name, r in robust_values.items()}


def test_accuracy_numbers_with_cw_and_notes_on_hand_made_results():
    results = results_from({"hard labels": 0.10, "KD-ST": 0.12, "KD-AT": 0.42},
                           **{"KD-AT": {"pgd_acc_on_autoattack_subset": 0.60, "pgd_cw_acc_on_autoattack_subset": 0.44}})
    table = accuracy_table(results, pgd_steps=20, intervals=False, cw=True)
    assert table.loc["KD-AT", "PGD-20 CE (AA images)"] == 60.0 and table.loc["KD-AT", "AutoAttack"] == 42.0
    assert list(table.columns)[:3] == ["clean", "PGD-20 CE", "PGD-20 CW"]
    assert list(table.columns) == ["clean", "PGD-20 CE", "PGD-20 CW", "PGD-20 CE (AA images)", "PGD-20 CW (AA images)",
                                   "AutoAttack", "AutoAttack 95% CI"]
    low, high = _bracket(table.loc["KD-AT", "AutoAttack 95% CI"])
    assert low < 42.0 < high and 15 < high - low < 23  # 42 of 100 images: +- 1.96 * 4.9 points
    expected_low, expected_high = _binomial_bounds(42, 100)
    assert abs(low - expected_low) <= 2.0 and abs(high - expected_high) <= 2.0
    assert table.loc["KD-ST"].tolist()[:6] == [90.0, 13.0, 12.0, 14.0, 12.0, 12.0]
    assert table.loc["KD-AT", "PGD-20 CW (AA images)"] == 44.0
    ce, cw = pgd_excess_notes(results).split("PGD with CW loss:")
    assert "KD-AT (18.0 points)" in ce and cw.strip().startswith("No model")
    assert ce.startswith("PGD with CE loss: Flagged: PGD overstates the robustness of KD-AT (18.0 points)")


def test_accuracy_numbers_without_cw_round_and_leave_missing_values_empty():
    results = {"ST": {"clean_acc": 0.91234, "pgd_acc": 0.0, "pgd_acc_on_autoattack_subset": 0.05,
                      "autoattack_acc": 0.0, "n_autoattack": 40, "pgd_cw_acc": 0.3},
               "no AA": {"clean_acc": 0.5, "pgd_acc": 0.25}}
    table = accuracy_table(results, pgd_steps=3, intervals=False)
    assert list(table.columns) == ["clean", "PGD-3 CE", "PGD-3 CE (AA images)", "AutoAttack", "AutoAttack 95% CI"]
    columns = ["clean", "PGD-3 CE", "PGD-3 CE (AA images)", "AutoAttack"]
    assert table.loc["ST", columns].tolist() == [91.2, 0.0, 5.0, 0.0]
    assert table.loc["ST", "AutoAttack 95% CI"] == "[0.0, 0.0]"  # no robust image in any resample
    assert table.loc["no AA", ["clean", "PGD-3 CE"]].tolist() == [50.0, 25.0]
    for column in ("PGD-3 CE (AA images)", "AutoAttack", "AutoAttack 95% CI"):
        assert math.isnan(table.loc["no AA", column]), column


# ---------------------------------------------------------------------------------------------------------
# interval_table
# ---------------------------------------------------------------------------------------------------------


def test_interval_table_formats_estimate_and_bounds():
    table = interval_table({"ST": {"max logit": (1.234, 1.0, 1.5)}})
    assert table.loc["ST", "max logit"] == "1.23 [1.00, 1.50]"
    rows = {"ST": {"max logit": (1.234, 1.0, 1.5), "logit gap": (0.5, 0.25, 0.75)},
            "AT - ST (paired)": {"max logit": (-2.0, -2.5, -1.456), "logit gap": (-0.1, -0.2, 0.0)}}
    table = interval_table(rows, digits=1)
    assert list(table.index) == ["ST", "AT - ST (paired)"] and list(table.columns) == ["max logit", "logit gap"]
    assert table.loc["AT - ST (paired)", "max logit"] == "-2.0 [-2.5, -1.5]"
    assert table.loc["ST", "logit gap"] == "0.5 [0.2, 0.8]"
    assert interval_table(rows, digits=3).loc["AT - ST (paired)", "logit gap"] == "-0.100 [-0.200, 0.000]"


# ---------------------------------------------------------------------------------------------------------
# PGD against AutoAttack
# ---------------------------------------------------------------------------------------------------------


def test_pgd_excess_note_flags_only_large_excesses():
    assert PGD_EXCESS_FLAG == 0.05
    ok = {"AT": {"pgd_acc_on_autoattack_subset": 0.70, "autoattack_acc": 0.66}}
    bad = {"KD": {"pgd_acc_on_autoattack_subset": 0.60, "autoattack_acc": 0.42}}
    assert pgd_excess_note(ok) == ("No model's PGD accuracy exceeds its AutoAttack accuracy by more than 5 points on "
                                   "the same images.")
    assert "KD (18.0 points)" in pgd_excess_note({**ok, **bad})
    assert pgd_excess_note({**ok, **bad}) == ("Flagged: PGD overstates the robustness of KD (18.0 points) compared "
                                              "with AutoAttack on the same images; trust the AutoAttack number.")
    assert pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": 0.56, "autoattack_acc": 0.50}}).startswith("Flagged")
    assert pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": 0.54, "autoattack_acc": 0.50}}).startswith("No model")
    # models without AutoAttack are not compared; several flagged models are listed in order
    two = {"A": {"pgd_acc_on_autoattack_subset": 0.9, "autoattack_acc": 0.1},
           "B": {"pgd_acc_on_autoattack_subset": 0.9},
           "C": {"pgd_acc_on_autoattack_subset": 0.5, "autoattack_acc": 0.3}}
    assert "of A (80.0 points), C (20.0 points) compared" in pgd_excess_note(two)


def test_pgd_excess_note_with_the_cw_loss_reads_the_cw_accuracy():
    results = {"M": {"pgd_acc_on_autoattack_subset": 0.40, "pgd_cw_acc_on_autoattack_subset": 0.80,
                     "autoattack_acc": 0.40},
               "no CW": {"pgd_acc_on_autoattack_subset": 0.40, "autoattack_acc": 0.40}}
    assert pgd_excess_note(results).startswith("No model")
    cw = pgd_excess_note(results, loss="CW")
    assert "M (40.0 points)" in cw and "no CW" not in cw
    assert pgd_excess_notes(results) == f"PGD with CE loss: {pgd_excess_note(results)} PGD with CW loss: " \
                                        f"{pgd_excess_note(results, loss='CW')}"
    assert tables.pgd_excess_notes({}) == (
        "PGD with CE loss: No model's PGD accuracy exceeds its AutoAttack accuracy by more than 5 points on the same "
        "images. PGD with CW loss: No model's PGD accuracy exceeds its AutoAttack accuracy by more than 5 points on "
        "the same images.")


def test_an_excess_of_exactly_five_points_is_not_flagged():
    """Accuracies are multiples of 1/n: 0.55 - 0.50 in floats is a hair above 0.05, and is still not "more than"."""
    for pgd, aa in ((0.55, 0.50), (0.575, 0.525), (0.15, 0.10)):
        note = pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": pgd, "autoattack_acc": aa}})
        assert note.startswith("No model"), (pgd, aa)
    note = pgd_excess_note({"M": {"pgd_acc_on_autoattack_subset": 0.56, "autoattack_acc": 0.50}})
    assert note.startswith("Flagged") and "M (6.0 points)" in note
