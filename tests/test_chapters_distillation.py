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
from matplotlib.collections import LineCollection  # noqa: E402

from advlogits import inference, pipeline, profiles  # noqa: E402
from advlogits.chapters import distillation, distillation_figures, removal, roster  # noqa: E402
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


def evaluations(profile, *, second: dict[str, float] | None = None) -> dict[tuple[str, int], dict]:
    """A `pipeline.evaluate`-like result for every student and seed: the first round(rate * N) images robust;
    ``second`` replaces rates in every teacher group but the main seed's."""
    out = {}
    for s in lineup.students(profile):
        rate = rates().get(s.name, 0.5)
        if second and s.teacher_seed != profile.seed:
            rate = second.get(s.name, rate)
        out[(s.name, s.seed)] = {
            "robust_correct": (np.arange(N) < round(rate * N)).tolist(),
            "clean_correct": (np.arange(2 * N) < round(1.8 * N)).tolist(),  # 90% clean on twice the images
            "autoattack_acc": rate + 0.01,
        }
    return out


@pytest.fixture(scope="module")
def profile():
    return profiles.resolve("smoke", device="cpu")


@pytest.fixture(scope="module")
def two_teachers():
    """Students distilled from two AT teachers (seeds 0 and 1), three student seeds each."""
    return profiles.resolve("smoke", device="cpu", distill_teachers=2, student_seeds=(100, 101, 102, 110, 111, 112))


# ---------------------------------------------------------------------------------------------------------
# The line-up as a table
# ---------------------------------------------------------------------------------------------------------


def test_lineup_table_says_in_words_what_each_student_learns_from(profile):
    students = lineup.students(profile)
    table = roster.lineup_table(students)
    learners = [s.name for s in students if s.role not in ("teacher", "sweep")]
    assert list(table.index) == list(dict.fromkeys(learners)) and list(table.columns) == ["part", "learns from"]
    assert table.loc["KD-AT"].tolist() == ["C6", "the AT teacher's logits"]
    assert table.loc["hard labels"].tolist() == ["baseline (C6)", "the true labels (cross-entropy)"]
    assert (
        table.loc["KD-ST soft", "learns from"]
        == "the ST teacher's logits, softened to the AT teacher's mean confidence"
    )
    assert table.loc["AT mean", "part"] == "reported, in no criterion"
    assert table.loc["AT-corr shuffled", "learns from"] == (
        "the label-corrected AT teacher's logits, each image's non-max logits permuted at random"
    )
    code_names = {"kd", "shuffle", "reorder", "label_smoothing", "permute_confidence", "soften"}
    assert not code_names & set(" ".join(table["learns from"]).replace(",", " ").split())


def test_roster_sentence_names_every_teacher_and_its_student_seeds(profile, two_teachers):
    assert roster.roster_sentence(lineup.students(profile)) == (
        "one AT teacher (seed 0) with 2 student seeds (100, 101)"
    )
    assert roster.roster_sentence(lineup.students(two_teachers)) == (
        "2 AT teachers (seeds 0 and 1), each with 3 student seeds (100-102 and 110-112)"
    )
    decisive = lineup.students(profiles.resolve("decisive", device="cpu"))
    assert roster.roster_sentence(decisive) == (
        "2 AT teachers (seeds 0 and 1), each with 8 student seeds (300-307 and 310-317)"
    )


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
    assert c7["finding"].startswith("Of the AT teacher's students,") and "At this profile, " in c7["finding"]
    assert c7["per_seed_values"]["AT shuffled"] == [pytest.approx(0.40 - 0.16 - 0.13)] * 2
    assert c7["shares_fieller"]["AT shuffled"][0] == pytest.approx((0.40 - 0.16) / 0.26)
    json.dumps(records, allow_nan=False)


