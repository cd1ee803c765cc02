"""Tests for advlogits.chapters.distillation (chapter 4): the line-up table, the students' robust outcomes over seeds
and their intervals, the claims' records, the removal table, the 2x2, the targets' statistics, fidelity, the
chapter's figure, the teachers on the students' images, and the chapter notebook's shape.

The decisions of claims C6, C7 and C8 are tested with the claims registry (tests/test_chapters_claims.py); the
line-up itself with advlogits.pipeline.lineup.
"""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advlogits import inference, pipeline, profiles  # noqa: E402
from advlogits.chapters import distillation  # noqa: E402
from advlogits.data import load_dataset  # noqa: E402
from advlogits.pipeline import lineup  # noqa: E402
from advlogits.store import Store  # noqa: E402

from helpers import committed_chapter_code  # noqa: E402

N = 200


def rates() -> dict[str, float]:
    """Robust rates of the line-up's students, by hand: KD-AT 40%, baselines 10-14%, the C7 students removing 3/4
    of the gain or more, the C8 students all of it, the controls in between."""
    base = {
        lineup.HARD: 0.10,
        lineup.KD_ST: 0.12,
        lineup.KD_ST_SOFT: 0.14,
        lineup.KD_AT: 0.40,
        "AT shuffled": 0.16,
        "AT spread": 0.18,
        "AT ST order": 0.20,
        "AT mean": 0.30,
        "AT flattened": 0.14,
        "AT label smoothing": 0.10,
        lineup.ARGMAX: 0.36,
    }
    base |= {
        lineup.student_label(k, label_corrected=True): r
        for k, r in (
            ("kd", 0.30),
            ("shuffle", 0.20),
            ("spread", 0.22),
            ("reorder", 0.24),
            ("flatten", 0.14),
            ("label_smoothing", 0.12),
        )
    }
    return base


def evaluations(profile) -> dict[tuple[str, int], dict]:
    """A `pipeline.evaluate`-like result for every student and seed: the first round(rate * N) images robust."""
    out = {}
    for s in lineup.students(profile):
        rate = rates().get(s.name, 0.5)
        out[(s.name, s.seed)] = {
            "robust_correct": (np.arange(N) < round(rate * N)).tolist(),
            "clean_correct": (np.arange(2 * N) < round(1.8 * N)).tolist(),  # 90% clean on twice the images
            "autoattack_acc": rate + 0.01,
        }
    return out


@pytest.fixture(scope="module")
def profile():
    return profiles.resolve("smoke", device="cpu")


# ---------------------------------------------------------------------------------------------------------
# The line-up as a table
# ---------------------------------------------------------------------------------------------------------


def test_lineup_table_has_a_row_per_student_with_its_seeds(profile):
    students = lineup.students(profile)
    table = distillation.lineup_table(students)
    assert list(table.index) == list(dict.fromkeys(s.name for s in students))
    assert list(table.columns) == ["role", "claim", "teacher", "targets", "label-corrected", "T", "seeds"]
    assert table.loc["KD-AT"].tolist() == ["claim", "C6", "AT", "kd", "", "1", "100, 101"]
    assert table.loc["KD-ST soft", ["role", "teacher", "targets"]].tolist() == ["baseline", "ST", "soften"]
    assert table.loc["AT spread", ["claim", "targets"]].tolist() == ["C7", "spread"]
    assert table.loc["AT mean", ["role", "claim"]].tolist() == ["mixed", ""]
    assert table.loc["AT-corr shuffled", ["teacher", "targets", "label-corrected"]].tolist() == ["AT", "shuffle", "yes"]
    assert table.loc["hard labels", ["teacher", "targets"]].tolist() == ["", "true labels"]
    assert table.loc["ST teacher"].tolist() == ["teacher", "", "", "", "", "", "0"]
    assert table.loc["KD-AT (T=4)", ["role", "T", "seeds"]].tolist() == ["sweep", "4", "100"]


# ---------------------------------------------------------------------------------------------------------
# Outcomes over seeds, estimates, records
# ---------------------------------------------------------------------------------------------------------


def test_robust_outcomes_stack_each_students_seeds(profile):
    results = evaluations(profile)
    outcomes = distillation.robust_outcomes(lineup.students(profile), results)
    assert "ST teacher" not in outcomes and "KD-AT (T=4)" not in outcomes
    assert outcomes[lineup.KD_AT].shape == (len(profile.student_seeds), N)
    assert outcomes[lineup.KD_AT].mean() == pytest.approx(0.40)
    estimates = distillation.student_estimates(outcomes)
    assert estimates[lineup.KD_AT].estimate == pytest.approx(0.40)
    assert estimates[lineup.KD_AT].low < 0.40 < estimates[lineup.KD_AT].high
    parts = inference.seed_image_parts(outcomes[lineup.KD_AT])
    mde = inference.minimal_detectable(outcomes[lineup.KD_AT])
    assert mde == pytest.approx(parts.half_width(0.95) + parts.half_width(0.6)) and mde > parts.half_width(0.95)
    del results[(lineup.KD_AT, profile.student_seeds[1])]
    with pytest.raises(ValueError, match=r"^results must be an evaluation of every student and seed"):
        distillation.robust_outcomes(lineup.students(profile), results)


