"""Knowledge distillation (claim C6) and the teacher-logit manipulations of claims C7 and C8.

A teacher's logits ``(N, K)`` are turned into target logits ``(N, K)`` by :func:`make_targets`, and a student
is trained on them with :func:`kd_loss`. Every manipulation keeps each sample's argmax (the first one, as
``torch.argmax`` returns it); the C7 manipulations (shuffle, mean, reorder) also keep the max logit exactly.
All functions are vectorised over samples (sort / gather / scatter, no Python loop over rows) and run on the
input's device.

A tie at the top of a row is treated as one "max" block: every position holding the row maximum stays where
it is, and only the strictly smaller logits (the "non-max" logits) move.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_bool, check_choice, check_int, check_labels, check_logits, check_number, describe, fail

TargetKind = Literal[
    "kd", "shuffle", "mean", "reorder", "flatten", "label_smoothing", "argmax", "spread", "soften", "permute_confidence"
]
"""What :func:`make_targets` does to the teacher's logits (see there)."""

TARGET_KINDS: tuple[str, ...] = get_args(TargetKind)

CONFIDENCE_TARGETS: tuple[str, ...] = ("flatten", "label_smoothing", "soften")
"""Kinds that set a confidence given as ``confidence`` (the others keep or derive the teacher's own)."""

HARD_LABEL_MARGIN = 1.0e4
"""Logit gap of the "argmax" targets: 0 on the label, -1e4 elsewhere, i.e. one-hot after softmax in float32
at any sensible temperature, while staying finite (log 0 = -inf would make the KL divergence NaN)."""

_BISECTION_STEPS = 64  # halves the bracket of flatten_confidence's scale to float64 resolution


def _check_temperature(T: object) -> None:
    check_number("T", T, above=0, hint="a temperature: 1 = plain softmax, Hinton et al. use 2-20")


def _check_same_shape(logits: Tensor, other: Tensor, name: str) -> None:
    if other.shape != logits.shape:
        fail(
            name,
            f"of the shape of the logits it pairs with, {tuple(logits.shape)}",
            other,
            shown=str(tuple(other.shape)),
        )


def _check_confidence(value: object, k: int, name: str) -> None:
    check_number(
        name,
        value,
        above=1.0 / k,
        below=1.0,
        hint=f"a probability in (1/K, 1) for K={k} classes, e.g. the teacher's data-set average confidence",
    )


def average_confidence(logits: Tensor) -> float:
    """The data-set average confidence of a teacher: the mean over rows of the largest softmax probability.

    (N, K) -> a float in (1/K, 1]; the confidence the flattened and label-smoothing targets are set to.
    """
    check_logits(logits)
    return logits.softmax(dim=1).amax(dim=1).mean().item()


# ---------------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------------


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, *, T: float) -> Tensor:
    """Distillation loss of Hinton et al. (2015): ``T^2 * KL(softmax(t/T) || softmax(s/T))``, batch mean.

    ``student_logits`` and ``teacher_logits`` are (N, K); returns a scalar. The ``T^2`` factor keeps gradient
    magnitudes comparable across temperatures. The teacher is detached: gradients reach the student only.
    """
    _check_temperature(T)
    check_logits(student_logits, "student_logits")
    check_logits(teacher_logits, "teacher_logits")
    _check_same_shape(student_logits, teacher_logits, "teacher_logits")
    log_p_student = F.log_softmax(student_logits / T, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().to(student_logits.dtype) / T, dim=1)
    return T * T * F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------


def argmax_labels(logits: Tensor) -> Tensor:
    """The teacher's predicted class as hard labels: (N, K) -> (N,) int64 (first index on a tie)."""
    check_logits(logits)
    return logits.argmax(dim=1)


def _assign_nonmax(logits: Tensor, keys: Tensor) -> Tensor:
    """Give the non-max logits, largest first, to the non-max positions in descending order of ``keys``.

    Positions holding the row maximum keep it, so the max logit, the argmax and each row's multiset of values
    are unchanged. (N, K), (N, K) -> (N, K).
    """
    is_max = logits == logits.amax(dim=1, keepdim=True)
    by_key = keys.argsort(dim=1, descending=True, stable=True)
    # Stable sort on "is not max" puts the max positions first, the rest still in descending key order.
    max_first = (~is_max.gather(1, by_key)).to(torch.int8).argsort(dim=1, stable=True)
    positions = by_key.gather(1, max_first)
    values = logits.sort(dim=1, descending=True).values  # the max block first, then non-max values descending
    return torch.empty_like(logits).scatter_(1, positions, values)