def test_removal_table_measures_the_controls_against_the_corrected_teacher(profile):
    outcomes = distillation.robust_outcomes(lineup.students(profile), evaluations(profile))
    rows = removal.removal_rows({"AT teacher": outcomes})
    table = removal.removal_table(rows)
    assert table.loc["AT ST order", "teacher's KD student"] == "KD-AT"
    nb = "\u00a0"
    assert table.loc["AT ST order", "share of the gain removed"].startswith(f"{100 * (0.40 - 0.20) / 0.26:.1f}%{nb}[")
    assert table.loc["AT-corr flattened", "teacher's KD student"] == "AT-corr KD"
    assert table.loc["AT-corr flattened", "its gain (points)"].startswith(f"16.0{nb}[")  # 0.30 - 0.14
    assert table.loc["AT-corr flattened", "share of the gain removed"].startswith(f"100.0%{nb}[")
    assert rows["AT ST order"]["reference"] == "KD-AT"
    assert rows["AT ST order"]["share"][0] == pytest.approx((0.40 - 0.20) / 0.26, abs=1e-9)
    assert rows["AT ST order"]["contrast"].estimate == pytest.approx(0.40 - 0.20 - 0.13)
    assert rows["AT-corr flattened"]["contrast"].estimate == pytest.approx(0.30 - 0.14 - 0.08)
    no_gain = {k: v.copy() for k, v in outcomes.items()}
    no_gain[lineup.KD_AT] = no_gain[lineup.HARD].copy()
    no_gain_rows = removal.removal_rows({"AT teacher": no_gain})
    assert removal.removal_table(no_gain_rows).loc["AT shuffled", "share of the gain removed"] == "n/a (no gain)"


def test_removal_rows_of_two_teachers_are_named_as_the_claims_name_them(two_teachers):
    students = lineup.students(two_teachers)
    results = evaluations(two_teachers, second={lineup.KD_AT: 0.30})
    groups = distillation.robust_outcomes_by_teacher(students, results)
    assert list(groups) == ["AT teacher", "AT teacher (seed 1)"]
    rows = removal.removal_rows(groups)
    records, tests = distillation.claim_records(distillation.robust_outcomes(students, results), groups=groups)
    assert set(tests["C7"]) <= set(rows), "every C7 comparison has its row"
    second = rows["AT shuffled (AT teacher (seed 1))"]
    assert second["teacher"] == "AT teacher (seed 1)" and second["student"] == "AT shuffled"
    # the second teacher's KD-AT keeps 30%: its own gain 0.16 and threshold, not the first teacher's
    assert second["gain"].estimate == pytest.approx(0.30 - 0.14)
    assert second["contrast"].estimate == pytest.approx(0.30 - 0.16 - 0.08)
    assert rows["AT shuffled (AT teacher)"]["contrast"].estimate == pytest.approx(0.40 - 0.16 - 0.13)
    fig = distillation_figures.removal_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["AT teacher", "AT teacher (seed 1)"]
    plt.close(fig)


def test_two_by_two_places_the_four_students(profile, two_teachers):
    groups = {"AT teacher": distillation.robust_outcomes(lineup.students(profile), evaluations(profile))}
    table = distillation.two_by_two(groups)
    assert table.loc["confidence kept", "class information kept"].startswith("KD-AT: 40.0\u00a0[")
    assert table.loc["confidence kept", "class information removed"].startswith("AT spread: 18.0\u00a0[")
    assert table.loc["confidence removed", "class information kept"].startswith("AT flattened: 14.0\u00a0[")
    assert table.loc["confidence removed", "class information removed"].startswith("AT label smoothing: 10.0\u00a0[")
    corrected = distillation.two_by_two(groups, label_corrected=True)
    assert corrected.loc["confidence kept", "class information kept"].startswith("AT-corr KD: 30.0\u00a0[")
    students = lineup.students(two_teachers)
    both = distillation.robust_outcomes_by_teacher(students, evaluations(two_teachers, second={lineup.KD_AT: 0.3}))
    table = distillation.two_by_two(both)
    assert table.loc["confidence kept (AT teacher (seed 1))", "class information kept"].startswith("KD-AT: 30.0")


