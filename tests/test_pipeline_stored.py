"""advlogits.pipeline.stored: the book's computations through the store, and what enters their store keys.

* a model is trained once and then loaded (a distilled student's teacher logits are computed once too);
* evaluation (clean, PGD-CE, AutoAttack and PGD-CW), evaluation logits, margin drops and RobustBench logits are
  stored once and agree with an independent computation;
* a model's key follows its config and the source of `MODEL_SOURCES`, a result's key also `RESULT_SOURCES`;
  editing a chapter module, a figure or the claims registry changes no key and retrains nothing, editing the
  attacks retrains, editing the measures recomputes results only; the Makefile re-executes a chapter when the
  library or the chapter changes;
* bad input (papermill parameters, the environment) fails before any training, names the parameter and leaves
  the store without entries. With the tables of tests/test_profiles.py and tests/test_train.py this is the
  bad-input matrix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import test_profiles
import test_train
import torch
from source_imports import imports, module_file

import advlogits
from advlogits import margins, pipeline, profiles
from advlogits.attacks import pgd
from advlogits.data import DatasetError, load_dataset
from advlogits.distill import make_targets
from advlogits.fileio import StoreError
from advlogits.pipeline import measures, training
from advlogits.pipeline.stored import MODEL_SOURCES, RESULT_SOURCES, model_code, model_key, result_code
from advlogits.predict import predict_logits
from advlogits.store import Store, source_digest
from advlogits.synthetic import cifar_batch, write_cifar

from fault_workers import CHAPTER, ROOT, ST, WORKER_TIMEOUT_S, papermill, strip_ansi, subprocess_env, worker_command
from helpers import robustbench_zoo_model, tiny_standard_config, write_robustbench_checkpoint

PACKAGE = Path(advlogits.__file__).resolve().parent
TINY = tiny_standard_config()
TEACHER = TINY
RB_NAME = "Ding2020MMA"  # smallest CIFAR-10 Linf zoo entry (WRN-28-4)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """One store for the tests that evaluate TINY, so it is trained once."""
    return Store(tmp_path_factory.mktemp("tiny-store"))


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    return Store()


def _results(store: Store, config, pattern: str) -> list[Path]:
    return sorted((store.entry(model_key(config)) / "results").glob(pattern))


# ==============================================================================================================
# models


@pytest.mark.slow
def test_get_model_trains_once_then_loads(tmp_path):
    s = Store(tmp_path)
    assert not pipeline.has_model(TINY, store=s)
    model, history = pipeline.get_model(TINY, store=s, progress=False)
    assert pipeline.has_model(TINY, store=s)
    entry = s.entry(model_key(TINY))
    stamp = (entry / "model.pt").stat().st_mtime_ns
    assert not (entry / "checkpoint.pt").exists(), "the training checkpoint is removed once the model is stored"
    assert json.loads((entry / "config.json").read_text())["seed"] == 0
    loaded, history2 = pipeline.get_model(TINY, store=s, progress=False)
    assert (entry / "model.pt").stat().st_mtime_ns == stamp
    assert history2 == json.loads(json.dumps(history))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert not loaded.training and not model.training
    assert len((entry / "training.log").read_text().splitlines()) == 1
    assert s.keys() == [model_key(TINY)]


def test_the_default_store_is_advlogits_home(store, tmp_path):
    small = dataclasses.replace(TINY, n_train=64, n_val=16)
    assert not pipeline.has_model(small)
    pipeline.get_model(small, progress=False)
    assert pipeline.has_model(small) and pipeline.has_model(small, store=store)
    assert Store(tmp_path / "store").keys() == [model_key(small)]


def test_every_unit_logs_one_line_trained_or_computed_or_from_store(tmp_path, caplog):
    s, small = Store(tmp_path), dataclasses.replace(TINY, n_train=64, n_val=16)
    p = profiles.resolve("smoke", device="cpu", n_eval=16, n_autoattack=8)
    with caplog.at_level("INFO", logger="advlogits"):
        pipeline.get_model(small, store=s, progress=False)
        pipeline.eval_logits(p, small, store=s)
        first = [r.getMessage() for r in caplog.records if r.name == "advlogits"]
        caplog.clear()
        pipeline.get_model(small, store=s, progress=False)
        pipeline.eval_logits(p, small, store=s)
        second = [r.getMessage() for r in caplog.records if r.name == "advlogits"]
    name = pipeline.describe(small)
    assert first[0].startswith(f"trained {name} (") and first[0].endswith(" s)")
    assert first[-1].startswith(f"computed eval-logits of {name} (")
    assert second == [m for m in second if m.startswith("from store ")] and len(second) == 2
    assert second[0].startswith(f"from store {name} (") and second[1].startswith(f"from store eval-logits of {name}")


def test_describe_names_the_model():
    assert pipeline.describe(TINY) == "standard, cnn-small, fashion-mnist, seed 0"
    at = dataclasses.replace(TINY, method="adversarial", eps=0.1, alpha=0.05, steps=2)
    assert pipeline.describe(at).endswith("seed 0, eps 0.1")
    student = dataclasses.replace(TINY, method="distilled", teacher=at, targets="shuffle", label_corrected=True)
    assert pipeline.describe(student).endswith("targets label-corrected shuffle of the adversarial teacher")


def test_a_linear_model_is_an_ordinary_stored_model(tmp_path):
    store = Store(tmp_path)
    p = profiles.resolve("smoke", device="cpu", sweep_n_train=64, sweep_epochs=1)
    config = p.linear(0.1)
    model, _ = pipeline.get_model(config, store=store, progress=False)
    assert isinstance(model.linear, torch.nn.Linear) and model.linear.weight.shape == (10, 784)
    assert pipeline.has_model(config, store=store) and store.keys() == [model_key(config)]
    again, _ = pipeline.get_model(config, store=store, progress=False)
    assert torch.equal(again.linear.weight, model.linear.weight)
    other, _ = pipeline.get_model(p.linear(0.0), store=store, progress=False)
    assert not torch.equal(other.linear.weight, model.linear.weight)
    assert len(store.keys()) == 2


def test_distilled_student_gets_manipulated_teacher_logits_computed_once(store):
    student = dataclasses.replace(TEACHER, method="distilled", teacher=TEACHER, targets="shuffle", seed=0)
    model, history = pipeline.get_model(student, store=store, progress=False)
    teacher_logits = pipeline.train_logits(TEACHER, dataset="fashion-mnist", n_train=256, seed=0, store=store)
    assert teacher_logits.shape == (256, 10)
    stored_logits = _results(store, TEACHER, "train-logits-*.pt")
    assert len(stored_logits) == 1, "the teacher's logits are computed once and stored"
    assert pipeline.has_model(TEACHER, store=store), "the teacher was trained and stored first"
    x, y = load_dataset("fashion-mnist", "train", n=256, seed=0)
    teacher, _ = pipeline.get_model(TEACHER, store=store)
    torch.testing.assert_close(teacher_logits, predict_logits(teacher, x))
    targets = training.distillation_targets(student, y, teacher_logits, None)
    expected = make_targets("shuffle", teacher_logits, y=y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(targets, expected)
    assert history["epoch"] == [1]
    assert sorted(store.keys()) == sorted([model_key(TEACHER), model_key(student)])


# ==============================================================================================================
# results


def test_evaluate_reports_consistent_accuracies_and_is_stored(tiny_store):
    store = tiny_store
    p = profiles.resolve("smoke", device="cpu", n_eval=64, n_autoattack=16)
    result = pipeline.evaluate(p, TINY, store=store, progress=False)
    assert result["n_eval"] == 64 and len(result["pgd_correct"]) == len(result["pgd_cw_correct"]) == 64
    assert result["clean_acc"] == pytest.approx(sum(result["clean_correct"]) / 64)
    assert result["pgd_acc"] <= result["clean_acc"] + 1 / 64
    assert 0 <= result["autoattack_acc"] <= 1 and result["n_autoattack"] == 16
    clean = torch.tensor(result["clean_correct"][:16])
    ce, cw = torch.tensor(result["pgd_correct"][:16]), torch.tensor(result["pgd_cw_correct"][:16])
    aa, worst = torch.tensor(result["autoattack_correct"]), torch.tensor(result["robust_correct"])
    assert result["n_autoattacked"] == int(clean.sum()), "AutoAttack attacks every clean-correct image"
    assert not (aa & ~clean).any()
    assert torch.equal(worst, ce & cw & aa), "robust: correct under every attack at once"
    assert result["robust_acc"] == pytest.approx(worst.float().mean().item())
    assert result["autoattack_acc"] == pytest.approx(aa.float().mean().item())
    assert not (torch.tensor(result["pgd_correct"]) & ~torch.tensor(result["clean_correct"])).any()
    again = pipeline.evaluate(p, TINY, store=store)
    assert again == json.loads(json.dumps(result))
    assert len(_results(store, TINY, "evaluation-*.json")) == 1, "one stored result holds every attack"


def test_the_stored_cw_outcomes_match_an_independent_attack_and_are_keyed_by_the_settings(tiny_store):
    store = tiny_store
    p = profiles.resolve("smoke", device="cpu", n_eval=48, n_autoattack=16, eval_steps=5)
    result = pipeline.evaluate(p, TINY, store=store, progress=False)
    assert len(result["pgd_cw_correct"]) == 48
    assert result["pgd_cw_acc"] == pytest.approx(sum(result["pgd_cw_correct"]) / 48)
    assert result["pgd_cw_acc_on_autoattack_subset"] == pytest.approx(sum(result["pgd_cw_correct"][:16]) / 16)
    model, _ = pipeline.get_model(TINY, store=store)
    x, y = pipeline.eval_split(p)
    x_adv = pgd(
        model, x, y, eps=p.eps, alpha=p.eval_alpha, steps=5, loss="cw", generator=torch.Generator().manual_seed(p.seed)
    )
    with torch.no_grad():
        plain = model(x_adv).argmax(1) == y
    early = torch.tensor(result["pgd_cw_correct"])
    assert not (early & ~plain).any(), "the early-stopping attack is never weaker than the plain one"
    before = len(_results(store, TINY, "evaluation-*.json"))
    assert pipeline.evaluate(p, TINY, store=store) == result
    assert len(_results(store, TINY, "evaluation-*.json")) == before, "stored once"
    other = pipeline.evaluate(dataclasses.replace(p, eval_steps=1), TINY, store=store)
    assert len(_results(store, TINY, "evaluation-*.json")) == before + 1, "other attack settings: another result"
    assert sum(other["pgd_cw_correct"]) >= sum(result["pgd_cw_correct"]) - 2  # weaker attack: not much stronger


@pytest.mark.slow
def test_the_stored_evaluation_attacks_with_the_margin_loss_where_cross_entropy_saturates(tiny_store):
    """A stored model with huge logits (the sharp targets of some students do that): CE-PGD barely moves, and
    the stored evaluation must find what the CW attack finds, and count it in the worst case."""
    good = dataclasses.replace(TINY, n_train=2048)  # accurate enough to have something to attack
    sharp_config = dataclasses.replace(good, seed=7)  # a store key of its own for the hand-made model
    sharp, history = pipeline.get_model(good, store=tiny_store, progress=False)
    last = [m for m in sharp.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
    tiny_store.save_weights(model_key(sharp_config), state=sharp.state_dict(), config=sharp_config, history=history)
    p = profiles.resolve("smoke", device="cpu", n_eval=48, n_autoattack=16, eval_steps=5)
    x, y = pipeline.eval_split(p)
    kw = dict(eps=p.eps, alpha=p.eval_alpha, steps=5, seed=p.seed)
    clean = predict_logits(sharp, x).argmax(1) == y
    ce = (clean & measures.pgd_correct(sharp, x, y, loss="ce", **kw)).tolist()
    cw = (clean & measures.pgd_correct(sharp, x, y, loss="cw", **kw)).tolist()
    assert sum(cw) <= sum(ce) - 8, "precondition: the two losses disagree on this model"
    result = pipeline.evaluate(p, sharp_config, store=tiny_store)
    assert result["pgd_cw_correct"] == cw
    assert not any(w and not c for w, c in zip(result["robust_correct"], cw[:16]))


@pytest.mark.slow
def test_evaluate_is_the_stored_attack_outcomes_in_float32(tiny_store):
    store = tiny_store
    p = profiles.resolve("smoke", device="cpu", n_eval=32, n_autoattack=8, eval_steps=2)
    result = pipeline.evaluate(p, TINY, store=store, progress=False)
    model, _ = pipeline.get_model(TINY, store=store)
    direct = measures.attack_outcomes(
        model,
        *pipeline.eval_split(p),
        eps=p.eps,
        alpha=p.eval_alpha,
        steps=2,
        restarts=p.eval_restarts,
        seed=p.seed,
        n_autoattack=8,
        autoattack_version=p.autoattack_version,
    )
    assert result == json.loads(json.dumps(direct))
    bf16 = dataclasses.replace(TINY, precision="bf16")  # trained in bf16: attacked in float32 all the same
    evaluated = pipeline.evaluate(p, bf16, store=store)
    model, _ = pipeline.get_model(bf16, store=store)
    assert all(param.dtype == torch.float32 for param in model.parameters())
    direct = measures.attack_outcomes(
        model,
        *pipeline.eval_split(p),
        eps=p.eps,
        alpha=p.eval_alpha,
        steps=2,
        restarts=p.eval_restarts,
        seed=p.seed,
        n_autoattack=8,
        autoattack_version=p.autoattack_version,
    )
    assert evaluated == json.loads(json.dumps(direct)), "the evaluation runs the float32 model, not bf16 autocast"


def test_gap_gradients_are_the_stored_margins_computation(tiny_store):
    p = profiles.resolve("smoke", device="cpu", n_eval=24, n_autoattack=0)
    l1 = pipeline.gap_gradients(p, TINY, store=tiny_store)
    model, _ = pipeline.get_model(TINY, store=tiny_store)
    torch.testing.assert_close(l1, margins.gap_gradient_l1(model, pipeline.eval_split(p)[0]))
    assert l1.shape == (24,) and (l1 > 0).all()
    files = _results(tiny_store, TINY, "gap-gradients-*.pt")
    assert len(files) == 1 and torch.equal(pipeline.gap_gradients(p, TINY, store=tiny_store), l1)
    assert _results(tiny_store, TINY, "gap-gradients-*.pt") == files


def test_the_linear_check_is_the_margins_computation_under_both_norms_stored_once(tiny_store):
    p = profiles.resolve("smoke", device="cpu", n_eval=24, n_autoattack=0)
    config = p.linear(p.eps)
    checks = pipeline.linear_check(p, config, store=tiny_store)
    model, _ = pipeline.get_model(config, store=tiny_store)
    x, y = pipeline.eval_split(p)
    generator = torch.Generator().manual_seed(p.seed)  # one generator, L-inf first: the chapter's order
    linf = margins.linear_check(model, x, y, eps=p.eps, norm="linf", generator=generator)
    l2 = margins.linear_check(model, margins.interior(x), y, eps=margins.L2_CHECK_EPS, norm="l2", generator=generator)
    for norm, direct in (("linf", linf), ("l2", l2)):
        assert checks[norm].keys() == direct.keys()
        for part, tensor in direct.items():
            assert torch.equal(checks[norm][part], tensor), (norm, part)
    assert checks["linf"]["closed_form"].shape == (24, 10) and not torch.equal(linf["pgd"], l2["pgd"])
    files = _results(tiny_store, config, "linear-check-*.pt")
    assert len(files) == 1
    again = pipeline.linear_check(p, config, store=tiny_store)
    assert all(torch.equal(again[n][k], checks[n][k]) for n in checks for k in checks[n])
    assert _results(tiny_store, config, "linear-check-*.pt") == files
    other = pipeline.linear_check(dataclasses.replace(p, seed=p.seed + 1), config, store=tiny_store)
    assert not torch.equal(other["linf"]["pgd"], checks["linf"]["pgd"]), "the seed is in the key: new images"
    assert len(_results(tiny_store, config, "linear-check-*.pt")) == 2


@pytest.mark.slow
def test_masking_checks_are_stored_once_for_a_student_and_its_teacher(tiny_store):
    p = profiles.resolve("smoke", device="cpu", n_eval=24, n_autoattack=24, eval_steps=3)
    result = pipeline.evaluate(p, TINY, store=tiny_store)
    teacher = dataclasses.replace(TINY, seed=1)
    checks = pipeline.masking_checks(p, TINY, teacher, robust=result["robust_correct"], store=tiny_store)
    assert checks["radii"] == [p.eps, 2 * p.eps, 3 * p.eps, 0.5]
    assert len(checks["square_correct"]) == len(checks["transfer_correct"]) == 24
    assert checks["robust_at_radius"][-1] == 0.0 and not checks["masked"]
    files = _results(tiny_store, TINY, "masking-*.json")
    assert len(files) == 1
    assert pipeline.masking_checks(p, TINY, teacher, robust=result["robust_correct"], store=tiny_store) == checks
    assert _results(tiny_store, TINY, "masking-*.json") == files, "stored once"
    assert pipeline.has_model(teacher, store=tiny_store), "the transfer attack's teacher was trained for it"


def test_eval_logits_and_the_eval_split_are_stored_once(tiny_store):
    p = profiles.resolve("smoke", device="cpu", n_eval=40, n_autoattack=0)
    x, y = pipeline.eval_split(p)
    expected = load_dataset("fashion-mnist", "test", n=40, seed=p.seed)
    assert torch.equal(x, expected[0]) and torch.equal(y, expected[1])
    z = pipeline.eval_logits(p, TINY, store=tiny_store)
    model, _ = pipeline.get_model(TINY, store=tiny_store)
    torch.testing.assert_close(z, predict_logits(model, x))
    files = _results(tiny_store, TINY, "eval-logits-*.pt")
    assert torch.equal(pipeline.eval_logits(p, TINY, store=tiny_store), z)
    assert _results(tiny_store, TINY, "eval-logits-*.pt") == files and len(files) >= 1
    pipeline.eval_logits(dataclasses.replace(p, n_eval=20), TINY, store=tiny_store)
    assert len(_results(tiny_store, TINY, "eval-logits-*.pt")) == len(files) + 1, "another subset, another result"


def test_margin_drops_are_stored_once_and_are_the_measured_ones(tiny_store):
    p = profiles.resolve("smoke", device="cpu", n_eval=24, n_autoattack=0, eval_steps=3)
    drops = pipeline.margin_drops(p, TINY, store=tiny_store)
    model, _ = pipeline.get_model(TINY, store=tiny_store)
    direct = measures.margin_drop_lists(
        model, *pipeline.eval_split(p), eps=p.eps, alpha=p.eval_alpha, steps=3, restarts=p.eval_restarts, seed=p.seed
    )
    assert drops == json.loads(json.dumps(direct)) and len(drops["clean"]) == 24
    assert pipeline.margin_drops(p, TINY, store=tiny_store) == drops
    assert len(_results(tiny_store, TINY, "margin-drops-*.json")) == 1


def test_robustbench_logits_offline_are_stored_once(tmp_path, monkeypatch):
    """Random weights placed where RobustBench looks first, and a full-size CIFAR-10 test split in the official
    format (10000 random images, 1000 per class)."""
    monkeypatch.setenv("ADVLOGITS_DATA", str(tmp_path / "data"))
    write_cifar(tmp_path / "data", {"test_batch": cifar_batch(10000, seed=0, labels=np.repeat(np.arange(10), 1000))})
    torch.manual_seed(0)
    reference = robustbench_zoo_model(RB_NAME)
    model_dir = tmp_path / "robustbench"
    checkpoint = write_robustbench_checkpoint(model_dir, RB_NAME, reference.state_dict())

    p = profiles.resolve("paper", device="cpu", n_eval=6, n_autoattack=0)
    store = Store(tmp_path / "store")
    z = pipeline.robustbench_logits(p, RB_NAME, model_dir=model_dir, store=store)
    x, _ = pipeline.eval_split(p)
    with torch.no_grad():
        torch.testing.assert_close(z, reference.eval()(x), rtol=1e-5, atol=1e-5)
    key = model_key({"robustbench": RB_NAME, "dataset": "cifar10", "threat_model": "Linf"})
    assert store.keys() == [key] and store.config_of(key) is None, "an entry of results only"
    # stored: a second call reads the store even when the checkpoint is gone
    checkpoint.unlink()
    torch.testing.assert_close(pipeline.robustbench_logits(p, RB_NAME, model_dir=model_dir, store=store), z)


# ==============================================================================================================
# what enters the store keys


def test_results_are_keyed_by_the_source_of_the_modules_that_compute_them(tmp_path):
    names = {m.__name__ for m in MODEL_SOURCES}
    assert "advlogits.margins" not in names and "advlogits.train" in names
    assert "advlogits.pipeline.training" in names and "advlogits.attacks" in names
    assert {m.__name__ for m in RESULT_SOURCES} == {
        "advlogits.pipeline.measures",
        "advlogits.pipeline.masking",
        "advlogits.margins",
        "advlogits.logits",
        "advlogits.autoattack",
    }
    assert model_code() == source_digest(MODEL_SOURCES) != ""
    assert result_code() == source_digest(MODEL_SOURCES + RESULT_SOURCES) != model_code()
    for module in MODEL_SOURCES + RESULT_SOURCES:  # code outside the package (tests, notebooks) adds nothing
        path = Path(module.__file__).resolve()
        assert path.is_relative_to(PACKAGE) and not path.is_relative_to(PACKAGE / "chapters"), module.__name__
    assert model_key(TINY) != model_key(dataclasses.replace(TINY, seed=1))
    s = Store(tmp_path)
    a = s.result_path(model_key(TINY), "r", {}, ".json", code=model_code())
    b = s.result_path(model_key(TINY), "r", {}, ".json", code=result_code())
    assert a != b and a.parent == b.parent == s.entry(model_key(TINY)) / "results"


def _imported_modules(path: Path) -> set[str]:
    """The advlogits modules that ``path`` imports (any import statement; tests/source_imports.py)."""
    names = {name for statement in imports(path, PACKAGE) for name in statement.names}
    return {m for m in names if m != "advlogits" and module_file(m, PACKAGE)}


def _transitive_imports(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        for imported in _imported_modules(module_file(module, PACKAGE)):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen - {start}


# Modules that decide nothing numeric: argument checks, file handling, third-party import quirks.
# Modules that cannot change a number: validation, file I/O, compatibility shims, and the pass counter (it only counts)
BASICS = {
    "advlogits.checks",
    "advlogits.fileio",
    "advlogits._compat",
    "advlogits.passes",
    "advlogits.paths",
    "advlogits.downloads",
}


def test_everything_the_training_code_imports_is_in_the_model_key():
    """Any advlogits module that the training code reaches (transitively) can change a trained model, so its
    source must be in `MODEL_SOURCES`, unless it is one of the basics that cannot change a number."""
    reached = _transitive_imports("advlogits.pipeline.training")
    assert {
        "advlogits.train",
        "advlogits.models",
        "advlogits.data",
        "advlogits.distill",
        "advlogits.attacks",
        "advlogits.evaluation",
        "advlogits.predict",
        "advlogits.accel",
    } <= reached, "the walk follows imports through train.py"
    declared = {m.__name__ for m in MODEL_SOURCES}
    missing = sorted(reached - declared - BASICS)
    assert not missing, f"imported by the training code but in no model key: {missing}"
    assert "advlogits.pipeline.training" in declared


def test_everything_the_measuring_code_imports_is_in_a_result_key():
    """Any advlogits module that the measures reach (transitively) can change a stored result, so its source must be
    in `RESULT_SOURCES` or `MODEL_SOURCES` (every result key has both), unless it is one of the basics."""
    reached = set().union(*(_transitive_imports(m.__name__) for m in RESULT_SOURCES))
    assert {"advlogits.attacks", "advlogits.autoattack", "advlogits.logits", "advlogits.predict"} <= reached
    declared = {m.__name__ for m in MODEL_SOURCES + RESULT_SOURCES}
    missing = sorted(reached - declared - BASICS)
    assert not missing, f"imported by the measuring code but in no result key: {missing}"


def test_the_import_walk_sees_relative_and_package_imports(tmp_path, monkeypatch):
    """The walk above can fail: a module reached only through ``from .. import x`` in a module reached only
    through ``from .y import z`` is found, as is an absolute import."""
    fake = tmp_path / "advlogits"
    (fake / "pipeline").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "pipeline" / "__init__.py").write_text("")
    (fake / "pipeline" / "training.py").write_text("from ..train import fit\n")
    (fake / "train.py").write_text("from . import hidden\nimport advlogits.absolute\n")
    (fake / "hidden.py").write_text("")
    (fake / "absolute.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _transitive_imports("advlogits.pipeline.training") == {
        "advlogits.train",
        "advlogits.hidden",
        "advlogits.absolute",
    }


def _package_copy(base: Path, name: str, edits: list[str]) -> Path:
    """A copy of the advlogits package under ``base/name``, with a statement appended to each module in ``edits``
    (paths inside the package: code, not a comment, which no key reads); returns the folder to put on PYTHONPATH."""
    target = base / name / "advlogits"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for edit in edits:
        with open(target / edit, "a") as f:
            f.write("\n_EDITED = 1  # a statement: the key reads the code\n")
    return target.parent


def _key_worker(copy: Path, root: Path) -> dict:
    proc = subprocess.run(
        worker_command("key", {"root": str(root)}),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        env=subprocess_env(PYTHONPATH=str(copy)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


CHAPTER_EDITS = sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "chapters").glob("*.py"))


@pytest.mark.slow
@pytest.mark.faults
def test_changing_library_code_that_matters_changes_the_store_key(tmp_path):
    """Warm runs (ST's model and its evaluation logits) on copies of a warm store, each by the library with one
    kind of edit: every chapter module with the figures and the claims registry; the attacks; the measures."""
    warm = tmp_path / "warm"
    unchanged = _key_worker(_package_copy(tmp_path, "unchanged", []), warm)
    assert unchanged["file"].startswith(str(tmp_path)), "the subprocess imported the copy"
    assert unchanged["model_code"] == model_code() and unchanged["result_code"] == result_code()
    assert unchanged["model_key"] == model_key(ST)
    assert unchanged["new_models"] == [f"entries/{model_key(ST)}/model.pt"], "the first run trained ST"
    assert unchanged["new_results"], "and computed its evaluation logits"
    assert {"chapters/claims.py", "chapters/figures.py", "chapters/standard_vs_adversarial.py"} <= set(CHAPTER_EDITS)

    edits = {"chapters": CHAPTER_EDITS, "attacks": ["attacks.py"], "measures": ["pipeline/measures.py"]}

    def run(name: str) -> dict:
        shutil.copytree(warm, tmp_path / f"store-{name}")
        return _key_worker(_package_copy(tmp_path, name, edits[name]), tmp_path / f"store-{name}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        chapters, hashed, measured = pool.map(run, edits)

    for key in ("model_code", "result_code", "model_key"):
        assert chapters[key] == unchanged[key], f"a chapter, figure or claims edit changed the {key}"
    assert chapters["new_models"] == [] and chapters["new_results"] == [], "the warm run recomputed nothing"

    assert hashed["model_code"] != unchanged["model_code"] and hashed["model_key"] != unchanged["model_key"]
    assert hashed["new_models"] == [f"entries/{hashed['model_key']}/model.pt"], "a changed attack retrains"
    assert hashed["result_code"] != unchanged["result_code"]
    assert all(p.startswith(f"entries/{hashed['model_key']}/results/") for p in hashed["new_results"])

    assert measured["model_code"] == unchanged["model_code"] and measured["model_key"] == unchanged["model_key"]
    assert measured["new_models"] == [], "a changed measure does not retrain"
    assert measured["result_code"] != unchanged["result_code"]
    new = [Path(p) for p in measured["new_results"]]
    assert new and all(
        p.parent == Path("entries", model_key(ST), "results") and p.name.startswith("eval-logits-") for p in new
    ), "the evaluation logits are recomputed under a new result key"


@pytest.mark.faults
@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_the_makefile_re_executes_a_chapter_when_the_library_or_the_chapter_changes(tmp_path):
    """``make -n`` in a throwaway copy whose executed chapter is up to date. ``-o`` marks the parameters file
    old: it is remade on every run (FORCE) but only rewritten when DEVICE changes, which ``-n`` cannot know."""
    copy = tmp_path / "repo"
    (copy / "chapters").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", copy)
    shutil.copy(ROOT / "pyproject.toml", copy)
    (copy / "requirements").mkdir()
    shutil.copy(ROOT / "requirements" / "lock.txt", copy / "requirements")
    shutil.copy(CHAPTER, copy / "chapters")
    shutil.copytree(
        ROOT / "lib" / "advlogits", copy / "lib" / "advlogits", ignore=shutil.ignore_patterns("__pycache__")
    )
    executed = copy / "_build" / "executed" / "smoke"
    executed.mkdir(parents=True)
    stamp = copy / ".venv" / ".advlogits-setup.stamp"
    stamp.parent.mkdir()
    stamp.touch()
    params = executed / ".params"
    params.write_text("device=auto\n")
    plan = executed / ".plan"  # the book's plan was computed (or left to the chapters) after the last change
    plan.write_text("2\n")  # and found every unit stored: two chapters at a time
    shutil.copy(CHAPTER, executed)
    t0 = time.time() - 1000
    for path in [
        *copy.rglob("*.py"),
        copy / "Makefile",
        copy / "pyproject.toml",
        copy / "requirements" / "lock.txt",
        copy / "chapters" / CHAPTER.name,
    ]:
        os.utime(path, (t0, t0))
    os.utime(stamp, (t0 + 10, t0 + 10))
    os.utime(params, (t0 + 10, t0 + 10))
    os.utime(plan, (t0 + 10, t0 + 10))
    os.utime(executed / CHAPTER.name, (t0 + 20, t0 + 20))

    def would_execute() -> bool:
        proc = subprocess.run(
            ["make", "-n", "-o", str(params.relative_to(copy)), "execute", "PROFILE=smoke"],
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return f"papermill chapters/{CHAPTER.name}" in proc.stdout

    assert not would_execute(), "an up-to-date chapter is not executed again"
    lib = copy / "lib" / "advlogits"
    for changed in (
        lib / "attacks.py",
        lib / "pipeline" / "measures.py",
        lib / "chapters" / "figures.py",
        copy / "chapters" / CHAPTER.name,
    ):
        os.utime(changed, (t0 + 30, t0 + 30))
        assert would_execute(), f"a change of {changed.name} re-executes the chapter"
        os.utime(changed, (t0, t0))
    assert not would_execute()
    plan.write_text("")  # a stamp from before it held the number of chapters at once: one at a time
    os.utime(plan, (t0 + 10, t0 + 10))
    assert not would_execute()
    os.utime(copy / "chapters" / CHAPTER.name, (t0 + 30, t0 + 30))
    assert would_execute()

    refused = subprocess.run(
        ["make", "-n", "execute", "PROFILE=smoke", "CHAPTER_JOBS=two"], cwd=copy, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "CHAPTER_JOBS=two is not a whole number of at least 1" in refused.stderr


# ==============================================================================================================
# bad input fails before any training and leaves no entry


def _idx(kind: str, count: int, payload: bytes) -> bytes:
    import struct

    header = struct.pack(">iiii", 2051, count, 28, 28) if kind == "images" else struct.pack(">ii", 2049, count)
    return header + payload


def _fashion_copy(folder: Path, *, images: int, truncate_to: int | None = None) -> Path:
    """A Fashion-MNIST train split of ``images`` images in ``folder``, its images file cut after
    ``truncate_to`` payload bytes if given (the header still announces all images)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=images * 784, dtype=np.uint8).tobytes()
    labels = np.arange(images, dtype=np.uint8) % 10
    (folder / "train-images-idx3-ubyte").write_bytes(_idx("images", images, pixels[:truncate_to]))
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx("labels", images, labels.tobytes()))
    return folder


