"""Tests for advlogits.chapters.distillation (chapter 4): the line-up table, the robust accuracies the claims read,
the claims' records, the removal table, the chapter's figure, the teachers on the students' images, and the
chapter notebook's shape.

The decisions of claims C6, C7 and C8 are tested with the claims registry (tests/test_chapters_claims.py); the
line-up itself with advlogits.pipeline.lineup.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from helpers import committed_chapter_code, hand_made_robust

from advlogits import pipeline, profiles  # noqa: E402
from advlogits.chapters import claims, distillation  # noqa: E402
from advlogits.data import load_dataset  # noqa: E402
from advlogits.pipeline import lineup  # noqa: E402
from advlogits.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------
# The line-up as a table
# ---------------------------------------------------------------------------------------------------------


def test_lineup_table_shows_teacher_targets_and_correction():
    p = profiles.resolve("smoke", device="cpu")
    students = lineup.students(p)
    table = distillation.lineup_table(students)
    assert list(table.index) == [s.name for s in students]
    assert list(table.columns) == ["role", "claim", "method", "teacher", "targets", "label-corrected", "T"]
    assert table.loc["AT-corr mean", ["teacher", "targets", "label-corrected", "T"]].tolist() == ["AT", "mean", "yes",
                                                                                                   "1"]
    assert table.loc["hard labels", ["method", "teacher"]].tolist() == ["standard", ""]
    assert table.loc["KD-ST", "teacher"] == "ST"
    assert table.loc["KD-AT"].tolist() == ["claim", "C6", "distilled", "AT", "kd", "", "1"]
    assert table.loc["ST teacher"].tolist() == ["teacher", "", "standard", "", "", "", ""]
    assert table.loc["AT teacher", "method"] == "adversarial"
    assert table.loc["AT ST order", ["claim", "targets"]].tolist() == ["C7", "reorder"]
    assert table.loc["KD-AT (T=4)", ["role", "T"]].tolist() == ["sweep", "4"]


# ---------------------------------------------------------------------------------------------------------
# Robust accuracies, records, the removal table
# ---------------------------------------------------------------------------------------------------------


robust = hand_made_robust


def results_from(robust_values, **extra):
    return {name: {"clean_acc": 0.9, "pgd_acc": r + 0.01, "pgd_acc_on_autoattack_subset": r + 0.02,
                   "pgd_cw_acc": r, "pgd_cw_acc_on_autoattack_subset": r, "autoattack_acc": r, "n_autoattack": 100,
                   **extra.get(name, {})}
            for name, r in robust_values.items()}


def lineup_robust(**values):
    out = robust(**values)
    out.update({"AT argmax": 0.30, "AT-corr KD": 0.32, "AT-corr shuffled": 0.30, "AT-corr mean": 0.10,
                "AT-corr ST order": 0.22, "AT-corr flattened": 0.23, "AT-corr label smoothing": 0.21})
    return out


def test_robust_accuracies_are_autoattack_accuracies_of_every_model():
    results = results_from({"hard labels": 0.10, "KD-AT": 0.42})
    assert distillation.robust_accuracies(results) == {"hard labels": 0.10, "KD-AT": 0.42}
    assert all(type(v) is float for v in distillation.robust_accuracies(results).values())
    with pytest.raises(ValueError, match=r"results must be AutoAttack accuracies of every model .*"
                                         r"\(got none for \['KD-AT'\]\); run the profile with n_autoattack > 0"):
        distillation.robust_accuracies({**results, "KD-AT": {"clean_acc": 0.9, "pgd_acc": 0.4}})


def test_claim_records_carry_the_numbers_and_the_verdicts():
    records = distillation.claim_records(results_from(lineup_robust(mean=0.28)))
    assert [(r["id"], r["holds"]) for r in records] == [("C6", True), ("C7", False), ("C8", True)]
    c6, c7 = records[0]["measured"], records[1]["measured"]
    assert (c6["robust_kd_at_pct"], c6["gain_points"], c6["pgd_ce_kd_at_pct"]) == (42.0, 30.0, 44.0)
    assert (c6["robust_hard_pct"], c6["robust_kd_st_pct"], c6["pgd_ce_hard_pct"], c6["pgd_ce_kd_st_pct"]) == (
        10.0, 12.0, 12.0, 14.0)
    assert c7["threshold_pct"] == 27.0 and c7["robust_at_mean_pct"] == 28.0 and c7["evaluable"] is True
    assert c7["share_removed_at_st_order"] == 0.5 and "note" not in c7
    assert c7["share_removed_at_shuffled"] == 0.9 and c7["robust_at_shuffled_pct"] == 15.0
    c8 = records[2]["measured"]
    assert c8["robust_at_label_smoothing_pct"] == 10.0 and c8["share_removed_at_flattened"] == 1.0
    assert "robust_at_mean_pct" not in c8  # each claim lists its own students
    assert [r["claim"] for r in records] == [claims.CLAIMS[c].claim for c in ("C6", "C7", "C8")]
    json.dumps(records)
    failing = distillation.claim_records(results_from(lineup_robust(kd_at=0.15)))
    assert [r["holds"] for r in failing] == [False, False, False]
    assert "no gain to remove" in failing[2]["measured"]["note"]
    assert failing[1]["measured"]["evaluable"] is False
    nothing = distillation.claim_records(results_from(lineup_robust(kd_at=0.05)))  # a negative gain
    assert nothing[1]["measured"]["share_removed_at_mean"] is None  # NaN share: null in the JSON
    with pytest.raises(ValueError, match=r"results must be AutoAttack accuracies .*\(got none for \['KD-AT'\]\)"):
        distillation.claim_records({**results_from(lineup_robust()), "KD-AT": {"clean_acc": 0.9, "pgd_acc": 0.4}})


def test_removal_table_measures_the_controls_against_the_corrected_teacher():
    table = distillation.removal_table(results_from(lineup_robust()))
    # corrected gain: 0.32 - 0.12 = 0.20, threshold 0.22; "AT-corr mean" removes all of it (share 1.1).
    assert table.loc["AT-corr mean", "threshold (%)"] == pytest.approx(22.0)
    assert table.loc["AT-corr mean", "share of gain removed"] == pytest.approx(1.1)
    assert table.loc["AT-corr ST order", "removes half"] == "yes"
    assert table.loc["AT-corr flattened", "removes half"] == "no"
    assert table.loc["AT mean", "teacher"] == "KD-AT" and table.loc["AT-corr mean", "teacher"] == "AT-corr KD"
    assert len(table) == 10
    # the claims' students against KD-AT: gain 0.30, threshold 27%
    assert table.loc["AT shuffled", "threshold (%)"] == pytest.approx(27.0)
    assert table.loc["AT shuffled", "AutoAttack (%)"] == pytest.approx(15.0)
    assert table.loc["AT shuffled", "teacher's student (%)"] == pytest.approx(42.0)
    assert table.loc["AT shuffled", "share of gain removed"] == pytest.approx(0.9)
    no_gain = distillation.removal_table(results_from(lineup_robust(kd_at=0.05)))
    assert no_gain.loc["AT mean", "removes half"] == "n/a (no gain)"
    assert math.isnan(no_gain.loc["AT mean", "share of gain removed"])


# ---------------------------------------------------------------------------------------------------------
# The chapter's figure
# ---------------------------------------------------------------------------------------------------------


def test_accuracy_figure_on_hand_made_results():
    results = results_from({"hard labels": 0.10, "KD-ST": 0.12, "KD-AT": 0.42},
                           **{"KD-AT": {"pgd_acc_on_autoattack_subset": 0.60, "pgd_cw_acc_on_autoattack_subset": 0.44}})
    fig = distillation.accuracy_figure(results, pgd_steps=20, roles={"KD-AT": "claim"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["hard labels", "KD-ST", "KD-AT [claim]"]
    assert sorted(round(line.get_xdata()[0], 6) for line in ax.lines) == [12.0, 27.0, 42.0]
    assert len(ax.patches) == 3 * 4
    assert ax.get_xlabel() == "accuracy on the evaluation images (%)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["KD-AT (AutoAttack)", "stronger baseline", "C7/C8 threshold",  # the dotted lines, then bars
                      "clean", "PGD-20 CE", "PGD-20 CW", "AutoAttack"]
    # bars in column order: clean 90% for every model, then PGD-CE, PGD-CW, AutoAttack
    assert [round(p.get_width(), 6) for p in ax.patches] == [90.0, 90.0, 90.0, 11.0, 13.0, 43.0,
                                                            10.0, 12.0, 42.0, 10.0, 12.0, 42.0]
    plt.close(fig)
    # without the C6 students there is no gain to mark
    fig = distillation.accuracy_figure({"AT mean": results["KD-AT"]}, pgd_steps=5)
    assert len(fig.axes[0].lines) == 0 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["AT mean"]
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# The teachers on the students' images
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_teacher_facts_on_tiny_teachers(tmp_path, monkeypatch):
    p = profiles.resolve("smoke", device="cpu", n_train=128, n_val=32, student_n_train=64, batch_size=64)
    store = Store(tmp_path / "store")
    facts = distillation.teacher_facts(p, store=store)
    assert list(facts) == ["ST teacher", "AT teacher"]
    _, y = load_dataset(p.dataset, "train", n=p.student_n_train, seed=p.seed)
    for name, config in (("ST teacher", p.standard()), ("AT teacher", p.adversarial())):
        assert pipeline.has_model(config, store=store)
        z = pipeline.train_logits(config, dataset=p.dataset, n_train=p.student_n_train, seed=p.seed, store=store)
        assert z.shape == (64, 10)
        f = facts[name]
        assert f["accuracy"] == pytest.approx((z.argmax(1) == y).double().mean().item())
        assert f["mean_confidence"] == pytest.approx(z.double().softmax(1).max(1).values.mean().item(), rel=1e-5)
        # label correction swaps two logits of a row, so the top probability, hence the mean, is unchanged
        assert f["mean_confidence_corrected"] == pytest.approx(f["mean_confidence"], rel=1e-5)
        assert 0.0 <= f["accuracy"] <= 1.0 and 0.1 <= f["mean_confidence"] <= 1.0
    assert facts["ST teacher"] != facts["AT teacher"]
    # without a store argument: the default store of $ADVLOGITS_HOME, read back without training again
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    files = sorted(str(f) for f in (tmp_path / "store").rglob("*"))
    assert distillation.teacher_facts(p) == facts
    assert sorted(str(f) for f in (tmp_path / "store").rglob("*")) == files


# ---------------------------------------------------------------------------------------------------------
# The chapter
# ---------------------------------------------------------------------------------------------------------


def test_chapter_is_committed_without_outputs_with_a_typed_parameters_cell():
    code = committed_chapter_code("04_distillation")
    assert 'claims.write_claims(profile.name, "04_distillation"' in code[-1].source