def test_claim_records_decide_c6_to_c8_with_the_registry_and_keep_every_seed(profile):
    students = lineup.students(profile)
    results = evaluations(profile)
    outcomes = distillation.robust_outcomes(students, results)
    per_seed = distillation.per_seed_table(students, results, {(lineup.KD_AT, 100): {"top-1 agreement": 0.9}})
    records, tests = distillation.claim_records(outcomes, per_seed=per_seed, images={"seed": 0, "n_robust": N})
    by_id = {r["id"]: r for r in records}
    assert list(by_id) == ["C6", "C7", "C8", "C7c", "C8c"], "our label-corrected readings are decided too"
    assert set(by_id["C8c"]["checks"]) == {"a gain to remove", "AT-corr flattened"}, "its label smoothing is a baseline"
    assert by_id["C7c"]["measured"]["gain_points"][0] == pytest.approx(100 * (0.30 - 0.14))
    assert next(iter(tests["gain"].values())).estimate == pytest.approx(0.26)
    # C6 hinges on the best baseline (KD-ST soft, 14%); C7 on ST order, which keeps the most of the gain
    assert by_id["C6"]["estimate"] == pytest.approx(0.26) and by_id["C6"]["verdict"] == "reproduced"
    assert by_id["C6"]["primary"] == "KD-AT - KD-ST soft"
    assert by_id["C7"]["primary"] == "AT ST order" and by_id["C7"]["estimate"] == pytest.approx(0.40 - 0.20 - 0.13)
    assert by_id["C7"]["verdict"] == "reproduced"
    assert by_id["C8"]["estimate"] == pytest.approx(0.40 - 0.14 - 0.13) and by_id["C8"]["verdict"] == "reproduced"
    assert (by_id["C6"]["n_seeds"], by_id["C6"]["n_images"]) == (len(profile.student_seeds), N)
    measured = by_id["C6"]["measured"]
    assert measured["robust_pct"][lineup.KD_AT] == 40.0 and measured["gain_points"][0] == pytest.approx(26.0)
    assert measured["argmax_share"] == pytest.approx((0.36 - 0.14) / 0.26, abs=1e-3)
    assert measured["per_seed_values"]["KD-AT - hard labels"] == [pytest.approx(0.30)] * len(profile.student_seeds)
    kd = measured["students_per_seed"][lineup.KD_AT]
    assert kd["seeds"] == list(profile.student_seeds) and kd["robust"] == [0.4, 0.4] and kd["clean"] == [0.9, 0.9]
    assert kd["agreement"] == [0.9] and measured["images"] == {"seed": 0, "n_robust": N}
    c7 = by_id["C7"]["measured"]
    assert c7["per_seed_values"]["AT shuffled"] == [pytest.approx(0.40 - 0.16 - 0.13)] * 2
    assert c7["shares_fieller"]["AT shuffled"][0] == pytest.approx((0.40 - 0.16) / 0.26)
    json.dumps(records, allow_nan=False)


def test_removal_table_measures_the_controls_against_the_corrected_teacher(profile):
    outcomes = distillation.robust_outcomes(lineup.students(profile), evaluations(profile))
    table = distillation.removal_table(outcomes)
    assert table.loc["AT ST order", "teacher's KD student"] == "KD-AT"
    nb = "\u00a0"
    assert table.loc["AT ST order", "share of the gain removed"].startswith(f"{100 * (0.40 - 0.20) / 0.26:.1f}%{nb}[")
    assert table.loc["AT-corr flattened", "teacher's KD student"] == "AT-corr KD"
    assert table.loc["AT-corr flattened", "its gain (points)"].startswith(f"16.0{nb}[")  # 0.30 - 0.14
    assert table.loc["AT-corr flattened", "share of the gain removed"].startswith(f"100.0%{nb}[")
    rows = distillation.removal_rows(outcomes)
    assert rows["AT ST order"]["reference"] == "KD-AT"
    assert rows["AT ST order"]["share"][0] == pytest.approx((0.40 - 0.20) / 0.26, abs=1e-9)
    assert rows["AT ST order"]["contrast"].estimate == pytest.approx(0.40 - 0.20 - 0.13)
    assert rows["AT-corr flattened"]["contrast"].estimate == pytest.approx(0.30 - 0.14 - 0.08)
    no_gain = {k: v.copy() for k, v in outcomes.items()}
    no_gain[lineup.KD_AT] = no_gain[lineup.HARD].copy()
    assert distillation.removal_table(no_gain).loc["AT shuffled", "share of the gain removed"] == "n/a (no gain)"


