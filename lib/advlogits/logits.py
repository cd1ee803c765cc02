"""Per-image statistics of logits: max logit, logit gap, confidence, margins and their relatives.

Every function takes ``logits`` of shape ``(N, K)`` (N images, K classes, raw pre-softmax scores) and returns
one value per image, shape ``(N,)`` (or ``(N, K)`` for `sorted_logits`), on the input's device. Summaries
over images (means with bootstrap intervals, ranks, correlations) are in `advlogits.stats`.

Examples::

    z = predict_logits(model, x)  # advlogits.predict
    max_logit(z).mean(), logit_gap(z).mean()
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import check_labels, check_logits


def max_logit(logits: Tensor) -> Tensor:
    """Largest logit per sample, ``max_k z_k``: (N, K) -> (N,). Claim C1."""
    check_logits(logits)
    return logits.amax(dim=1)


def logit_gap(logits: Tensor) -> Tensor:
    """Top logit minus runner-up, ``z_(1) - z_(2)``: (N, K) -> (N,), >= 0 (0 when the top is tied). Claim C2."""
    check_logits(logits)
    top2 = logits.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def sorted_logits(logits: Tensor) -> Tensor:
    """Each row sorted in descending order: (N, K) -> (N, K); column j is the (j+1)-th largest logit (the
    sorted-logit curve of C2)."""
    check_logits(logits)
    return logits.sort(dim=1, descending=True).values


def confidence(logits: Tensor, y: Tensor | None = None) -> Tensor:
    """Softmax probability of the predicted class, or of class ``y`` when given: (N, K), (N,) -> (N,) in (0, 1]."""
    check_logits(logits)
    probs = logits.softmax(dim=1)
    if y is None:
        return probs.amax(dim=1)
    check_labels(y, logits.shape[0], logits.shape[1])
    return probs.gather(1, y.to(logits.device).long().unsqueeze(1)).squeeze(1)


def margins(logits: Tensor, y: Tensor) -> Tensor:
    """Margin of the true class, ``z_y - max_{j != y} z_j``: (N, K), (N,) -> (N,).

    Positive when the sample is classified correctly, negative when misclassified, 0 on a tie at the top.
    """
    check_logits(logits)
    check_labels(y, logits.shape[0], logits.shape[1])
    y = y.to(logits.device).long().unsqueeze(1)
    is_y = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, y, True)
    best_other = logits.masked_fill(is_y, -torch.inf).amax(dim=1)
    return logits.gather(1, y).squeeze(1) - best_other


def runner_up(logits: Tensor, y: Tensor) -> Tensor:
    """The class with the largest logit other than ``y``: (N, K), (N,) -> (N,) int64."""
    check_logits(logits)
    check_labels(y, logits.shape[0], logits.shape[1])
    return logits.scatter(1, y[:, None], -math.inf).argmax(dim=1)


def confidence_log_odds(logits: Tensor, y: Tensor | None = None) -> Tensor:
    """Log-odds ``log(p / (1 - p))`` of the softmax probability p of the predicted class (or of class ``y``).

    (N, K), (N,) -> (N,) float64, computed as ``z_c - logsumexp_{j != c} z_j`` so it stays exact where p
    rounds to 1. Strictly increasing in p, hence the same ranks as `confidence`, without rounding ties. On a
    tie at the top the predicted class is the first maximal one and p <= 1/2 (log-odds <= 0).
    """
    check_logits(logits)
    if y is not None:
        check_labels(y, logits.shape[0], logits.shape[1])
    z = logits.detach().double()
    c = z.argmax(dim=1) if y is None else y.to(z.device).long()
    own = z.gather(1, c.unsqueeze(1)).squeeze(1)
    others = z.scatter(1, c.unsqueeze(1), -math.inf)
    return own - torch.logsumexp(others, dim=1)
