"""Tests for advlogits.distill: the KD loss and the teacher-logit manipulations of claims C7/C8."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from advlogits import distill
from advlogits.distill import (
    HARD_LABEL_MARGIN,
    TARGET_KINDS,
    argmax_labels,
    average_confidence,
    flatten_confidence,
    hard_label_logits,
    kd_loss,
    label_correct,
    label_smoothing,
    make_targets,
    mean_nonmax,
    reorder_nonmax,
    shuffle_nonmax,
    soften,
    spread_nonmax,
)
from advlogits.logits import confidence

N, K = 1000, 10


@pytest.fixture()
def teacher() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, K, generator=g) * 3


@pytest.fixture()
def reference() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, K, generator=g) * 3


@pytest.fixture()
def y() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, K, (N,), generator=g)


def _nonmax_mask(z: torch.Tensor) -> torch.Tensor:
    return z < z.amax(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------------------------
# kd_loss
# ---------------------------------------------------------------------------------------------------------


def test_kd_loss_zero_for_identical_and_positive_otherwise(teacher: torch.Tensor) -> None:
    assert abs(float(kd_loss(teacher, teacher.clone(), T=4.0))) < 1e-6
    assert float(kd_loss(teacher.flip(1), teacher, T=4.0)) > 0.1


def test_kd_loss_by_hand_at_T2() -> None:
    # s = [1, 2, 3], t = [3, 1, 0], T = 2:
    # softmax(t/2) = [0.628532, 0.231224, 0.140244], softmax(s/2) = [0.186324, 0.307196, 0.506480]
    # KL = sum p_t log(p_t / p_s) = 0.518454; loss = T^2 * KL = 2.073816
    s = torch.tensor([[1.0, 2.0, 3.0]])
    t = torch.tensor([[3.0, 1.0, 0.0]])
    assert float(kd_loss(s, t, T=2.0)) == pytest.approx(2.0738163287, rel=1e-5)


def test_kd_loss_scales_with_T_squared_and_averages_over_batch(teacher: torch.Tensor) -> None:
    student = teacher[:8].flip(1)
    t = teacher[:8]
    for T in (1.0, 3.0, 10.0):
        p_t = torch.softmax(t / T, dim=1)
        kl_rows = (p_t * (torch.log_softmax(t / T, dim=1) - torch.log_softmax(student / T, dim=1))).sum(dim=1)
        torch.testing.assert_close(kd_loss(student, t, T=T), T**2 * kl_rows.mean())


def test_kd_loss_gradient_reaches_student_only(teacher: torch.Tensor) -> None:
    student = teacher[:16].flip(1).clone().requires_grad_(True)
    t = teacher[:16].clone().requires_grad_(True)
    kd_loss(student, t, T=2.0).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    assert t.grad is None


def test_kd_loss_validation(teacher: torch.Tensor) -> None:
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match=rf"T must be a finite number > 0 \(got {bad}\); a temperature"):
            kd_loss(teacher, teacher, T=bad)
    with pytest.raises(
        ValueError,
        match=r"teacher_logits must be of the shape of the logits it pairs with, "
        r"\(1000, 10\) \(got \(1000, 5\)\)",
    ):
        kd_loss(teacher, teacher[:, :5], T=1.0)


# ---------------------------------------------------------------------------------------------------------
# C7 manipulations: argmax and max logit kept
# ---------------------------------------------------------------------------------------------------------


def test_shuffle_keeps_max_and_multiset_and_changes_order(teacher: torch.Tensor) -> None:
    out = shuffle_nonmax(teacher, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out.argmax(dim=1), teacher.argmax(dim=1))
    assert torch.equal(out.amax(dim=1), teacher.amax(dim=1))
    assert torch.equal(out.sort(dim=1).values, teacher.sort(dim=1).values)
    changed = (out != teacher).any(dim=1).float().mean()
    assert changed > 0.99  # a row stays as it was with probability 1/9!
    # The permutation is not a fixed one: non-max ranks are almost uncorrelated with the teacher's.
    nonmax = _nonmax_mask(teacher)
    same_slot = ((out == teacher) & nonmax).float().sum() / nonmax.float().sum()
    assert same_slot < 0.2  # 1/9 expected


def test_shuffle_is_seeded(teacher: torch.Tensor) -> None:
    a = shuffle_nonmax(teacher, generator=torch.Generator().manual_seed(5))
    b = shuffle_nonmax(teacher, generator=torch.Generator().manual_seed(5))
    c = shuffle_nonmax(teacher, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mean_replaces_nonmax_by_their_mean(teacher: torch.Tensor) -> None:
    out = mean_nonmax(teacher)
    assert torch.equal(out.argmax(dim=1), teacher.argmax(dim=1))
    assert torch.equal(out.amax(dim=1), teacher.amax(dim=1))
    nonmax = _nonmax_mask(teacher)
    row_mean = (teacher * nonmax).sum(dim=1) / nonmax.sum(dim=1)  # independent: via the mask product
    torch.testing.assert_close(out[nonmax].view(N, K - 1), row_mean[:, None].expand(N, K - 1))


def test_reorder_ranks_nonmax_like_reference(teacher: torch.Tensor, reference: torch.Tensor) -> None:
    out = reorder_nonmax(teacher, reference)
    assert torch.equal(out.argmax(dim=1), teacher.argmax(dim=1))
    assert torch.equal(out.amax(dim=1), teacher.amax(dim=1))
    assert torch.equal(out.sort(dim=1).values, teacher.sort(dim=1).values)
    top = teacher.argmax(dim=1)
    disagree = 0
    for i in range(0, N, 37):  # a readable per-row reference on a subset of rows
        others = [j for j in range(K) if j != int(top[i])]
        ref_order = sorted(others, key=lambda j: -float(reference[i, j]))
        out_order = sorted(others, key=lambda j: -float(out[i, j]))
        assert out_order == ref_order
        disagree += int(int(reference[i].argmax()) != int(top[i]))
    assert disagree > 0  # the subset includes rows where the reference's argmax differs


def test_reorder_validation(teacher: torch.Tensor) -> None:
    with pytest.raises(
        ValueError,
        match=r"reference must be of the shape of the logits it pairs with, "
        r"\(1000, 10\) \(got \(10, 10\)\)",
    ):
        reorder_nonmax(teacher, teacher[:10])


def test_c7_manipulations_keep_tied_maxima_in_place() -> None:
    z = torch.tensor([[1.0, 5.0, 0.0, 5.0, 2.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
    ref = torch.tensor([[9.0, 0.0, 8.0, 7.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    shuffled = shuffle_nonmax(z, generator=torch.Generator().manual_seed(0))
    for out in (shuffled, reorder_nonmax(z, ref), mean_nonmax(z)):
        assert out[:, 1].tolist() == [5.0, 3.0] and out[0, 3] == 5.0
        assert torch.equal(out.argmax(dim=1), z.argmax(dim=1))
        assert torch.equal(out[1], z[1])  # constant row: nothing to move
    # reorder: classes 0, 2, 4 ranked by the reference 9 > 8 > 1 get 2 > 1 > 0
    assert reorder_nonmax(z, ref)[0].tolist() == [2.0, 5.0, 1.0, 5.0, 0.0]
    assert mean_nonmax(z)[0].tolist() == [1.0, 5.0, 1.0, 5.0, 1.0]


# ---------------------------------------------------------------------------------------------------------
# C8: flatten confidence, label smoothing
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to", [0.15, 0.6, 0.9, 0.999])
def test_flatten_sets_confidence_and_keeps_order(teacher: torch.Tensor, to: float) -> None:
    out = flatten_confidence(teacher, to=to)
    assert torch.equal(out.argmax(dim=1), teacher.argmax(dim=1))
    torch.testing.assert_close(confidence(out), torch.full((N,), to), atol=1e-4, rtol=0)
    assert torch.equal(out.argsort(dim=1), teacher.argsort(dim=1))
    assert torch.equal(out.amax(dim=1), teacher.amax(dim=1))  # kept here too (documented)
    # One scale per row: (out - max) is proportional to (z - max); atol covers float32 rounding near the max.
    d_out = out - out.amax(dim=1, keepdim=True)
    d_in = teacher - teacher.amax(dim=1, keepdim=True)
    scale = d_out.sum(dim=1, keepdim=True) / d_in.sum(dim=1, keepdim=True)
    assert bool((scale > 0).all())
    torch.testing.assert_close(d_out, scale * d_in, rtol=1e-4, atol=1e-5)


def test_flatten_closed_form_when_nonmax_are_equal() -> None:
    # z = [0, -1, -1, -1]: confidence 1 / (1 + 3 exp(-s)) = to  =>  s = log(3 to / (1 - to))
    to = 0.8
    out = flatten_confidence(torch.tensor([[0.0, -1.0, -1.0, -1.0]]), to=to)
    s = math.log(3 * to / (1 - to))
    torch.testing.assert_close(out, torch.tensor([[0.0, -s, -s, -s]]))


def test_flatten_edge_rows_tied_max_and_constant() -> None:
    z = torch.tensor([[1.0, 4.0, 4.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    out = flatten_confidence(z, to=0.7)
    assert out.argmax(dim=1).tolist() == [1, 0]
    torch.testing.assert_close(confidence(out), torch.tensor([0.7, 0.7]), atol=1e-4, rtol=0)
    assert bool(torch.isfinite(out).all())
    assert out[0, 2] < out[0, 1] and out[0, 2] > out[0, 0] > out[0, 3]  # tied class ranked just below


def test_flatten_validation(teacher: torch.Tensor) -> None:
    for bad in (0.1, 0.05, 1.0, 1.2):  # 1/K = 0.1 is excluded
        with pytest.raises(
            ValueError,
            match=rf"to must be a finite number > 0.1 and < 1 \(got {bad}\); a "
            r"probability in \(1/K, 1\) for K=10 classes",
        ):
            flatten_confidence(teacher, to=bad)


def test_label_smoothing_distribution(y: torch.Tensor) -> None:
    out = label_smoothing(y, 0.7, num_classes=K)
    p = torch.softmax(out, dim=1)
    expected = torch.full((N, K), 0.3 / 9)
    expected[torch.arange(N), y] = 0.7
    torch.testing.assert_close(p, expected)
    assert torch.equal(out.argmax(dim=1), y)
    with pytest.raises(
        ValueError,
        match=r"confidence must be a finite number > 0.1 and < 1 \(got 1.0\); a "
        r"probability in \(1/K, 1\) for K=10 classes",
    ):
        label_smoothing(y, 1.0, num_classes=K)
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 5\) \(got values in \[0, 9\]\)"):
        label_smoothing(y, 0.7, num_classes=5)


# ---------------------------------------------------------------------------------------------------------
# Controls: label-corrected teacher, hard labels
# ---------------------------------------------------------------------------------------------------------


def test_label_correct(teacher: torch.Tensor, y: torch.Tensor) -> None:
    out = label_correct(teacher, y)
    assert torch.equal(out.argmax(dim=1), y)
    assert torch.equal(out.sort(dim=1).values, teacher.sort(dim=1).values)
    right = teacher.argmax(dim=1) == y
    assert 0 < int(right.sum()) < N
    assert torch.equal(out[right], teacher[right])
    wrong = ~right
    # On wrong rows exactly two entries move: the old argmax and y swap values.
    assert bool(((out != teacher)[wrong].sum(dim=1) == 2).all())
    with pytest.raises(
        ValueError,
        match=r"y must be of shape \(1000,\), one class index per sample \(got "
        r"torch.int64 tensor of shape \(10,\)\)",
    ):
        label_correct(teacher, y[:10])


def test_argmax_labels_and_hard_label_logits_give_cross_entropy(teacher: torch.Tensor) -> None:
    labels = argmax_labels(teacher)
    assert labels.dtype == torch.int64 and torch.equal(labels, teacher.argmax(dim=1))
    targets = hard_label_logits(labels, num_classes=K)
    assert bool(torch.isfinite(targets).all()) and float(targets.min()) == -HARD_LABEL_MARGIN
    student = teacher.flip(1)
    torch.testing.assert_close(kd_loss(student, targets, T=1.0), F.cross_entropy(student, labels))


# ---------------------------------------------------------------------------------------------------------
# make_targets
# ---------------------------------------------------------------------------------------------------------


def _targets(kind: str, teacher: torch.Tensor, y: torch.Tensor, reference: torch.Tensor, **kw: object) -> torch.Tensor:
    extra: dict[str, object] = {}
    if kind == "reorder":
        extra["reference"] = reference
    if kind in ("flatten", "label_smoothing", "soften"):
        extra["confidence"] = 0.8
    if kind == "shuffle":
        extra["generator"] = torch.Generator().manual_seed(4)
    return make_targets(kind, teacher, y=y, **extra, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("label_corrected", [False, True])
@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_make_targets_keeps_argmax(
    kind: str, label_corrected: bool, teacher: torch.Tensor, y: torch.Tensor, reference: torch.Tensor
) -> None:
    out = _targets(kind, teacher, y, reference, label_corrected=label_corrected)
    assert out.shape == teacher.shape and out.dtype == teacher.dtype and not out.requires_grad
    assert torch.equal(out.argmax(dim=1), y if label_corrected else teacher.argmax(dim=1))
    if kind in ("kd", "shuffle", "mean", "reorder", "flatten"):
        assert torch.equal(out.amax(dim=1), teacher.amax(dim=1))


def test_make_targets_dispatches(teacher: torch.Tensor, y: torch.Tensor, reference: torch.Tensor) -> None:
    assert torch.equal(_targets("kd", teacher, y, reference), teacher)
    assert torch.equal(_targets("mean", teacher, y, reference), mean_nonmax(teacher))
    assert torch.equal(_targets("reorder", teacher, y, reference), reorder_nonmax(teacher, reference))
    assert torch.equal(_targets("flatten", teacher, y, reference), flatten_confidence(teacher, to=0.8))
    assert torch.equal(
        _targets("shuffle", teacher, y, reference), shuffle_nonmax(teacher, generator=torch.Generator().manual_seed(4))
    )
    corrected = label_correct(teacher, y)
    assert torch.equal(_targets("mean", teacher, y, reference, label_corrected=True), mean_nonmax(corrected))
    assert torch.equal(
        _targets("label_smoothing", teacher, y, reference, label_corrected=True),
        label_smoothing(y, 0.8, num_classes=K),
    )
    assert torch.equal(
        _targets("argmax", teacher, y, reference, label_corrected=True), hard_label_logits(y, num_classes=K)
    )


def test_make_targets_validation(teacher: torch.Tensor, y: torch.Tensor, reference: torch.Tensor) -> None:
    with pytest.raises(
        ValueError,
        match=r"kind must be one of 'kd', 'shuffle', 'mean', 'reorder', 'flatten', "
        r"'label_smoothing', 'argmax', 'spread', 'soften', 'permute_confidence' \(got 'permute'\)",
    ):
        make_targets("permute", teacher, y=y)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"reference must be the ST teacher's logits \(same shape\) for "
        r"kind='reorder' \(got None\)",
    ):
        make_targets("reorder", teacher, y=y)
    with pytest.raises(
        ValueError,
        match=r"reference must be of the shape of the logits it pairs with, "
        r"\(1000, 10\) \(got \(1000, 5\)\)",
    ):
        make_targets("reorder", teacher, y=y, reference=reference[:, :5])
    with pytest.raises(
        ValueError,
        match=r"reference must be None for kind='shuffle' \(only kind='reorder' uses "
        r"it\) \(got torch.float32 tensor of shape \(1000, 10\)\); drop it",
    ):
        make_targets("shuffle", teacher, y=y, reference=reference)
    with pytest.raises(
        ValueError,
        match=r"confidence must be the teacher's data-set average confidence in "
        r"\(1/K, 1\) for kind='flatten' \(got None\)",
    ):
        make_targets("flatten", teacher, y=y)
    with pytest.raises(
        ValueError,
        match=r"confidence must be a finite number > 0.1 and < 1 \(got 0.05\); a "
        r"probability in \(1/K, 1\) for K=10 classes",
    ):
        make_targets("label_smoothing", teacher, y=y, confidence=0.05)
    with pytest.raises(
        ValueError,
        match=r"confidence must be None for kind='kd' \(only 'flatten', "
        r"'label_smoothing' and 'soften' use it\) \(got 0.8\); drop it",
    ):
        make_targets("kd", teacher, y=y, confidence=0.8)
    with pytest.raises(
        ValueError,
        match=r"y must be of shape \(1000,\), one class index per sample \(got "
        r"torch.int64 tensor of shape \(999,\)\)",
    ):
        make_targets("kd", teacher, y=y[:-1])
    with pytest.raises(ValueError, match=r"label_corrected must be True or False \(got 1\)"):
        make_targets("kd", teacher, y=y, label_corrected=1)  # type: ignore[arg-type]


def test_make_targets_accepts_a_tensor_confidence(teacher: torch.Tensor, y: torch.Tensor) -> None:
    average = confidence(teacher).mean()  # 0-dim tensor, as a chapter computes it
    out = make_targets("flatten", teacher, y=y, confidence=average)
    torch.testing.assert_close(confidence(out), average.expand(N), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# average_confidence
# ---------------------------------------------------------------------------------------------------------


def test_average_confidence_by_hand() -> None:
    # row 0: e^2 / (e^2 + e^0 + e^0); row 1: a tie on top, e^1 / (2 e^1 + e^-1); mean of the two
    z = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, -1.0]])
    e = math.e
    expected = (e**2 / (e**2 + 2) + e / (2 * e + 1 / e)) / 2
    got = average_confidence(z)
    assert isinstance(got, float) and got == pytest.approx(expected, rel=1e-6)
    assert average_confidence(torch.zeros(4, 5)) == pytest.approx(1 / 5)  # uniform rows: 1/K


def test_average_confidence_is_the_mean_of_the_per_image_confidence(teacher: torch.Tensor) -> None:
    p = torch.exp(teacher.double()) / torch.exp(teacher.double()).sum(dim=1, keepdim=True)
    assert average_confidence(teacher) == pytest.approx(p.max(dim=1).values.mean().item(), rel=1e-6)
    assert average_confidence(teacher) == pytest.approx(confidence(teacher).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"logits must be of shape \(N, K\) with N >= 1 samples and K >= 2 classes"):
        average_confidence(torch.zeros(3))


# ---------------------------------------------------------------------------------------------------------
# spread (C7) and soften (the softness control of C6)
# ---------------------------------------------------------------------------------------------------------


def test_spread_keeps_each_confidence_and_spreads_the_rest_evenly():
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(200, 10, generator=g)
    z[0] = torch.tensor([60.0] + [0.0] * 9)  # a confidence that rounds to 1 in float32
    out = spread_nonmax(z)
    p, q = z.double().softmax(1), out.double().softmax(1)
    assert torch.equal(out.argmax(1), z.argmax(1))
    torch.testing.assert_close(q.amax(1), p.amax(1), rtol=0, atol=1e-6)
    rest = q.masked_fill(torch.nn.functional.one_hot(z.argmax(1), 10).bool(), float("nan"))
    torch.testing.assert_close(rest.nan_to_num(0).sum(1), (1 - p.amax(1)), rtol=1e-5, atol=1e-9)
    others = rest[~rest.isnan()].view(200, 9)
    assert torch.allclose(others, others[:, :1].expand(-1, 9)), "every incorrect class gets the same probability"
    assert torch.isfinite(out).all() and out[0, 0] > 50, "the rounding confidence stays finite and sharp"
    assert torch.equal(make_targets("spread", z, y=z.argmax(1)), out)
    corrected = make_targets("spread", z, y=torch.zeros(200, dtype=torch.long), label_corrected=True)
    assert (corrected.argmax(1) == 0).all(), "on the label-corrected teacher the true class is on top"


def test_soften_reaches_the_mean_confidence_with_one_temperature():
    g = torch.Generator().manual_seed(1)
    z = 4 * torch.randn(300, 10, generator=g)
    for to in (0.3, 0.6, 0.95):
        out = soften(z, to=to)
        assert out.double().softmax(1).amax(1).mean().item() == pytest.approx(to, abs=1e-6)
        ratio = out / z
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5), "one scale for every logit"
        assert torch.equal(out.argsort(1), z.argsort(1)), "class order kept"
    assert torch.equal(make_targets("soften", z, y=z.argmax(1), confidence=0.6), soften(z, to=0.6))
    with pytest.raises(
        ValueError,
        match=r"^confidence must be the teacher's data-set average confidence .*"
        r"for kind='soften' \(got None\)",
    ):
        make_targets("soften", z, y=z.argmax(1))
    with pytest.raises(ValueError, match=r"^to must be a finite number > 0\.1 and < 1 \(got 1\.0\)"):
        soften(z, to=1.0)


def test_flatten_to_one_confidence_per_sample():
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(64, 10, generator=g)
    to = torch.linspace(0.2, 0.97, 64, dtype=torch.float64)
    out = distill.flatten_confidence(z, to=to)
    assert torch.equal(out.argmax(1), z.argmax(1))
    assert torch.allclose(out.double().softmax(1).amax(1), to, atol=1e-5)
    assert torch.equal(out.argsort(1), z.argsort(1)), "each row keeps its class order"
    with pytest.raises(ValueError, match=r"^to must be confidences in \(1/K, 1\) for K=10 classes"):
        distill.flatten_confidence(z, to=torch.full((64,), 0.05))
    with pytest.raises(ValueError, match=r"^to must be one confidence, or one per sample of shape \(64,\)"):
        distill.flatten_confidence(z, to=torch.full((3,), 0.5))


def test_permute_confidence_keeps_the_distribution_and_loses_each_samples_own():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 10, generator=g) * torch.linspace(0.5, 4, 200)[:, None]  # confidences spread out
    y = z.argmax(1)
    out = distill.make_targets("permute_confidence", z, y=y, generator=torch.Generator().manual_seed(7))
    own = z.double().softmax(1).amax(1)
    got = out.double().softmax(1).amax(1)
    assert torch.equal(out.argmax(1), z.argmax(1)) and torch.equal(out.argsort(1), z.argsort(1))
    assert torch.allclose(got.sort().values, own.sort().values, atol=1e-5), "the same confidences, permuted"
    assert (got - own).abs().mean() > 0.05, "each sample's own confidence is gone"
    again = distill.make_targets("permute_confidence", z, y=y, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, again), "seeded"