def test_two_by_two_places_the_four_students(profile):
    estimates = distillation.student_estimates(
        distillation.robust_outcomes(lineup.students(profile), evaluations(profile))
    )
    table = distillation.two_by_two(estimates)
    assert table.loc["confidence kept", "class information kept"].startswith("KD-AT: 40.0\u00a0[")
    assert table.loc["confidence kept", "class information removed"].startswith("AT spread: 18.0\u00a0[")
    assert table.loc["confidence removed", "class information kept"].startswith("AT flattened: 14.0\u00a0[")
    assert table.loc["confidence removed", "class information removed"].startswith("AT label smoothing: 10.0\u00a0[")
    corrected = distillation.two_by_two(estimates, label_corrected=True)
    assert corrected.loc["confidence kept", "class information kept"].startswith("AT-corr KD: 30.0\u00a0[")


def test_target_statistics_and_fidelity_by_hand():
    uniform, sharp = torch.zeros(3, 4), torch.tensor([[10.0, 0, 0, 0]] * 3)
    table = distillation.target_statistics({"uniform": uniform, "sharp": sharp})
    assert table.loc["uniform", "mean confidence"] == pytest.approx(0.25)
    assert table.loc["uniform", "mean entropy (nats)"] == pytest.approx(math.log(4))
    p = torch.tensor([10.0, 0, 0, 0], dtype=torch.float64).softmax(0)
    assert table.loc["sharp", "mean entropy (nats)"] == pytest.approx(-(p * p.log()).sum().item(), rel=1e-6)
    same = distillation.fidelity(sharp, sharp)
    assert same == {"top-1 agreement": 1.0, "KL to the teacher (nats)": pytest.approx(0.0, abs=1e-12)}
    other = distillation.fidelity(uniform, sharp)
    assert other["KL to the teacher (nats)"] == pytest.approx((p * (p.log() - math.log(0.25))).sum().item(), rel=1e-6)
    assert distillation.fidelity(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))["top-1 agreement"] == 0.0


def test_robust_figure_draws_every_seed_and_the_mean_with_its_interval(profile):
    outcomes = distillation.robust_outcomes(lineup.students(profile), evaluations(profile))
    estimates = distillation.student_estimates(outcomes)
    roles = {s.name: s.role for s in lineup.students(profile)}
    records, tests = distillation.claim_records(outcomes)
    fig = distillation.robust_figure(outcomes, estimates, roles=roles, gain=next(iter(tests["gain"].values())))
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == list(outcomes)
    assert len(ax.collections) >= len(outcomes)  # one scatter of seeds per student (plus error bars)
    dashed = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert dashed == [pytest.approx(100 * (0.40 - 0.5 * 0.26))]
    assert "robust accuracy" in ax.get_xlabel()
    plt.close(fig)


def test_teacher_facts_on_tiny_teachers(tmp_path, monkeypatch):
    p = profiles.resolve("smoke", device="cpu", n_train=128, n_val=32, student_n_train=64, batch_size=64)
    store = Store(tmp_path / "store")
    facts = distillation.teacher_facts(p, store=store)
    assert list(facts) == ["ST teacher", "AT teacher"]
    first = p.student_seeds[0]
    _, y = load_dataset(p.dataset, "train", n=p.student_n_train, seed=first)
    for name, config in (("ST teacher", p.standard()), ("AT teacher", p.adversarial())):
        assert pipeline.has_model(config, store=store)
        z = pipeline.train_logits(config, dataset=p.dataset, n_train=p.student_n_train, seed=first, store=store)
        f = facts[name]
        assert f["accuracy"] == pytest.approx((z.argmax(1) == y).double().mean().item())
        assert f["mean confidence"] == pytest.approx(z.double().softmax(1).max(1).values.mean().item(), rel=1e-5)
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    files = sorted(str(f) for f in (tmp_path / "store").rglob("*"))
    assert distillation.teacher_facts(p) == facts
    assert sorted(str(f) for f in (tmp_path / "store").rglob("*")) == files


# ---------------------------------------------------------------------------------------------------------
# The chapter
# ---------------------------------------------------------------------------------------------------------


def test_chapter_is_committed_without_outputs_with_a_typed_parameters_cell():
    code = committed_chapter_code("04_distillation")
    assert any('claims.write_claims(profile, "04_distillation"' in c.source for c in code)