# Bad parameters that the chapter's parameter cells refuse at `profiles.resolve`, as papermill types them (-p and -y):
# run in this process through papermill's own injection, with no kernel.
PARAMETER_CASES = [
    # (id, papermill parameters, expected message)
    ("unknown-profile", {"profile": "nope"}, "profile must be one of 'smoke', 'cpu', 'decisive', 'paper' (got 'nope')"),
    (
        "cuda-without-cuda",
        {"profile": "smoke", "device": "cuda"},
        "device must be 'cpu' or 'auto' on this machine (got 'cuda'); CUDA is not available here",
    ),
    ("negative-seed", {"profile": "smoke", "seed": -3}, "seed must be an integer >= 0 and <= 4294967295 (got -3)"),
    ("negative-eps", {"profile": "smoke", "eps": -1}, "eps must be a finite number > 0 and < 1 (got -1.0)"),
    ("zero-steps", {"profile": "smoke", "overrides": {"steps": 0}}, "steps must be an integer >= 1 (got 0)"),
    (
        "n-beyond-the-data",
        {"profile": "smoke", "overrides": {"n_train": 100000}},
        "n_train must be an integer >= 1 and <= 60000 (got 100000); None uses the whole training split",
    ),
]

# One bad input for each place a chapter can fail before training: a parameter (as papermill's command line types
# it), the store, the data; each through papermill and a kernel, as the build runs a chapter.
PAPERMILL_CASES = [
    # (id, papermill parameters, environment, expected message)
    ("eps-not-a-number", ["-p", "profile", "smoke", "-p", "eps", "abc"], {}, "eps must be a number (got 'abc')"),
    (
        "unwritable-home",
        ["-p", "profile", "smoke"],
        {"ADVLOGITS_HOME": "{tmp}/a-file/store"},
        "is not writable (Not a directory). Set ADVLOGITS_HOME to a writable folder",
    ),
    (
        "truncated-data",
        ["-p", "profile", "smoke"],
        {"ADVLOGITS_DATA": "{tmp}/data"},
        "train-images-idx3-ubyte is truncated: 1016 bytes for 60000 items",
    ),
]