def shuffle_nonmax(logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Randomly permute each sample's non-max logits among its non-max positions (C7a): (N, K) -> (N, K).

    The max logit and argmax stay; what the teacher says about the incorrect classes is scrambled. Each row
    gets an independent uniform permutation drawn from ``generator`` (on the logits' device).
    """
    check_logits(logits)
    keys = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float64)
    return _assign_nonmax(logits, keys)


def mean_nonmax(logits: Tensor) -> Tensor:
    """Replace each sample's non-max logits by their mean (C7b): (N, K) -> (N, K); max logit and argmax kept.

    The teacher's confidence changes (it depends on all logits) but no incorrect class is favoured any more.
    A row whose entries all equal its maximum is returned unchanged.
    """
    check_logits(logits)
    is_nonmax = logits < logits.amax(dim=1, keepdim=True)
    count = is_nonmax.sum(dim=1, keepdim=True).clamp(min=1)
    mean = torch.where(is_nonmax, logits, 0.0).sum(dim=1, keepdim=True) / count
    # Guard against rounding lifting the mean above the largest non-max value (and so onto the max).
    largest_nonmax = torch.where(is_nonmax, logits, -torch.inf).amax(dim=1, keepdim=True)
    return torch.where(is_nonmax, torch.minimum(mean, largest_nonmax), logits)


def reorder_nonmax(logits: Tensor, reference: Tensor) -> Tensor:
    """Keep the values of ``logits`` but rank its incorrect classes as ``reference`` does (C7c): (N, K) -> (N, K).

    Per sample, the max logit stays at the argmax of ``logits``; its non-max values, sorted descending, go to
    the other classes in the order of ``reference`` (e.g. the ST teacher's logits, same shape) on those
    classes. Where the reference's own argmax differs, that class simply takes part in the ranking. Max logit,
    argmax and the multiset of values are kept; only which incorrect class gets which value changes.
    """
    check_logits(logits)
    check_logits(reference, "reference")
    _check_same_shape(logits, reference, "reference")
    return _assign_nonmax(logits, reference.to(logits.device))


def flatten_confidence(logits: Tensor, *, to: float | Tensor) -> Tensor:
    """Rescale each sample's logits so that its argmax has softmax confidence ``to`` (C8): (N, K) -> (N, K).

    ``to`` is one confidence for every sample, or one per sample ((N,), each in ``(1/K, 1)``).

    Solves per sample for a scale ``s > 0`` with ``softmax(s * (z - max z))[argmax] = to`` and returns
    ``s * (z - max z) + max z``. The class order of each row and the argmax are kept; the relative spacing of
    the logits is kept up to the common factor ``s``; only the per-sample confidence is replaced by ``to``
    (the data-set average confidence of the teacher, in ``(1/K, 1)``). The confidence is increasing in ``s``,
    so a bracketing bisection with a fixed number of steps solves all rows at once (in float64).

    The book's protocol requires the max logit to be kept only for C7; here it happens to be kept too (the shift by
    ``max z`` does not change the softmax), but the other logits and so the logit gap do change.

    Edge cases: a row whose maximum is tied keeps its first maximal class as argmax and treats the other tied
    classes as ranked just below it (halfway to the next lower value, or at -1 in a constant row), since no
    rescaling can separate tied logits; a row whose non-max logits are all equal is solved like any other.
    """
    check_logits(logits)
    n, k = logits.shape
    if isinstance(to, Tensor) and to.numel() > 1:
        if to.shape != (n,):
            fail("to", f"one confidence, or one per sample of shape ({n},)", to, shown=describe(to))
        inside = (to > 1.0 / k) & (to < 1.0)
        if not bool(inside.all()):
            fail("to", f"confidences in (1/K, 1) for K={k} classes", to, shown=f"{int((~inside).sum())} outside")
        to = to.to(torch.float64).reshape(n, 1).to(logits.device)
    else:
        _check_confidence(to, k, "to")
        to = float(to)
    z = logits.to(torch.float64)
    top = z.amax(dim=1, keepdim=True)
    first_max = z.argmax(dim=1, keepdim=True)
    is_first_max = torch.zeros_like(z, dtype=torch.bool).scatter_(1, first_max, True)
    d = z - top  # <= 0, and 0 exactly on every maximal class
    next_lower = torch.where(d < 0, d, -torch.inf).amax(dim=1, keepdim=True)
    demoted = torch.where(torch.isfinite(next_lower), next_lower / 2.0, torch.full_like(next_lower, -1.0))
    d = torch.where((d == 0) & ~is_first_max, demoted, d)  # now < 0 off the argmax

    # Root of g(s) = sum_{j != argmax} exp(s * d_j) = ratio, with g decreasing from K-1 to 0.
    ratio = (1.0 - to) / to if isinstance(to, Tensor) else torch.full((n, 1), (1.0 - to) / to, dtype=z.dtype)
    ratio = ratio.to(z.device)
    gap = -d.masked_fill(is_first_max, -torch.inf).amax(dim=1, keepdim=True)  # > 0
    # exp(-s*gap) <= g(s) <= (K-1) exp(-s*gap) brackets the root in s * gap.
    low = (-ratio.log()).clamp_min(0.0) / gap
    high = ((k - 1) / ratio).log() / gap
    d_off = d.masked_fill(is_first_max, -torch.inf)
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2.0
        too_flat = torch.exp(mid * d_off).sum(dim=1, keepdim=True) > ratio  # confidence still below `to`
        low = torch.where(too_flat, mid, low)
        high = torch.where(too_flat, high, mid)
    scale = (low + high) / 2.0
    return (scale * d + top).to(logits.dtype)


def permute_confidence(logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Give each sample the confidence of another (C8, pulled apart): (N, K) -> (N, K).

    The samples' softmax confidences are permuted at random (``generator``) and each row is rescaled
    (`flatten_confidence`) to the confidence it drew: every row keeps its class order and argmax, the data set keeps
    its distribution of confidence, and each sample loses its own. A confidence of exactly 1 in float64 (a row far
    from every other class) is drawn as the largest confidence below 1 that the row can reach."""
    check_logits(logits)
    n, k = logits.shape
    confidence = logits.to(torch.float64).softmax(dim=1).amax(dim=1)
    confidence = confidence.clamp(min=1.0 / k + 1e-12, max=1.0 - 1e-12)
    order = torch.randperm(n, generator=generator).to(confidence.device)
    return flatten_confidence(logits, to=confidence[order])


def spread_nonmax(logits: Tensor) -> Tensor:
    """Keep each sample's confidence, spread the rest of its probability evenly over the other classes:
    (N, K) -> (N, K).

    The target distribution puts the teacher's own softmax confidence ``c`` on its argmax and ``(1 - c) / (K - 1)``
    on every other class: what the teacher says about the incorrect classes is gone, its per-sample confidence is
    kept (unlike `mean_nonmax`, whose mean logit changes the confidence). Returned as logits, ``log((K - 1) c / (1 -
    c))`` on the argmax and 0 elsewhere, computed from the confidence's log-odds in float64 so that a confidence that
    rounds to 1 stays finite. The argmax is kept (``c > 1/K`` unless the row is constant). Computed in float64,
    returned in the logits' dtype.
    """
    check_logits(logits)
    z = logits.detach().double()
    top = z.argmax(dim=1, keepdim=True)
    own = z.gather(1, top)
    log_odds = own.squeeze(1) - torch.logsumexp(z.scatter(1, top, -math.inf), dim=1)  # log(c / (1 - c))
    out = torch.zeros_like(z).scatter_(1, top, (log_odds + math.log(z.shape[1] - 1)).unsqueeze(1))
    return out.to(logits.dtype)


def soften(logits: Tensor, *, to: float) -> Tensor:
    """Divide all logits by one temperature chosen so that the mean softmax confidence is ``to``: (N, K) -> (N, K).

    Every row keeps its class order and its logits' relative spacing; only the sharpness of the whole set of targets
    changes (one scale for all rows, found by bisection on the mean confidence, which increases with the scale).
    The softness control of C6: the ST teacher softened to the AT teacher's mean confidence. ``to`` must lie in
    ``(1/K, 1)``. Computed in float64, returned in the logits' dtype.
    """
    check_logits(logits)
    k = logits.shape[1]
    _check_confidence(to, k, "to")
    z = logits.detach().double()
    z = z - z.amax(dim=1, keepdim=True)

    def mean_confidence(scale: float) -> float:
        return (z * scale).softmax(dim=1).amax(dim=1).mean().item()

    low, high = 0.0, 1.0
    while mean_confidence(high) < to and high < 1e6:  # the bracket's top: confident enough
        high *= 2.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2.0
        low, high = (mid, high) if mean_confidence(mid) < to else (low, mid)
    return (logits.detach().double() * (low + high) / 2.0).to(logits.dtype)


def label_smoothing(y: Tensor, confidence: float, *, num_classes: int = 10) -> Tensor:
    """LOGITS (log-probabilities) of the label-smoothing distribution: (N,) -> (N, num_classes).

    The distribution puts ``confidence`` on class ``y`` and ``(1 - confidence) / (K - 1)`` on every other
    class. Returned as logits so that it goes through the same KD path as a teacher: ``softmax`` of it at
    ``T = 1`` gives the distribution back (at other temperatures it is sharpened or flattened like any
    teacher). ``confidence`` must be in ``(1/K, 1)`` so that ``y`` is the strict argmax and log stays finite.
    """
    check_int("num_classes", num_classes, at_least=2)
    _check_confidence(confidence, num_classes, "confidence")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] < 1:
        fail("y", "a non-empty 1-D tensor of class indices", y, shown=str(getattr(y, "shape", type(y))))
    check_labels(y, y.shape[0], num_classes)
    off = math.log((1.0 - confidence) / (num_classes - 1))
    out = torch.full((y.shape[0], num_classes), off, dtype=torch.float32, device=y.device)
    return out.scatter_(1, y.long().unsqueeze(1), math.log(confidence))


def label_correct(logits: Tensor, y: Tensor) -> Tensor:
    """The label-corrected teacher: where the argmax is not ``y``, swap the logits of the argmax and of ``y``.

    (N, K), (N,) -> (N, K). Class ``y`` ends on top with the same set of values per row; rows already correct
    are unchanged. This is a control of the book (docs/protocol.md): it removes the relabelling an imperfect
    teacher does. When ``y`` is tied with the maximum, the swap changes nothing and ``y`` stays tied on top.
    """
    check_logits(logits)
    check_labels(y, logits.shape[0], logits.shape[1])
    y = y.to(logits.device).long().unsqueeze(1)
    top = logits.argmax(dim=1, keepdim=True)
    at_top = logits.gather(1, top)
    at_y = logits.gather(1, y)
    return logits.clone().scatter_(1, top, at_y).scatter_(1, y, at_top)


def hard_label_logits(labels: Tensor, *, num_classes: int) -> Tensor:
    """Finite logits of one-hot targets: 0 on ``labels``, ``-HARD_LABEL_MARGIN`` elsewhere: (N,) -> (N, K).

    Through :func:`kd_loss` at ``T = 1`` these give exactly cross-entropy on ``labels`` (times 1).
    """
    check_int("num_classes", num_classes, at_least=2)
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] < 1:
        fail(
            "labels",
            "a non-empty 1-D tensor of class indices",
            labels,
            shown=str(getattr(labels, "shape", type(labels))),
        )
    check_labels(labels, labels.shape[0], num_classes, "labels")
    out = torch.full((labels.shape[0], num_classes), -HARD_LABEL_MARGIN, device=labels.device)
    return out.scatter_(1, labels.long().unsqueeze(1), 0.0)


