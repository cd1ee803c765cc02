"""Tests for advlogits.checks: every check accepts good values (returning them, converted where documented) and
refuses bad ones with the one message format ``<name> must be <requirement> (got <value>)[; <hint>]``."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from advlogits.checks import (
    RANGE_TOLERANCE,
    SEED_MAX,
    check_bool,
    check_choice,
    check_images,
    check_index,
    check_int,
    check_labels,
    check_logits,
    check_number,
    check_same_length,
    check_seed,
    check_vector,
    coerce,
    describe,
    fail,
    is_int,
    message,
)


def _refused(pattern: str):
    """``pytest.raises`` for a ValueError whose WHOLE message matches ``pattern`` (anchored at both ends)."""
    return pytest.raises(ValueError, match=rf"^{pattern}$")


# ---------------------------------------------------------------------------------------------------------
# the message format
# ---------------------------------------------------------------------------------------------------------


def test_message_format_with_and_without_hint() -> None:
    assert message("steps", "an integer >= 1", 0) == "steps must be an integer >= 1 (got 0)"
    assert message("steps", "an integer >= 1", 0, "try 10") == "steps must be an integer >= 1 (got 0); try 10"
    assert message("x", "finite", "NaN", None) == "x must be finite (got NaN)"


def test_fail_raises_a_value_error_with_repr_or_shown() -> None:
    with _refused(r"mode must be one of the modes \(got 'fast'\)"):
        fail("mode", "one of the modes", "fast")
    with _refused(r"mode must be short \(got 5 letters\); shorten it"):
        fail("mode", "short", "abcde", shown="5 letters", hint="shorten it")


def test_describe_tensors_arrays_and_other_values() -> None:
    assert describe(torch.zeros(2, 3)) == "torch.float32 tensor of shape (2, 3)"
    assert describe(torch.zeros(4, dtype=torch.int64)) == "torch.int64 tensor of shape (4,)"
    assert describe(np.zeros((2,), dtype=np.float64)) == "float64 array of shape (2,)"
    assert describe("abc") == "'abc'" and describe(None) == "None" and describe(1.5) == "1.5"


# ---------------------------------------------------------------------------------------------------------
# scalars
# ---------------------------------------------------------------------------------------------------------


def test_check_choice() -> None:
    assert check_choice("norm", "l2", ("linf", "l2")) == "l2"
    assert check_choice("norm", "linf", iter(["linf", "l2"])) == "linf"  # any iterable of allowed values
    with _refused(r"norm must be one of 'linf', 'l2' \(got 'l1'\)"):
        check_choice("norm", "l1", ("linf", "l2"))
    with _refused(r"k must be one of 1, 2 \(got 3\); pick a smaller k"):
        check_choice("k", 3, (1, 2), hint="pick a smaller k")
    with _refused(r"norm must be one of 'linf', 'l2' \(got None\)"):
        check_choice("norm", None, ("linf", "l2"))


def test_check_bool_accepts_only_true_and_false() -> None:
    assert check_bool("flag", True) is True and check_bool("flag", False) is False
    for bad, shown in ((1, "1"), (0, "0"), ("True", "'True'"), (None, "None"), (np.bool_(True), "np.True_|True")):
        with _refused(rf"flag must be True or False \(got ({shown})\)"):
            check_bool("flag", bad)


def test_is_int() -> None:
    assert is_int(3) and is_int(-2) and is_int(np.int64(5)) and is_int(np.uint8(1))
    assert not is_int(True) and not is_int(False) and not is_int(3.0) and not is_int("3") and not is_int(None)
    assert not is_int(np.float64(3.0))


def test_check_int_accepts_integers_within_bounds_and_returns_int() -> None:
    assert check_int("n", 5) == 5
    got = check_int("n", np.int64(7), at_least=1)
    assert got == 7 and type(got) is int  # NumPy integers are converted
    assert check_int("n", 1, at_least=1) == 1 and check_int("n", 9, at_most=9) == 9  # bounds are inclusive
    assert check_int("n", -3) == -3


@pytest.mark.parametrize(
    ("bad", "shown"), [(True, "True"), (False, "False"), (3.0, "3.0"), ("3", "'3'"), (None, "None"), (2.5, "2.5")]
)
def test_check_int_refuses_bools_floats_and_strings(bad: object, shown: str) -> None:
    with _refused(rf"steps must be an integer >= 1 \(got {shown}\)"):
        check_int("steps", bad, at_least=1)


def test_check_int_bounds_and_hint() -> None:
    with _refused(r"steps must be an integer >= 1 \(got 0\)"):
        check_int("steps", 0, at_least=1)
    with _refused(r"k must be an integer <= 4 \(got 5\)"):
        check_int("k", 5, at_most=4)
    with _refused(r"k must be an integer >= 1 and <= 4 \(got -1\); k counts classes"):
        check_int("k", -1, at_least=1, at_most=4, hint="k counts classes")
    with _refused(r"k must be an integer \(got 1.5\)"):
        check_int("k", 1.5)


def test_check_number_accepts_finite_reals_and_returns_float() -> None:
    got = check_number("eps", 1)
    assert got == 1.0 and type(got) is float  # ints are accepted and converted
    assert check_number("eps", np.float32(0.25)) == 0.25 and type(check_number("eps", np.float32(0.25))) is float
    assert check_number("eps", -1e300) == -1e300
    # bounds: at_least / at_most inclusive, above / below strict
    assert check_number("eps", 0.0, at_least=0) == 0.0 and check_number("eps", 1.0, at_most=1) == 1.0
    assert check_number("p", 0.5, above=0, below=1) == 0.5


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (True, "True"),
        (False, "False"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (np.float64("nan"), "(np.float64\\()?nan\\)?"),
        ("0.1", "'0.1'"),
        (None, "None"),
        (1j, "1j"),
    ],
)
def test_check_number_refuses_bools_nan_inf_and_non_numbers(bad: object, shown: str) -> None:
    with _refused(rf"eps must be a finite number \(got {shown}\)"):
        check_number("eps", bad)


def test_check_number_bounds_and_hint() -> None:
    with _refused(r"alpha must be a finite number > 0 \(got 0.0\)"):
        check_number("alpha", 0.0, above=0)
    with _refused(r"eps must be a finite number >= 0 \(got -0.1\)"):
        check_number("eps", -0.1, at_least=0)
    with _refused(r"p must be a finite number < 1 \(got 1.0\)"):
        check_number("p", 1.0, below=1)
    with _refused(r"p must be a finite number <= 1 \(got 1.5\)"):
        check_number("p", 1.5, at_most=1)
    with _refused(r"level must be a finite number > 0 and < 1 \(got 1\); e.g. 0.95"):
        check_number("level", 1, above=0, below=1, hint="e.g. 0.95")
    # float bounds are printed with %g
    with _refused(r"to must be a finite number > 0.333333 and < 1 \(got 0.2\)"):
        check_number("to", 0.2, above=1 / 3, below=1)
    with _refused(r"eps must be a finite number >= 0 \(got nan\)"):  # NaN fails every bound, and is refused
        check_number("eps", math.nan, at_least=0)


def test_check_seed() -> None:
    assert check_seed("seed", 0) == 0 and check_seed("seed", SEED_MAX) == SEED_MAX
    assert SEED_MAX == 2**32 - 1
    for bad in (-1, SEED_MAX + 1):
        with _refused(rf"seed must be an integer >= 0 and <= 4294967295 \(got {bad}\)"):
            check_seed("seed", bad)
    with _refused(r"seed must be an integer >= 0 and <= 4294967295 \(got True\)"):
        check_seed("seed", True)


def test_coerce_converts_strings_to_the_kind_of_the_type_hint() -> None:
    assert coerce("eps_sweep", "0.05, 0.1", "tuple[float, ...]") == (0.05, 0.1)
    assert coerce("seeds", "0 1", "tuple[int, ...]") == (0, 1)
    assert coerce("compile", "False", "bool") is False and coerce("compile", "1", "bool") is True
    assert coerce("epochs", "3", "int") == 3 and type(coerce("eps", "1", "float")) is float
    assert coerce("n_train", None, "int | None") is None
    with _refused(r"compile must be True or False \(got 'maybe'\)"):
        coerce("compile", "maybe", "bool")
    with _refused(r"epochs must be an integer \(got '2.5'\)"):
        coerce("epochs", "2.5", "int")
    with _refused(r"arch must be a string \(got 3\)"):
        coerce("arch", 3, "str")
    with _refused(r"eps must be a number \(got True\)"):
        coerce("eps", True, "float")


# ---------------------------------------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------------------------------------


def test_check_images_accepts_pixels_in_the_unit_range() -> None:
    x = torch.rand(3, 1, 4, 4)
    assert check_images(x) is x
    edge = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    assert check_images(edge) is edge  # (N, D) works too; both ends of [0, 1] included
    assert check_images(torch.empty(0, 1, 2, 2)).shape == (0, 1, 2, 2)  # no values, nothing to check
    # float rounding just outside [0, 1] is tolerated, a bit more is not
    rounded = torch.tensor([[-RANGE_TOLERANCE / 2, 1 + RANGE_TOLERANCE / 2]], dtype=torch.float64)
    assert check_images(rounded) is rounded
    with _refused(
        r"x must be in \[0, 1\] \(got min 0, max 1\)"
        r"; pass raw pixel values and put any normalisation inside the model"
    ):
        check_images(torch.tensor([[0.0, 1 + 10 * RANGE_TOLERANCE]], dtype=torch.float64))


def test_check_images_refuses_values_outside_the_range_nan_and_inf() -> None:
    hint = "; pass raw pixel values and put any normalisation inside the model"
    with _refused(r"x must be in \[0, 1\] \(got min 0, max 2\)" + re.escape(hint)):
        check_images(torch.tensor([[0.0, 2.0]]))
    with _refused(r"x must be in \[0, 1\] \(got min -0.5, max 0.5\)" + re.escape(hint)):
        check_images(torch.tensor([[-0.5, 0.5]]))
    with _refused(r"x must be in \[0, 1\] \(got min nan, max nan\)" + re.escape(hint)):
        check_images(torch.tensor([[0.5, math.nan]]))
    with _refused(r"x must be in \[0, 1\] \(got min 0.5, max inf\)" + re.escape(hint)):
        check_images(torch.tensor([[0.5, math.inf]]))
    with _refused(r"images must be in \[0, 1\] \(got min 0, max 255\)" + re.escape(hint)):
        check_images(torch.tensor([[0.0, 255.0]]), "images")  # the name is the caller's


def test_check_images_refuses_non_float_non_tensor_and_1d() -> None:
    with _refused(
        r"x must be a floating-point tensor of shape \(N, C, H, W\) \(got torch.uint8 tensor of shape "
        r"\(2, 1, 2, 2\)\)"
    ):
        check_images(torch.zeros(2, 1, 2, 2, dtype=torch.uint8))
    with _refused(
        r"x must be a floating-point tensor of shape \(N, C, H, W\) \(got torch.bool tensor of shape "
        r"\(2, 3\)\)"
    ):
        check_images(torch.zeros(2, 3, dtype=torch.bool))
    with _refused(
        r"x must be a floating-point tensor of shape \(N, C, H, W\) \(got torch.float32 tensor of shape "
        r"\(4,\)\)"
    ):
        check_images(torch.zeros(4))
    with _refused(r"x must be a floating-point tensor of shape \(N, C, H, W\) \(got ndarray\)"):
        check_images(np.zeros((2, 1, 2, 2), dtype=np.float32))
    with _refused(r"x must be a floating-point tensor of shape \(N, C, H, W\) \(got list\)"):
        check_images([[0.5]])


def test_check_labels_accepts_integer_class_indices() -> None:
    y = torch.tensor([0, 3, 1])
    assert check_labels(y, 3, 4) is y
    assert check_labels(torch.tensor([0, 1], dtype=torch.int32), 2, 2).dtype == torch.int32  # any integer dtype
    unranged = torch.tensor([7, 9])
    assert check_labels(unranged, 2) is unranged  # no k: no range check
    assert check_labels(torch.zeros(0, dtype=torch.int64), 0, 4).shape == (0,)  # no labels: nothing to range-check


def test_check_labels_refuses_wrong_shapes() -> None:
    with _refused(r"y must be of shape \(3,\), one class index per sample \(got torch.int64 tensor of shape \(2,\)\)"):
        check_labels(torch.tensor([0, 1]), 3, 4)
    with _refused(
        r"y must be of shape \(3,\), one class index per sample \(got torch.int64 tensor of shape "
        r"\(3, 1\)\)"
    ):
        check_labels(torch.zeros(3, 1, dtype=torch.int64), 3, 4)
    with _refused(r"labels must be a tensor of 2 class indices \(got list\)"):
        check_labels([0, 1], 2, 4, name="labels")


def test_check_labels_refuses_non_integer_dtypes() -> None:
    for dtype in (torch.float32, torch.float64, torch.bool):
        with _refused(
            rf"y must be an integer tensor of class indices \(got {dtype} tensor of shape \(2,\)\)"
            r"; cast it with \.long\(\)"
        ):
            check_labels(torch.zeros(2, dtype=dtype), 2, 4)


def test_check_labels_refuses_indices_out_of_range() -> None:
    with _refused(r"y must be class indices in \[0, 4\) \(got values in \[0, 4\]\)"):
        check_labels(torch.tensor([0, 4]), 2, 4)
    with _refused(r"y must be class indices in \[0, 4\) \(got values in \[-1, 2\]\)"):
        check_labels(torch.tensor([-1, 2]), 2, 4)


def test_check_logits_accepts_finite_float_matrices() -> None:
    z = torch.randn(3, 4)
    assert check_logits(z) is z
    assert check_logits(torch.zeros(1, 2, dtype=torch.float64)).shape == (1, 2)  # the smallest: N = 1, K = 2
    big = torch.tensor([[1e30, -1e30]])
    assert check_logits(big) is big


@pytest.mark.parametrize("shape", [(4,), (3, 1), (0, 4), (2, 3, 4)])
def test_check_logits_refuses_wrong_shapes(shape: tuple[int, ...]) -> None:
    shown = re.escape(str(shape))
    with _refused(
        rf"logits must be of shape \(N, K\) with N >= 1 samples and K >= 2 classes \(got torch.float32 "
        rf"tensor of shape {shown}\)"
    ):
        check_logits(torch.zeros(shape))


def test_check_logits_refuses_non_tensors_integers_and_non_finite_values() -> None:
    with _refused(r"logits must be a tensor of shape \(N, K\) \(got ndarray\)"):
        check_logits(np.zeros((2, 3)))
    with _refused(
        r"logits must be a floating-point tensor \(got torch.int64 tensor of shape \(2, 3\)\)"
        r"; cast it with \.float\(\)"
    ):
        check_logits(torch.zeros(2, 3, dtype=torch.int64))
    for bad in (math.nan, math.inf, -math.inf):
        z = torch.zeros(2, 3)
        z[1, 2] = bad
        with _refused(r"teacher_logits must be finite \(got NaN or infinite values\)"):
            check_logits(z, "teacher_logits")


def test_check_vector_converts_to_float64_arrays() -> None:
    out = check_vector([1, 2, 3], "values")
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0]
    t = torch.tensor([0.5, 1.5], requires_grad=True)
    np.testing.assert_array_equal(check_vector(t, "values"), [0.5, 1.5])  # detached, on the CPU
    np.testing.assert_array_equal(check_vector(np.array([True, False]), "correct"), [1.0, 0.0])
    assert check_vector([1.0, 2.0], "a", min_len=2).shape == (2,)


def test_check_vector_refuses_wrong_dimensions_and_too_few_values() -> None:
    with _refused(r"values must be 1-D \(one value per sample\) \(got shape \(2, 2\)\)"):
        check_vector([[1.0, 2.0], [3.0, 4.0]], "values")
    with _refused(r"values must be 1-D \(one value per sample\) \(got shape \(\)\)"):
        check_vector(3.0, "values")
    with _refused(r"values must be at least 1 value\(s\) long \(got 0 values\)"):
        check_vector([], "values")
    with _refused(r"a must be at least 2 value\(s\) long \(got 1 values\)"):
        check_vector([1.0], "a", min_len=2)


def test_check_same_length() -> None:
    assert check_same_length(np.zeros(3), np.ones(3)) is None
    with _refused(r"b must be as long as a \(paired samples: 3 values\) \(got 2 values\)"):
        check_same_length(np.zeros(3), np.zeros(2))
    with _refused(r"at must be as long as st \(paired samples: 2 values\) \(got 4 values\)"):
        check_same_length(np.zeros(2), np.zeros(4), names=("st", "at"))


def test_check_index_accepts_integer_positions() -> None:
    out = check_index([4, 0, 2], 5)
    assert out.dtype == np.intp and out.tolist() == [4, 0, 2]
    assert check_index(torch.tensor([1, 1]), 2).tolist() == [1, 1]  # repeats allowed
    assert check_index(np.array([3], dtype=np.int8), 4).tolist() == [3]
    assert check_index([], 3).tolist() == []  # an empty selection is a selection


def test_check_index_refuses_non_integers_wrong_dimensions_and_out_of_range() -> None:
    with _refused(r"index must be a 1-D array of integer indices \(got shape \(2,\), dtype float64\)"):
        check_index([0.0, 1.0], 5)
    with _refused(r"index must be a 1-D array of integer indices \(got shape \(2,\), dtype bool\)"):
        check_index(torch.tensor([True, False]), 5)
    with _refused(r"index must be a 1-D array of integer indices \(got shape \(1, 2\), dtype int64\)"):
        check_index(np.array([[0, 1]], dtype=np.int64), 5)
    with _refused(r"index must be indices in \[0, 5\) \(got values in \[0, 5\]\)"):
        check_index([0, 5], 5)
    with _refused(r"selection must be indices in \[0, 5\) \(got values in \[-1, 3\]\)"):
        check_index([3, -1], 5, name="selection")


def test_check_number_refuses_an_integer_too_large_for_a_float_with_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^eps must be a finite number >= 0 \(got 1000000000"):
        check_number("eps", 10**400, at_least=0)
