"""The committed record can be recomputed by a reader, and its verdicts do not hang on a bootstrap's seed.

`results/cpu/scorecard.json` keeps what each interval is computed from: the per-image confidence scores of C4 and C5
(decided by a bootstrap, so each is rebuilt under 5 other bootstrap seeds and must give the recorded verdicts), and
the per-seed value of every C6 to C8 comparison (whose mean must be the recorded estimate).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from advlogits.chapters import claims
from advlogits.chapters.sample_confidence import baseline_distances

RECORD = Path(__file__).resolve().parents[1] / "results" / "cpu" / "scorecard.json"
BASELINES = {"ST vs ST'": ("ST", "ST'"), "AT vs AT'": ("AT", "AT'")}
RANK_CLAIMS = {"C4": ("spearman", {}), "C5": ("jaccard", {"fraction": claims.C5_FRACTION})}


def _records() -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(RECORD.read_text())}


@pytest.mark.parametrize("bootstrap_seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("cid", list(RANK_CLAIMS))
def test_c4_and_c5_verdicts_hold_under_other_bootstrap_seeds(cid, bootstrap_seed):
    records = _records()
    record, scores = records[cid], records["C4"]["measured"]["scores"]
    assert record["measured"]["bootstrap_seed"] != bootstrap_seed
    statistic, extra = RANK_CLAIMS[cid]
    distances = baseline_distances(
        {name: np.asarray(v) for name, v in scores.items()},
        ("ST", "AT"),
        BASELINES,
        statistic=statistic,
        threshold=record["threshold"],
        n_resamples=record["measured"]["n_resamples"],
        seed=bootstrap_seed,
        **extra,
    )
    decided = claims.CLAIMS[cid].decide({b: distances[b] for b in BASELINES}, n_images=record["n_images"])
    assert decided["verdict"] == record["verdict"]
    assert {n: c["verdict"] for n, c in decided["checks"].items()} == {
        n: c["verdict"] for n, c in record["checks"].items()
    }
    for name, check in record["checks"].items():  # the bounds move by a few Monte-Carlo errors at most
        low, high = decided["checks"][name]["ci"]
        mc_low, mc_high = check["mc_error"]
        assert abs(low - check["ci"][0]) < 5 * mc_low + 1e-9 and abs(high - check["ci"][1]) < 5 * mc_high + 1e-9


def test_c6_to_c8_estimates_are_the_means_of_their_recorded_per_seed_values():
    records = _records()
    for cid in ("C6", "C7", "C8"):
        per_seed = records[cid]["measured"]["per_seed_values"]
        for name, check in records[cid]["checks"].items():
            if name in per_seed:
                assert np.mean(per_seed[name]) == pytest.approx(check["estimate"], abs=1e-5), (cid, name)
    students = records["C6"]["measured"]["students_per_seed"]
    assert all(len(row["robust"]) == len(row["seeds"]) >= 3 for row in students.values())
    assert records["C6"]["measured"]["images"]["n_robust"] == records["C6"]["n_images"]