# ---------------------------------------------------------------------------------------------------------
# One entry point for experiments
# ---------------------------------------------------------------------------------------------------------


def make_targets(
    kind: TargetKind,
    teacher_logits: Tensor,
    *,
    y: Tensor,
    label_corrected: bool = False,
    reference: Tensor | None = None,
    confidence: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Target logits (N, K) for :func:`kd_loss` from a teacher's logits (N, K) and true labels ``y`` (N,).

    ``kind`` (claim in brackets):

    - ``"kd"``: the teacher's logits unchanged (C6);
    - ``"shuffle"``: :func:`shuffle_nonmax`, drawing from ``generator`` (C7a);
    - ``"mean"``: :func:`mean_nonmax` (C7b);
    - ``"reorder"``: :func:`reorder_nonmax` like ``reference`` (the ST teacher's logits) (C7c);
    - ``"flatten"``: :func:`flatten_confidence` to ``confidence`` (C8);
    - ``"label_smoothing"``: :func:`label_smoothing` of the teacher's argmax with ``confidence`` (C8 baseline);
    - ``"argmax"``: :func:`hard_label_logits` of the teacher's argmax (control (i)); with ``kd_loss`` at
      ``T = 1`` this is cross-entropy on the teacher's hard labels;
    - ``"spread"``: :func:`spread_nonmax`, the teacher's confidence kept, the rest spread evenly (C7);
    - ``"soften"``: :func:`soften` to ``confidence`` (the softness control of C6: an ST teacher made as soft as the
      AT teacher on average);
    - ``"permute_confidence"``: :func:`permute_confidence`, drawing from ``generator`` (C8: each sample's confidence
      replaced by another's, the distribution kept).

    With ``label_corrected=True`` the teacher is first label-corrected (:func:`label_correct` with ``y``; control
    (ii)) and then manipulated, so every kind keeps ``y`` as the argmax (unless ``y`` is exactly tied with the
    maximum); then ``"argmax"`` means training on the true labels and ``"label_smoothing"`` is ordinary label
    smoothing. Otherwise smoothing and hard labels follow the teacher's argmax (not ``y``), so that every kind
    keeps the teacher's argmax, as the protocol asks.

    ``reference`` is required by, and only accepted for, ``"reorder"``; ``confidence`` likewise for
    ``"flatten"``, ``"label_smoothing"`` and ``"soften"`` (pass the data-set average, `average_confidence` of the
    teacher's logits, computed once on the whole training set, not per batch). ``generator`` is
    used by ``"shuffle"`` and ``"permute_confidence"`` only. The result has the teacher's dtype and device and
    never requires grad.

    Examples::

        targets = make_targets("shuffle", teacher_logits, y=y, generator=torch.Generator().manual_seed(0))
        loss = kd_loss(student(x), targets, T=1.0)
    """
    confidence = _check_target_args(kind, teacher_logits, y, label_corrected, reference, confidence)
    teacher = teacher_logits.detach()
    if label_corrected:
        teacher = label_correct(teacher, y)
    k = teacher.shape[1]
    manipulations: dict[str, Callable[[], Tensor]] = {  # kind -> its function, one name each
        "kd": lambda: teacher.clone(),
        "shuffle": lambda: shuffle_nonmax(teacher, generator=generator),
        "mean": lambda: mean_nonmax(teacher),
        "reorder": lambda: reorder_nonmax(teacher, reference.detach()),
        "spread": lambda: spread_nonmax(teacher),
        "soften": lambda: soften(teacher, to=confidence),
        "flatten": lambda: flatten_confidence(teacher, to=confidence),
        "label_smoothing": lambda: label_smoothing(argmax_labels(teacher), confidence, num_classes=k),
        "permute_confidence": lambda: permute_confidence(teacher, generator=generator),
        "argmax": lambda: hard_label_logits(argmax_labels(teacher), num_classes=k),
    }
    return manipulations[kind]().to(teacher_logits.dtype)


def _check_target_args(
    kind: object,
    teacher_logits: Tensor,
    y: Tensor,
    label_corrected: object,
    reference: Tensor | None,
    confidence: float | Tensor | None,
) -> float | None:
    """The checks of `make_targets`' arguments; returns ``confidence`` as a float (None where the kind takes none)."""
    check_choice("kind", kind, TARGET_KINDS)
    check_bool("label_corrected", label_corrected)
    check_logits(teacher_logits, "teacher_logits")
    n, k = teacher_logits.shape
    check_labels(y, n, k)
    if kind == "reorder":
        if reference is None:
            fail("reference", "the ST teacher's logits (same shape) for kind='reorder'", None)
        check_logits(reference, "reference")
        _check_same_shape(teacher_logits, reference, "reference")
    elif reference is not None:
        fail(
            "reference",
            f"None for kind={kind!r} (only kind='reorder' uses it)",
            reference,
            shown=describe(reference),
            hint="drop it",
        )
    if kind not in CONFIDENCE_TARGETS:
        if confidence is not None:
            only = "only 'flatten', 'label_smoothing' and 'soften' use it"
            fail("confidence", f"None for kind={kind!r} ({only})", confidence, hint="drop it")
        return None
    if confidence is None:
        fail("confidence", f"the teacher's data-set average confidence in (1/K, 1) for kind={kind!r}", None)
    if isinstance(confidence, Tensor) and confidence.numel() == 1:
        confidence = confidence.item()  # e.g. average_confidence(teacher_logits) as a tensor
    _check_confidence(confidence, k, "confidence")
    return float(confidence)
