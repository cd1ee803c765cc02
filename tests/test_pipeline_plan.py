"""advlogits.pipeline.plan: the book's whole plan of work and its dependencies (that once it has run, executing every
chapter computes nothing more is tested with the executors, tests/test_pipeline_executors.py)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from advlogits import pipeline, profiles
from advlogits.pipeline import lineup, plan
from advlogits.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_the_cpu_plan_holds_every_unit_the_chapters_ask_for_in_dependency_order():
    p = profiles.resolve("cpu", device="cpu")
    units = plan.book_plan(p)
    ids = [u.id for u in units]
    assert len(ids) == len(set(ids))
    kinds = collections.Counter(u.kind for u in units)
    students = lineup.students(p)
    n_sweep = sum(len(c) for c in lineup.eps_sweeps(p).values()) + sum(
        len(c) for c in lineup.linear_model_seeds(p).values()
    )
    n_models = 4 + n_sweep + len(students) - 2
    assert kinds["model"] == n_models == 87, (
        "teachers, seed baselines, sweep and linear models of 3 seeds, every student"
    )
    assert kinds["evaluation"] == len(students) == 55
    assert kinds["masking"] == 7 and kinds["margin-drops"] == 2 and kinds["gap-gradients"] == 2 * 3
    assert kinds["linear-check"] == 2, "the closed-form check on the ST and the AT linear model"
    assert kinds["train-logits"] == 2 * len(p.student_seeds), "each teacher on each seed's images"
    assert "robustbench-logits" not in kinds
    position = {u.id: i for i, u in enumerate(units)}
    assert all(position[d] < position[u.id] for u in units for d in u.deps), "dependencies first"
    assert plan.ordered(units) == units
    by_name = {u.name: u for u in units if u.kind == "model"}
    assert by_name["AT teacher, cpu, seed 0"].key == pipeline.model_key(p.adversarial())
    assert by_name["KD-AT, cpu, seed 101"].config == p.student(teacher=p.adversarial(), seed=101)
    soft = by_name["KD-ST soft, cpu, seed 100"]
    assert len(soft.deps) == 2, "the softened ST teacher's student needs the ST and the AT teacher's logits"
    evaluation = next(u for u in units if u.name == "evaluation of KD-AT, cpu, seed 100")
    assert evaluation.deps == (f"model:{pipeline.model_key(by_name['KD-AT, cpu, seed 100'].config)}",)


def test_the_paper_plan_adds_the_robustbench_models_and_ordered_refuses_gaps():
    p = profiles.resolve("paper", device="cpu")
    units = plan.book_plan(p, robustbench_models=lineup.PAPER_ROBUSTBENCH_MODELS, model_dir="/nowhere")
    assert [u.name for u in units if u.kind == "robustbench-logits"] == [
        f"logits of RobustBench {name}" for name in lineup.PAPER_ROBUSTBENCH_MODELS
    ]
    with pytest.raises(ValueError, match=r"^units must be complete \(every dependency of .* listed\)"):
        plan.ordered([u for u in units if u.kind != "model"])


def test_units_know_whether_they_are_stored_and_which_files_they_leave(tmp_path):
    p = profiles.resolve("smoke", device="cpu", n_eval=16, n_autoattack=4)
    store = Store(tmp_path)
    units = {u.id: u for u in plan.book_plan(p)}
    st = next(u for u in units.values() if u.name == "ST teacher, smoke, seed 0")
    evaluation = next(u for u in units.values() if u.name == "evaluation of ST teacher, smoke, seed 0")
    assert not st.is_stored(store) and not evaluation.is_stored(store)
    st.compute(p, store)
    assert st.is_stored(store) and not evaluation.is_stored(store)
    evaluation.compute(p, store)
    assert evaluation.is_stored(store)
    names = sorted(f.name for f in st.files(store))
    assert names == [
        "config.json",
        "config.json.sha256",
        "history.json",
        "history.json.sha256",
        "model.pt",
        "model.pt.sha256",
    ]
    (result, record) = evaluation.files(store)
    assert result.parent.name == "results" and result.name.startswith("evaluation-") and record.exists()
    seconds = sum(json.loads((store.entry(st.key) / "history.json").read_text())["seconds"])
    assert plan.estimate_seconds(st, store) == pytest.approx(seconds)
    twin = next(u for u in units.values() if u.name == "ST' (seed baseline), smoke, seed 1")
    assert plan.estimate_seconds(twin, store) == pytest.approx(seconds), "the same config with another seed"
    assert plan.estimate_seconds(evaluation, store) > 0, "from the store's compute log"
    # what a stored unit took, from its own records only: none for a unit that is not stored
    assert plan.spent_seconds(st, store) == pytest.approx(seconds)
    logged = [json.loads(line) for line in (store.entry(st.key) / "compute.log").read_text().splitlines()]
    assert plan.spent_seconds(evaluation, store) == pytest.approx(
        next(r["seconds"] for r in logged if r["name"] == "evaluation")
    )
    assert plan.spent_seconds(twin, store) is None


def test_the_spent_summary_adds_the_recorded_times_and_counts_the_others():
    from advlogits.cli.plan import spent_summary

    assert spent_summary([3600.0, 1800.0, None]) == (
        "the 3 stored units took 1.50 h of one-thread compute (1 of them left no record of their time)"
    )
    assert spent_summary([]) == "nothing stored yet: no compute spent on this plan"


def test_the_decisive_plan_checks_every_student_kind_of_each_teacher_for_masking():
    p = profiles.resolve("decisive", device="cpu")
    units = plan.book_plan(p)
    masking = [u for u in units if u.kind == "masking"]
    assert len(masking) == 2 * 23, "every kind, on the first seed of each teacher group"
    assert {u.name.rsplit("seed ", 1)[-1].rstrip(")") for u in masking} >= {"300", "310"}
    assert sum(u.kind == "evaluation" for u in units) == 4 + 2 * 8 * 23
