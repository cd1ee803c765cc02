"""Chapter-level calls: distillation through the store, evaluation, and the chapter's papermill interface."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advlogits import experiments, profiles
from advlogits.distill import make_targets
from advlogits.store import Store
from advlogits.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TEACHER = TrainConfig(dataset="fashion-mnist", arch="cnn-small", method="standard", epochs=1, batch_size=64,
                      lr=0.05, weight_decay=5e-4, n_train=256, n_val=64, seed=0)


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    return Store()


def test_distilled_student_gets_manipulated_teacher_logits_computed_once(store):
    student = dataclasses.replace(TEACHER, method="distilled", teacher=TEACHER, targets="shuffle", seed=0)
    model, history = store.get_or_train(student, progress=False)
    teacher_logits = experiments.train_logits(TEACHER, dataset="fashion-mnist", n_train=256, seed=0, store=store)
    assert teacher_logits.shape == (256, 10)
    stored = list((store.entry(TEACHER) / "results").glob("train-logits-*.pt"))
    assert len(stored) == 1, "the teacher's logits are computed once and stored"
    x, y = experiments.load_dataset("fashion-mnist", "train", n=256, seed=0)
    targets = experiments.distillation_targets(student, x, y, device="cpu", store=store)
    expected = make_targets("shuffle", teacher_logits, y=y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(targets, expected)
    assert history["epoch"] == [1]


def test_flatten_targets_use_the_teachers_average_confidence(store):
    student = dataclasses.replace(TEACHER, method="distilled", teacher=TEACHER, targets="flatten")
    x, y = experiments.load_dataset("fashion-mnist", "train", n=256, seed=0)
    targets = experiments.distillation_targets(student, x, y, device="cpu", store=store)
    teacher = experiments.train_logits(TEACHER, dataset="fashion-mnist", n_train=256, seed=0, store=store)
    average = torch.softmax(teacher, 1).max(1).values.mean()
    torch.testing.assert_close(torch.softmax(targets, 1).max(1).values, average.expand(256), atol=1e-4, rtol=0)


def test_a_teacher_of_another_data_set_is_refused(store):
    student = dataclasses.replace(TEACHER, method="distilled", teacher=dataclasses.replace(TEACHER, dataset="cifar10"))
    x, y = experiments.load_dataset("fashion-mnist", "train", n=256, seed=0)
    with pytest.raises(ValueError, match="teacher and reference must be trained on the student's data set"):
        experiments.distillation_targets(student, x, y, device="cpu", store=store)


def test_evaluate_reports_consistent_accuracies_and_is_stored(store):
    p = profiles.resolve("smoke", device="cpu", n_eval=64, n_autoattack=16)
    result = experiments.evaluate(p, TEACHER, store=store, progress=False)
    assert result["n_eval"] == 64 and len(result["pgd_correct"]) == 64
    assert result["clean_acc"] == pytest.approx(sum(result["clean_correct"]) / 64)
    assert result["pgd_acc"] <= result["clean_acc"] + 1 / 64
    assert 0 <= result["autoattack_acc"] <= 1 and result["n_autoattack"] == 16
    pgd, aa = torch.tensor(result["pgd_correct"][:16]), torch.tensor(result["autoattack_correct"])
    assert not (aa & ~pgd).any(), "an image PGD broke never counts as robust under AutoAttack"
    assert result["n_autoattacked"] == int(pgd.sum()), "AutoAttack runs on exactly the images PGD did not break"
    assert result["autoattack_acc"] == pytest.approx(aa.float().mean().item())
    assert not (torch.tensor(result["pgd_correct"]) & ~torch.tensor(result["clean_correct"])).any()
    again = experiments.evaluate(p, TEACHER, store=store)
    assert again == json.loads(json.dumps(result))
    assert len(list((store.entry(TEACHER) / "results").glob("evaluation-*.json"))) == 1


def test_gap_note_flags_only_large_gaps():
    ok = {"AT": {"pgd_acc_on_autoattack_subset": 0.70, "autoattack_acc": 0.66}}
    bad = {"KD": {"pgd_acc_on_autoattack_subset": 0.60, "autoattack_acc": 0.42}}
    assert experiments.gap_note(ok).startswith("No model")
    assert "KD (18.0 points)" in experiments.gap_note({**ok, **bad})


@pytest.mark.slow
def test_chapter_refuses_a_negative_eps_through_papermill(tmp_path):
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "chapters/01_standard_vs_adversarial.ipynb"),
                           str(out), "-p", "profile", "smoke", "-p", "eps", "-1", "-k", "python3"],
                          capture_output=True, text=True, env={**__import__("os").environ,
                                                               "ADVLOGITS_HOME": str(tmp_path / "store")})
    assert proc.returncode != 0
    assert "eps must be in (0, 1)" in proc.stderr + proc.stdout
    assert not (tmp_path / "store" / "entries").exists(), "nothing was trained or stored"


def test_accuracy_table_shows_bootstrap_intervals():
    results = {"ST": {"clean_correct": [True] * 90 + [False] * 10, "pgd_correct": [True] * 5 + [False] * 95,
                      "autoattack_acc": 0.02, "n_autoattack": 50}}
    table = experiments.accuracy_table(results, pgd_steps=20)
    assert list(table.columns) == ["clean", "PGD-20", "PGD-20, AutoAttack subset", "AutoAttack"]
    assert table.loc["ST", "clean"].startswith("90.0 [")
    assert table.loc["ST", "AutoAttack"].startswith("2.0 [0.0, ")
    estimate, low, high = experiments.accuracy_interval([True] * 500 + [False] * 500)
    half_width = 1.96 * 100 * (0.25 / 1000) ** 0.5  # normal approximation: 3.1 points
    assert estimate == 50 and abs((high - low) / 2 - half_width) < 0.5