@pytest.mark.parametrize("case", PARAMETER_CASES, ids=lambda c: c[0])
def test_bad_parameters_are_refused_by_the_chapters_parameter_cells(case, tmp_path, monkeypatch):
    """The chapter's code cells up to its `profiles.resolve`, run here with the parameters papermill injects."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    _, parameters, message = case
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    notebook = parameterize_notebook(load_notebook_node(str(CHAPTER)), parameters)  # as papermill reads it
    sources = [c.source for c in notebook.cells if c.cell_type == "code"]
    upto = next(i for i, source in enumerate(sources) if "profiles.resolve(" in source)
    assert sources[upto - 1].startswith("# Parameters"), "papermill's cell comes right before the check"
    namespace: dict = {}
    with pytest.raises(ValueError) as raised:
        for source in sources[: upto + 1]:
            exec(compile(source, str(CHAPTER), "exec"), namespace)
    assert message in str(raised.value)
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
@pytest.mark.faults
def test_bad_papermill_parameters_fail_before_training(tmp_path):
    """A bad parameter, store and data set through the chapter's papermill interface, two kernels at a time."""
    (tmp_path / "a-file").write_text("a file where the store's parent folder should be")
    _fashion_copy(tmp_path / "data", images=60_000, truncate_to=1000)

    def run(case):
        name, params, env, _ = case
        env = {"ADVLOGITS_HOME": str(tmp_path / name / "store"), **{k: v.format(tmp=tmp_path) for k, v in env.items()}}
        (tmp_path / name).mkdir()
        proc = papermill(tmp_path / name / "out.ipynb", *params, env=env)
        out, err = proc.communicate(timeout=600)
        return proc.returncode, strip_ansi(out + err), Path(env["ADVLOGITS_HOME"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, PAPERMILL_CASES))
    for (name, _, _, message), (code, text, home) in zip(PAPERMILL_CASES, results):
        assert code != 0, name
        assert message in text, f"{name}: {message!r} not in the output:\n{text[-3000:]}"
        assert not (home / "entries").exists(), f"{name}: the store gained an entry"
    assert (tmp_path / "a-file").read_text().startswith("a file")


