"""Tests for advlogits.logits: per-image statistics of logits, by hand and against manual softmax."""

from __future__ import annotations

import math

import pytest
import torch

from advlogits.logits import (
    confidence,
    confidence_log_odds,
    logit_gap,
    margins,
    max_logit,
    runner_up,
    sorted_logits,
)

# Row 0: unique max at class 1; row 1: max tied between classes 0 and 1; row 2: max at class 2.
Z = torch.tensor(
    [
        [1.0, 3.0, 0.0, 2.0],
        [4.0, 4.0, 1.0, 0.0],
        [-1.0, 0.0, 2.0, -3.0],
    ]
)
Y = torch.tensor([1, 0, 3])  # row 0 correct, row 1 tied on top, row 2 wrong


def test_max_logit_by_hand() -> None:
    assert max_logit(Z).tolist() == [3.0, 4.0, 2.0]


def test_logit_gap_by_hand_and_zero_on_ties() -> None:
    # 3 - 2, 4 - 4 (tie), 2 - 0
    assert logit_gap(Z).tolist() == [1.0, 0.0, 2.0]


def test_sorted_logits_by_hand() -> None:
    expected = [[3.0, 2.0, 1.0, 0.0], [4.0, 4.0, 1.0, 0.0], [2.0, 0.0, -1.0, -3.0]]
    assert sorted_logits(Z).tolist() == expected


def test_confidence_of_prediction_by_hand() -> None:
    # e^3 / (e^1 + e^3 + e^0 + e^2) = 20.0855 / 31.1929
    # e^4 / (2 e^4 + e^1 + e^0)       = 54.5982 / 112.9146
    # e^2 / (e^-1 + e^0 + e^2 + e^-3) = 7.38906 / 8.80675
    expected = torch.tensor([0.6439142599, 0.4835349794, 0.8390245075])
    torch.testing.assert_close(confidence(Z), expected)


def test_confidence_of_given_class_by_hand() -> None:
    # class 1 of row 0 = its prediction; class 0 of row 1 = one of the tied maxima; class 3 of row 2:
    # e^-3 / (e^-1 + e^0 + e^2 + e^-3) = 0.049787 / 8.80675
    expected = torch.tensor([0.6439142599, 0.4835349794, 0.0056533027])
    torch.testing.assert_close(confidence(Z, Y), expected)


def test_confidence_matches_manual_softmax_on_random_logits() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 7, generator=g) * 3
    y = torch.randint(0, 7, (50,), generator=g)
    p = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
    torch.testing.assert_close(confidence(z), p.max(dim=1).values)
    torch.testing.assert_close(confidence(z, y), p[torch.arange(50), y])


def test_margins_by_hand_and_sign() -> None:
    # z_y - max_{j != y} z_j: 3 - 2 = 1 (correct), 4 - 4 = 0 (tie), -3 - 2 = -5 (wrong)
    assert margins(Z, Y).tolist() == [1.0, 0.0, -5.0]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 10, generator=g)
    y = torch.randint(0, 10, (200,), generator=g)
    m = margins(z, y)
    correct = z.argmax(dim=1) == y
    assert bool((m[correct] > 0).all()) and bool((m[~correct] < 0).all())