def test_prose_per_teacher_and_the_controls_shares(profile, two_teachers):
    one = {"AT teacher": distillation.robust_outcomes(lineup.students(profile), evaluations(profile))}
    assert distillation.per_teacher(one, lambda o: f"{o[lineup.KD_AT].mean():.2f}") == "0.40"
    students = lineup.students(two_teachers)
    both = distillation.robust_outcomes_by_teacher(students, evaluations(two_teachers, second={lineup.KD_AT: 0.3}))
    said = distillation.per_teacher(both, lambda o: f"{o[lineup.KD_AT].mean():.2f}")
    assert said == "0.40 (AT teacher) and 0.30 (AT teacher (seed 1))"
    argmax, corrected = distillation.control_shares(both)
    assert argmax["AT teacher"] == pytest.approx((0.36 - 0.14) / 0.26)
    assert corrected["AT teacher (seed 1)"] == pytest.approx((0.30 - 0.14) / 0.16)
    estimate, (low, high) = distillation.gain_interval(both["AT teacher (seed 1)"])
    assert estimate == pytest.approx(0.16) and low <= estimate <= high
    no_gain = {k: v.copy() for k, v in one["AT teacher"].items()}
    no_gain[lineup.KD_AT] = no_gain[lineup.HARD].copy()
    assert distillation.control_shares({"AT teacher": no_gain}) is None


def test_masking_flags_are_kept_in_the_records_of_the_claims_that_read_them(two_teachers):
    students = lineup.students(two_teachers)
    results = evaluations(two_teachers)
    groups = distillation.robust_outcomes_by_teacher(students, results)
    checked = lineup.masking_checked(two_teachers, students)
    assert {s.seed for s in checked} == {100, 110}, "the first seed of each teacher group"

    def check(masked: bool) -> dict:
        return {
            "radii": [0.1, 0.5],
            "robust_at_radius": [0.3, 0.0],
            "square_breaks": int(masked),
            "transfer_breaks": 0,
            "masked": masked,
        }

    masking = {(s.name, s.seed): check(s.name == "AT spread" and s.seed == 110) for s in checked}
    by_teacher = distillation.masking_by_teacher(students, masking)
    records, _ = distillation.claim_records(
        distillation.robust_outcomes(students, results), groups=groups, masking=by_teacher
    )
    by_id = {r["id"]: r for r in records}
    assert by_id["C7"]["flagged"] == ["AT spread (AT teacher (seed 1))"]
    assert "flagged" not in by_id["C6"] and "flagged" not in by_id["C8"]
    assert by_id["C7"]["measured"]["masking"]["AT spread (AT teacher (seed 1))"]["square_breaks"] == 1
    assert by_id["C6"]["measured"]["masking"]["KD-AT (AT teacher)"]["flagged"] is False
    table = distillation.masking_table({"AT spread (seed 110)": masking[("AT spread", 110)]})
    assert table.loc["AT spread (seed 110)", "flagged"] == "yes" and "eps 0.5 (%)" in table.columns


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


def test_robust_figure_draws_each_teachers_own_thresholds(two_teachers):
    students = lineup.students(two_teachers)
    groups = distillation.robust_outcomes_by_teacher(students, evaluations(two_teachers, second={lineup.KD_AT: 0.3}))
    roles = {s.name: s.role for s in students}
    fig = distillation_figures.robust_figure(groups, roles=roles)
    first, second = fig.axes
    names = list(groups["AT teacher"])
    assert [t.get_text() for t in first.get_yticklabels()] == names
    assert [ax.get_title() for ax in (first, second)] == ["AT teacher", "AT teacher (seed 1)"]

    def ticks(ax) -> dict[float, float]:  # row -> x of the dashed threshold tick on that row
        out = {}
        for c in ax.collections:
            if isinstance(c, LineCollection) and c.get_linestyle()[0][1]:
                for segment in c.get_segments():
                    out[round(float(segment[:, 1].mean()))] = float(segment[0, 0])
        return out

    row = {name: i for i, name in enumerate(names)}
    first_ticks, second_ticks = ticks(first), ticks(second)
    assert first_ticks[row["AT shuffled"]] == pytest.approx(100 * (0.40 - 0.5 * 0.26))
    assert second_ticks[row["AT shuffled"]] == pytest.approx(100 * (0.30 - 0.5 * 0.16))
    # the label-corrected students are held against the corrected KD student's gain (30% - 14%)
    assert first_ticks[row["AT-corr shuffled"]] == pytest.approx(100 * (0.30 - 0.5 * 0.16))
    assert row["KD-AT"] not in first_ticks and row["hard labels"] not in first_ticks
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