ENVIRONMENT_CASES = [
    # (id, how to break the environment, exception, expected message)
    (
        "n-beyond-the-data",
        "n_train",
        ValueError,
        r"^n must be at most the size of the fashion-mnist train split \(100 images\) \(got 500\); pass a smaller n",
    ),
    ("home-in-proc", "home", StoreError, r"the store at /proc/advlogits-store is not writable .*Set ADVLOGITS_HOME"),
    (
        "data-copy-too-small",
        "small",
        DatasetError,
        r"train-labels-idx1-ubyte has 100 items; the Fashion-MNIST train split has 60000",
    ),
    (
        "data-copy-truncated",
        "truncated",
        DatasetError,
        r"train-images-idx3-ubyte is truncated: 2016 bytes for "
        r"60000 items, expected 47040016",
    ),
]


@pytest.mark.faults
@pytest.mark.parametrize(
    "how, error, message", [c[1:] for c in ENVIRONMENT_CASES], ids=[c[0] for c in ENVIRONMENT_CASES]
)
def test_a_bad_environment_fails_before_training_and_leaves_no_entry(tmp_path, monkeypatch, how, error, message):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    config = ST
    if how == "n_train":  # a valid config, more images than the data set at hand holds
        config = dataclasses.replace(ST, n_train=500)
        monkeypatch.setenv("ADVLOGITS_DATA_ONLY", str(_fashion_copy(tmp_path / "data", images=100)))
    elif how == "home":
        monkeypatch.setenv("ADVLOGITS_HOME", "/proc/advlogits-store")
    else:
        folder = _fashion_copy(
            tmp_path / "data",
            images=100 if how == "small" else 60_000,
            truncate_to=2000 if how == "truncated" else None,
        )
        monkeypatch.setenv("ADVLOGITS_DATA", str(folder))
    with pytest.raises(error, match=message):
        pipeline.get_model(config, progress=False)
    assert not (tmp_path / "store" / "entries").exists()