FUNCTIONS = [max_logit, logit_gap, sorted_logits, confidence, confidence_log_odds]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (
            torch.zeros(4),
            r"logits must be of shape \(N, K\) with N >= 1 samples and K >= 2 classes \(got torch.float32 "
            r"tensor of shape \(4,\)\)",
        ),
        (
            torch.zeros(3, 1),
            r"logits must be of shape \(N, K\) with N >= 1 samples and K >= 2 classes \(got "
            r"torch.float32 tensor of shape \(3, 1\)\)",
        ),
        (
            torch.zeros(3, 4, dtype=torch.long),
            r"logits must be a floating-point tensor \(got torch.int64 tensor of shape "
            r"\(3, 4\)\); cast it with \.float\(\)",
        ),
        (torch.tensor([[0.0, math.nan]]), r"logits must be finite \(got NaN or infinite values\)"),
    ],
    ids=["1-d", "one-class", "integer", "nan"],
)
def test_logit_functions_reject_bad_shapes_and_dtypes(function, bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        function(bad)


@pytest.mark.parametrize("function", [confidence, margins, runner_up, confidence_log_odds], ids=lambda f: f.__name__)
def test_labels_validated(function) -> None:
    with pytest.raises(
        ValueError,
        match=r"y must be of shape \(3,\), one class index per sample \(got torch.int64 "
        r"tensor of shape \(2,\)\)",
    ):
        function(Z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 4\) \(got values in \[0, 4\]\)"):
        function(Z, torch.tensor([0, 1, 4]))
    with pytest.raises(
        ValueError,
        match=r"y must be an integer tensor of class indices \(got torch.float32 tensor of "
        r"shape \(3,\)\); cast it with \.long\(\)",
    ):
        function(Z, torch.tensor([0.0, 1.0, 2.0]))


# ---------------------------------------------------------------------------------------------------------
# runner_up
# ---------------------------------------------------------------------------------------------------------


def test_runner_up_by_hand() -> None:
    # row 0, y = 1: others 1, 0, 2 -> class 3; row 1, y = 0: the other maximum, class 1 (tied with y);
    # row 2, y = 3 (wrong): the predicted class 2
    got = runner_up(Z, Y)
    assert got.tolist() == [3, 1, 2] and got.dtype == torch.int64


def test_runner_up_ties_go_to_the_first_class_and_y_is_never_chosen() -> None:
    z = torch.tensor([[5.0, 5.0, 5.0], [0.0, 2.0, 2.0]])
    assert runner_up(z, torch.tensor([0, 0])).tolist() == [1, 1]
    assert runner_up(z, torch.tensor([1, 1])).tolist() == [0, 2]
    g = torch.Generator().manual_seed(2)
    z = torch.randn(300, 10, generator=g)
    y = torch.randint(0, 10, (300,), generator=g)
    j = runner_up(z, y)
    assert bool((j != y).all())
    # independent: the best of the other classes, by a loop over rows
    for i in range(0, 300, 17):
        others = [c for c in range(10) if c != int(y[i])]
        assert int(j[i]) == max(others, key=lambda c: float(z[i, c]))
    # the margin to the runner-up is margins()
    torch.testing.assert_close(z[torch.arange(300), y] - z[torch.arange(300), j], margins(z, y))


# ---------------------------------------------------------------------------------------------------------
# confidence_log_odds
# ---------------------------------------------------------------------------------------------------------


def test_log_odds_is_the_logit_of_the_softmax_confidence() -> None:
    torch.manual_seed(0)
    z = torch.randn(50, 10) * 3
    y = torch.randint(0, 10, (50,))
    for labels in (None, y):
        p = confidence(z.double(), labels)
        expected = torch.log(p / (1 - p))
        torch.testing.assert_close(confidence_log_odds(z, labels), expected, rtol=1e-9, atol=1e-9)
    assert confidence_log_odds(z).dtype == torch.float64


def test_log_odds_separates_images_whose_float32_confidence_rounds_to_one() -> None:
    z = torch.tensor([[50.0, 0.0, 0.0], [40.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert confidence(z)[:2].tolist() == [1.0, 1.0]  # tied after rounding
    # z_top - log(e^0 + e^0) = z_top - log 2; uniform row: 0 - log 2 (p = 1/3, odds 1/2)
    expected = torch.tensor([50 - math.log(2), 40 - math.log(2), -math.log(2)], dtype=torch.float64)
    torch.testing.assert_close(confidence_log_odds(z), expected)


def test_log_odds_of_a_tied_top_and_of_a_given_class_by_hand() -> None:
    z = torch.tensor([[1.0, 1.0, 0.0]])
    # predicted class 0 (first maximum): 1 - log(e^1 + e^0)
    assert confidence_log_odds(z).item() == pytest.approx(1 - math.log(math.e + 1))
    # true class 2: 0 - log(2 e)
    assert confidence_log_odds(z, torch.tensor([2])).item() == pytest.approx(-math.log(2 * math.e))


def test_log_odds_validates_its_inputs() -> None:
    with pytest.raises(ValueError, match=r"logits must be of shape \(N, K\) with N >= 1 samples and K >= 2 classes"):
        confidence_log_odds(torch.zeros(3))
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 3\) \(got values in \[0, 3\]\)"):
        confidence_log_odds(torch.zeros(2, 3), torch.tensor([0, 3]))
