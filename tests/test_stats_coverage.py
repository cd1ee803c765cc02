"""The coverage of the book's seed-and-image interval on simulated paired data with a known truth.

Two students per seed are scored on the same images (paired); their difference has a seed part, a part every seed
shares (the images) and seed-by-image noise. For S = 3, 5, 10 seeds and seed-to-image variance ratios 0, 1, 4 and
100 (the seed part's variance over the variance of one seed's image mean), the 95% interval must cover the true
difference at least 93% of the time in every cell, with shared images or seed-by-image noise dominating the image
part. 2,000 replications a cell put the check's own standard error at 0.5 points, so a true 95% fails the bar with
probability below 1e-4. The former two-level percentile bootstrap fails the same bar where the seeds dominate.
"""

from __future__ import annotations

import numpy as np
import pytest

from advlogits.inference import seed_image_interval

SEEDS = (3, 5, 10)
RATIOS = (0.0, 1.0, 4.0, 100.0)
N_IMAGES = 200
REPLICATIONS = 2000
BAR = 0.93
TRUTH = 0.3


def paired_students(rng: np.random.Generator, n_seeds: int, ratio: float, *, shared: float, noise: float):
    """Two students' per-image scores (S, N) whose true mean difference is `TRUTH`: the same images (a common
    difficulty that cancels in the difference), a per-image part of the difference every seed shares (``shared``),
    seed-by-image noise (``noise``) and a per-seed shift of variance ``ratio`` times one seed's image-mean variance."""
    difficulty = rng.normal(0, 2, (1, N_IMAGES))
    image_part = rng.normal(0, shared, (1, N_IMAGES))
    seed_sd = np.sqrt(ratio * (shared**2 + noise**2) / N_IMAGES)
    first = difficulty + rng.normal(0, noise / np.sqrt(2), (n_seeds, N_IMAGES))
    second = (
        difficulty
        - TRUTH
        - image_part
        + rng.normal(0, seed_sd, (n_seeds, 1))
        + rng.normal(0, noise / np.sqrt(2), (n_seeds, N_IMAGES))
    )
    return first, second


def coverage(interval, n_seeds: int, ratio: float, *, shared: float, noise: float, replications: int, seed: int):
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(replications):
        first, second = paired_students(rng, n_seeds, ratio, shared=shared, noise=noise)
        low, high = interval(first - second)
        covered += low <= TRUTH <= high
    return covered / replications


def _seed_image(values):
    t = seed_image_interval(values)
    return t.low, t.high


@pytest.mark.parametrize(("shared", "noise"), [(1.0, 1.0), (0.0, 1.0)], ids=["shared images", "seed-by-image noise"])
@pytest.mark.parametrize("n_seeds", SEEDS)
def test_the_seed_image_interval_covers_in_every_cell(n_seeds, shared, noise):
    cells = {
        ratio: coverage(
            _seed_image, n_seeds, ratio, shared=shared, noise=noise, replications=REPLICATIONS, seed=int(10 * ratio)
        )
        for ratio in RATIOS
    }
    assert all(c >= BAR for c in cells.values()), f"coverage by seed-to-image ratio: {cells}"


def two_level_percentile_bootstrap(values: np.ndarray, *, n_resamples: int, rng: np.random.Generator):
    """The book's former interval: seeds and images resampled independently, percentile bounds."""
    s, n = values.shape
    seeds = rng.integers(0, s, (n_resamples, s))
    images = rng.integers(0, n, (n_resamples, n))
    seed_weights = np.stack([np.bincount(row, minlength=s) for row in seeds]).astype(float)
    image_weights = np.stack([np.bincount(row, minlength=n) for row in images]).astype(float)
    means = ((seed_weights @ values) * image_weights).sum(axis=1) / (s * n)
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_the_former_two_level_bootstrap_fails_the_bar_where_seeds_dominate():
    rng = np.random.default_rng(7)
    cell = coverage(
        lambda v: two_level_percentile_bootstrap(v, n_resamples=1000, rng=rng),
        3,
        100.0,
        shared=1.0,
        noise=1.0,
        replications=400,
        seed=11,
    )
    assert cell < BAR - 0.05, f"the two-level percentile bootstrap covered {cell:.3f} at 3 seeds, seeds dominant"