@pytest.mark.faults
def test_the_bad_input_matrix_has_at_least_20_cases():
    """The bad-input matrix holds at least 20 cases, papermill and the Python API together: the papermill and
    environment cases here, the profile cases of tests/test_profiles.py, the config cases of tests/test_train.py."""
    cases = (PAPERMILL_CASES, test_profiles.RESOLVE_CASES, test_train.CONFIG_CASES, ENVIRONMENT_CASES)
    assert all(cases) and sum(len(c) for c in cases) >= 20
    ids = [c[0] for table in cases[1:3] for c in table]
    assert len(ids) == len(set(ids)), "each case of the Python API tables is named once"


@pytest.mark.parametrize(("setting", "value"), [("autoattack_targets", 1), ("autoattack_iterations", 10)])
def test_autoattack_s_settings_enter_the_evaluation_s_key_only_when_set(setting, value):
    """A profile that leaves AutoAttack its own 9 target classes and 100 iterations keys its evaluations as before
    these settings existed; fewer are another result."""
    p = profiles.resolve("smoke", device="cpu")
    default = pipeline.stored.evaluation_result(p, TINY)
    assert setting not in default.params
    fewer = pipeline.stored.evaluation_result(profiles.resolve("smoke", device="cpu", **{setting: value}), TINY)
    assert fewer.params == {**default.params, setting: value}
    assert fewer.file_name() != default.file_name()
