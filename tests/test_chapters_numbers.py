"""advlogits.chapters.numbers: one number format for prose, tables and the scorecard."""

from __future__ import annotations

import pytest

from advlogits.chapters import numbers

NB = "\u00a0"


def test_accuracies_are_counts_out_of_n_as_percentages_with_one_decimal():
    assert numbers.accuracy(143, 200) == "71.5%"
    assert numbers.accuracy(0, 7) == "0.0%" and numbers.accuracy(7, 7) == "100.0%"
    assert numbers.accuracy(1, 3) == "33.3%"
    with pytest.raises(ValueError, match=r"^n must be a positive number of images \(got 0\)"):
        numbers.accuracy(0, 0)
    with pytest.raises(ValueError, match=r"^correct must be between 0 and n = 10 \(got 11\)"):
        numbers.accuracy(11, 10)


def test_numbers_never_print_float_noise_or_negative_zero():
    assert numbers.number(31.999999) == "32.00" and numbers.number(-0.114286) == "-0.11"
    assert numbers.number(-0.0001) == "0.00" and numbers.number(-0.04, digits=1) == "0.0"
    assert numbers.number(None) == "n/a" and numbers.number(float("nan")) == "n/a"
    assert numbers.percent(0.30000001) == "30.0%"


def test_an_interval_follows_its_estimate_joined_by_no_break_spaces():
    assert numbers.estimate(0.205, (0.163, 0.245), digits=1, scale=100, unit=" points") == (
        f"20.5{NB}points{NB}[16.3,{NB}24.5]"
    )
    assert numbers.estimate(-0.85, (-0.91, -0.79)) == f"-0.85{NB}[-0.91,{NB}-0.79]"
    assert numbers.estimate(0.5, None) == "0.50" and numbers.estimate(0.5, (None, 1.0)) == "0.50"
    assert " " not in numbers.estimate(1.0, (0.5, 1.5), unit=" points"), "nothing in it can wrap"


def test_each_claim_reads_in_its_own_unit():
    c6 = {"id": "C6", "estimate": 0.205, "ci": [0.163, 0.245], "threshold": 0.1}
    c7 = {"id": "C7", "estimate": -0.22, "ci": [-0.37, -0.12], "threshold": 0.0}
    c1 = {"id": "C1", "estimate": -1.234, "ci": [-1.3, -1.1], "threshold": 0.0}
    assert numbers.claim_estimate(c6) == f"20.5{NB}points{NB}[16.3,{NB}24.5]"
    assert numbers.claim_threshold(c6) == f"10.0{NB}points"
    assert numbers.claim_estimate(c7) == f"-22.0{NB}points{NB}[-37.0,{NB}-12.0]"
    assert numbers.claim_threshold(c7) == f"0.0{NB}points", "C7 and C8 decide a contrast in points, not a share"
    assert numbers.claim_estimate(c1) == f"-1.23{NB}[-1.30,{NB}-1.10]"
    assert numbers.claim_estimate({"id": "C8", "estimate": None, "ci": None, "threshold": 0.5}) == "n/a"
