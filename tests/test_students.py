"""The distillation line-up: configs, the claims' criteria on hand-made numbers, the CW evaluation, the chapters."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

matplotlib.use("Agg")

from advlogits import claims, experiments, profiles, students  # noqa: E402
from advlogits.attacks import pgd  # noqa: E402
from advlogits.store import Store, config_key  # noqa: E402
from advlogits.train import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(dataset="fashion-mnist", arch="cnn-small", method="standard", epochs=1, batch_size=64,
                   lr=0.05, weight_decay=5e-4, n_train=256, n_val=64, seed=0)
C7 = ("AT shuffled", "AT mean", "AT ST order")
C8 = ("AT flattened", "AT label smoothing")


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """One store for the tests that attack TINY, so it is trained once."""
    return Store(tmp_path_factory.mktemp("tiny-store"))


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    return Store()


def by_name(lineup):
    return {s.name: s for s in lineup}


# ---------------------------------------------------------------------------------------------------------
# The line-up
# ---------------------------------------------------------------------------------------------------------


def test_lineup_holds_the_claims_students_controls_and_sweep_with_distinct_keys():
    p = profiles.resolve("cpu", device="cpu")
    lineup = students.lineup(p)
    s = by_name(lineup)
    assert len({config_key(x.config) for x in lineup}) == len(lineup) == 19
    assert [x.name for x in lineup if x.claim == "C6"] == ["hard labels", "KD-ST", "KD-AT"]
    assert [x.name for x in lineup if x.claim == "C7"] == list(C7)
    assert [x.name for x in lineup if x.claim == "C8"] == list(C8)
    st, at = p.standard(), p.adversarial()
    assert s["ST teacher"].config == st and s["AT teacher"].config == at
    for x in lineup:
        if x.role == "teacher":
            continue
        c = x.config
        assert (c.arch, c.n_train, c.epochs, c.seed) == (p.arch, p.student_n_train, p.student_epochs, p.seed)
    assert s["hard labels"].config.method == "standard"
    assert s["KD-ST"].config.teacher == st and s["KD-ST"].config.targets == "kd"
    expected = {"KD-AT": ("kd", False), "AT shuffled": ("shuffle", False), "AT mean": ("mean", False),
                "AT ST order": ("reorder", False), "AT flattened": ("flatten", False),
                "AT label smoothing": ("label_smoothing", False), "AT argmax": ("argmax", False),
                "AT-corr KD": ("kd", True), "AT-corr shuffled": ("shuffle", True), "AT-corr mean": ("mean", True),
                "AT-corr ST order": ("reorder", True), "AT-corr flattened": ("flatten", True),
                "AT-corr label smoothing": ("label_smoothing", True)}
    for name, (kind, corrected) in expected.items():
        c = s[name].config
        assert (c.method, c.teacher, c.targets, c.corrected, c.T) == ("distilled", at, kind, corrected, 1.0), name
        assert c.reference == (st if kind == "reorder" else None), name
    assert {x.name: (x.config.targets, x.config.T) for x in lineup if x.role == "sweep"} == {
        "KD-AT (T=4)": ("kd", 4.0), "AT shuffled (T=4)": ("shuffle", 4.0)}
    assert {x.role for x in lineup if x.name.startswith("AT-corr") or x.name == "AT argmax"} == {"control"}


def test_the_temperature_comes_from_the_profile_and_the_sweep_adds_the_others():
    p = profiles.resolve("smoke", device="cpu", temperature=2.0)
    s = by_name(students.lineup(p))
    assert s["KD-AT"].config.T == 2.0 and s["AT flattened"].config.T == 2.0
    assert {n for n, x in s.items() if x.role == "sweep"} == {"KD-AT (T=1)", "AT shuffled (T=1)", "KD-AT (T=4)",
                                                                "AT shuffled (T=4)"}
    assert s["hard labels"].config == students.lineup(profiles.resolve("smoke", device="cpu"))[2].config


def test_bad_line_up_input_is_refused_before_training():
    p = profiles.resolve("smoke", device="cpu")
    with pytest.raises(ValueError, match=r"targets must be one of \('kd', 'shuffle'"):
        students.student_config(p, teacher=p.adversarial(), targets="smooth")
    with pytest.raises(ValueError, match="T must be a finite temperature > 0"):
        students.student_config(p, teacher=p.adversarial(), T=0.0)
    with pytest.raises(ValueError, match="required by, and only by, targets='reorder'"):
        students.student_config(p, teacher=p.adversarial(), targets="reorder")
    with pytest.raises(ValueError, match="student names must be unique"):
        students.lineup(p, sweep=(4.0, 4.0))
    with pytest.raises(ValueError, match="n_autoattack must be >= 1 for the distillation line-up"):
        students.lineup(profiles.resolve("smoke", device="cpu", n_autoattack=0))
    with pytest.raises(ValueError, match="kind must be one of"):
        students.label("bogus")


def test_lineup_table_shows_teacher_targets_and_correction():
    p = profiles.resolve("smoke", device="cpu")
    table = students.lineup_table(students.lineup(p))
    assert table.loc["AT-corr mean", ["teacher", "targets", "corrected", "T"]].tolist() == ["AT", "mean", "yes", "1"]
    assert table.loc["hard labels", ["method", "teacher"]].tolist() == ["standard", ""]
    assert table.loc["KD-ST", "teacher"] == "ST"


@pytest.mark.slow
def test_hard_label_student_equals_distilling_the_corrected_argmax_at_T1(store):
    """The chapter's reason for a "standard" hard-label config: at T = 1 it is the same loss as corrected argmax."""
    teacher = dataclasses.replace(TINY, n_train=128)
    hard = dataclasses.replace(teacher, seed=3)
    via_kd = dataclasses.replace(hard, method="distilled", teacher=teacher, targets="argmax", corrected=True, T=1.0)
    a, history_a = experiments.train_from_config(hard, device="cpu", progress=False, store=store)
    b, history_b = experiments.train_from_config(via_kd, device="cpu", progress=False, store=store)
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(wa, wb, atol=1e-5, rtol=1e-4, msg=name)
    assert history_a["batch_loss"] == pytest.approx(history_b["batch_loss"], rel=1e-5)
    at_T4 = dataclasses.replace(via_kd, T=4.0)
    c, _ = experiments.train_from_config(at_T4, device="cpu", progress=False, store=store)
    last_a, last_c = (list(m.state_dict().values())[-1] for m in (a, c))  # the output layer's bias
    assert not torch.allclose(last_a, last_c, atol=1e-3), "at T = 4 the T^2 factor changes the training"


# ---------------------------------------------------------------------------------------------------------
# The claims' criteria on hand-made numbers
# ---------------------------------------------------------------------------------------------------------


def robust(**values):
    names = {"hard": "hard labels", "kd_st": "KD-ST", "kd_at": "KD-AT", "shuffled": "AT shuffled",
             "mean": "AT mean", "order": "AT ST order", "flat": "AT flattened", "smooth": "AT label smoothing"}
    base = {"hard": 0.10, "kd_st": 0.12, "kd_at": 0.42, "shuffled": 0.15, "mean": 0.20, "order": 0.27,
            "flat": 0.12, "smooth": 0.10}
    return {names[k]: v for k, v in {**base, **values}.items()}


def test_c6_gain_is_over_the_stronger_reference_and_holds_at_exactly_ten_points():
    assert students.c6_gain(robust()) == pytest.approx(0.30)
    v = students.verdicts(robust(hard=0.20, kd_st=0.15, kd_at=0.30))  # 0.30 - 0.20 < 0.1 in floats
    assert 0.30 - 0.20 < 0.10
    assert v["C6"]["holds"] and v["C6"]["gain"] == pytest.approx(0.10)
    v = students.verdicts(robust(hard=0.35, kd_st=0.20, kd_at=0.45))
    assert v["C6"]["holds"] and v["C6"]["gain"] == pytest.approx(0.10)
    assert v["C6"]["over_kd_st"] == pytest.approx(0.25)
    assert not students.verdicts(robust(hard=0.355, kd_st=0.20, kd_at=0.45))["C6"]["holds"]
    assert not students.verdicts(robust(hard=0.10, kd_st=0.33, kd_at=0.42))["C6"]["holds"]  # beats hard by 32 only


def test_c7_needs_every_manipulation_to_remove_half_the_gain():
    # gain = 0.42 - 0.12 = 0.30, threshold 0.27: "AT ST order" sits exactly on it and counts as meeting it.
    v = students.verdicts(robust())
    assert v["C7"]["threshold"] == pytest.approx(0.27)
    assert v["C7"]["holds"] and v["C7"]["criterion_met"] and v["C7"]["failing"] == []
    assert v["C8"]["holds"]
    assert v["C7"]["students"]["AT shuffled"]["share_removed"] == pytest.approx(0.9)
    v = students.verdicts(robust(mean=0.28))
    assert not v["C7"]["holds"] and v["C7"]["failing"] == ["AT mean"] and v["C8"]["holds"]
    v = students.verdicts(robust(smooth=0.40))
    assert v["C7"]["holds"] and not v["C8"]["holds"] and v["C8"]["failing"] == ["AT label smoothing"]


def test_without_c6_the_manipulation_claims_are_not_reproduced():
    # gain 0.05: the inequality holds for every student, but C6 fails, so C7 and C8 are not evaluable.
    v = students.verdicts(robust(kd_at=0.17, shuffled=0.0, mean=0.0, order=0.0, flat=0.0, smooth=0.0))
    assert not v["C6"]["holds"]
    for claim in ("C7", "C8"):
        assert v[claim]["criterion_met"] and not v[claim]["evaluable"] and not v[claim]["holds"]
    v = students.verdicts(robust(kd_at=0.05))  # no gain at all: nothing to remove, nothing to test
    assert v["C7"]["criterion_met"] is None and v["C7"]["students"]["AT mean"]["meets"] is None
    assert math.isnan(v["C7"]["students"]["AT mean"]["share_removed"])


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


def test_claim_records_carry_the_numbers_and_the_verdicts():
    records = students.claim_records(results_from(lineup_robust(mean=0.28)))
    assert [(r["id"], r["holds"]) for r in records] == [("C6", True), ("C7", False), ("C8", True)]
    c6, c7 = records[0]["measured"], records[1]["measured"]
    assert (c6["robust_kd_at_pct"], c6["gain_points"], c6["pgd_ce_kd_at_pct"]) == (42.0, 30.0, 44.0)
    assert c7["threshold_pct"] == 27.0 and c7["robust_at_mean_pct"] == 28.0 and c7["evaluable"] is True
    assert c7["share_removed_at_st_order"] == 0.5 and "note" not in c7
    json.dumps(records)
    failing = students.claim_records(results_from(lineup_robust(kd_at=0.15)))
    assert [r["holds"] for r in failing] == [False, False, False]
    assert "no gain to remove" in failing[2]["measured"]["note"]
    with pytest.raises(ValueError, match=r"no AutoAttack accuracy for \['KD-AT'\]"):
        students.claim_records({**results_from(lineup_robust()), "KD-AT": {"clean_acc": 0.9, "pgd_acc": 0.4}})
    with pytest.raises(ValueError, match=r"robust accuracies are missing for \['KD-ST'\]"):
        students.verdicts({"hard labels": 0.1, "KD-AT": 0.3})


def test_removal_table_measures_the_controls_against_the_corrected_teacher():
    table = students.removal_table(results_from(lineup_robust()))
    # corrected gain: 0.32 - 0.12 = 0.20, threshold 0.22; "AT-corr mean" removes all of it (share 1.1).
    assert table.loc["AT-corr mean", "threshold (%)"] == pytest.approx(22.0)
    assert table.loc["AT-corr mean", "share of gain removed"] == pytest.approx(1.1)
    assert table.loc["AT-corr ST order", "removes half"] == "yes"
    assert table.loc["AT-corr flattened", "removes half"] == "no"
    assert table.loc["AT mean", "teacher"] == "KD-AT" and table.loc["AT-corr mean", "teacher"] == "AT-corr KD"
    assert len(table) == 10


def test_tables_notes_and_figure_on_hand_made_results():
    results = results_from({"hard labels": 0.10, "KD-ST": 0.12, "KD-AT": 0.42},
                           **{"KD-AT": {"pgd_acc_on_autoattack_subset": 0.60, "pgd_cw_acc_on_autoattack_subset": 0.44}})
    table = students.accuracy_table(results, pgd_steps=20)
    assert table.loc["KD-AT", "PGD-20 CE (AA images)"] == 60.0 and table.loc["KD-AT", "AutoAttack"] == 42.0
    assert list(table.columns)[:3] == ["clean", "PGD-20 CE", "PGD-20 CW"]
    low, high = (float(v) for v in table.loc["KD-AT", "AutoAttack 95% CI"].strip("[]").split(", "))
    assert low < 42.0 < high and 15 < high - low < 23  # 42 of 100 images: +- 1.96 * 4.9 points
    ce, cw = students.gap_notes(results).split("PGD with CW loss:")
    assert "KD-AT (18.0 points)" in ce and cw.strip().startswith("No model")
    fig = students.accuracy_figure(results, pgd_steps=20, roles={"KD-AT": "claim"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["hard labels", "KD-ST", "KD-AT [claim]"]
    assert sorted(round(line.get_xdata()[0], 6) for line in ax.lines) == [12.0, 27.0, 42.0]
    assert len(ax.patches) == 3 * 4


# ---------------------------------------------------------------------------------------------------------
# The CW evaluation on a tiny model
# ---------------------------------------------------------------------------------------------------------


def test_pgd_cw_is_stored_once_and_matches_an_independent_attack(tiny_store):
    store = tiny_store
    p = profiles.resolve("smoke", device="cpu", n_eval=48, n_autoattack=16, eval_steps=5)
    result = students.pgd_cw(p, TINY, store=store, progress=False)
    assert len(result["pgd_cw_correct"]) == 48
    assert result["pgd_cw_acc"] == pytest.approx(sum(result["pgd_cw_correct"]) / 48)
    assert result["pgd_cw_acc_on_autoattack_subset"] == pytest.approx(sum(result["pgd_cw_correct"][:16]) / 16)
    model, _ = store.get_or_train(TINY)
    x, y = experiments.eval_split(p)
    x_adv = pgd(model, x, y, eps=p.eps, alpha=p.eval_alpha, steps=5, loss="cw",
                generator=torch.Generator().manual_seed(p.seed))
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == y).tolist() == result["pgd_cw_correct"]
    assert students.pgd_cw(p, TINY, store=store) == result
    assert len(list((store.entry(TINY) / "results").glob("pgd-cw-*.json"))) == 1
    other = students.pgd_cw(dataclasses.replace(p, eval_steps=1), TINY, store=store)
    assert len(list((store.entry(TINY) / "results").glob("pgd-cw-*.json"))) == 2
    assert sum(other["pgd_cw_correct"]) >= sum(result["pgd_cw_correct"]) - 2  # weaker attack: not much stronger


@pytest.mark.slow
def test_pgd_cw_attacks_with_the_margin_loss_where_cross_entropy_saturates(tiny_store):
    """A stored model with huge logits (the sharp targets of some students do that): CE-PGD barely moves, and
    the stored CW evaluation must find what the CW attack finds, not what CE finds."""
    good = dataclasses.replace(TINY, n_train=2048)  # accurate enough to have something to attack
    sharp_config = dataclasses.replace(good, seed=7)  # a store key of its own for the hand-made model
    sharp, history = tiny_store.get_or_train(good, progress=False)
    last = [m for m in sharp.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
    tiny_store.save_model(sharp_config, sharp, history)
    p = profiles.resolve("smoke", device="cpu", n_eval=48, n_autoattack=16, eval_steps=5)
    x, y = experiments.eval_split(p)
    kw = dict(eps=p.eps, alpha=p.eval_alpha, steps=5, seed=p.seed)
    ce = experiments.pgd_correct(sharp, x, y, loss="ce", **kw).tolist()
    cw = experiments.pgd_correct(sharp, x, y, loss="cw", **kw).tolist()
    assert sum(cw) <= sum(ce) - 8, "precondition: the two losses disagree on this model"
    assert students.pgd_cw(p, sharp_config, store=tiny_store)["pgd_cw_correct"] == cw


def test_cw_loss_finds_what_saturated_cross_entropy_misses():
    """Why the chapter reports PGD-CW. A two-class linear model with huge logits: CE gradients underflow to 0,
    so CE-PGD only gets its random start, while CW-PGD reaches the closed-form worst case, i.e. the image is
    robust exactly when margin > eps * ||w_y - w_j||_1."""
    g = torch.Generator().manual_seed(0)
    n, eps = 200, 0.04
    linear = torch.nn.Linear(16, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(2, 16, generator=g))
        linear.bias.copy_(-0.5 * linear.weight.sum(1))  # margins centred on 0 for x around 0.5
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g)  # x +- eps stays inside [0, 1]: the box never binds
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)  # every image is classified correctly
    margin = (logits[:, 0] - logits[:, 1]).abs()
    robust = margin > eps * (linear.weight[0] - linear.weight[1]).abs().sum().item()
    with torch.no_grad():
        linear.weight.mul_(1e4)
        linear.bias.mul_(1e4)
    kw = dict(eps=eps, alpha=eps / 4, steps=10, seed=0)  # 10 steps of eps/4 cross the ball from any start
    ce = experiments.pgd_correct(model, x, y, loss="ce", **kw)
    cw = experiments.pgd_correct(model, x, y, loss="cw", **kw)
    assert 0.2 * n <= robust.sum() <= 0.6 * n
    assert torch.equal(cw, robust), "CW-PGD reaches the exact worst case of a linear two-class model"
    assert ce.sum() >= 0.75 * n, "CE-PGD is stuck at its random start"


@pytest.mark.slow
def test_evaluate_merges_the_ce_autoattack_and_cw_results(tiny_store):
    store = tiny_store
    p = profiles.resolve("smoke", device="cpu", n_eval=32, n_autoattack=8, eval_steps=2)
    result = students.evaluate(p, TINY, store=store, progress=False)
    assert {"clean_acc", "pgd_acc", "autoattack_acc", "pgd_cw_acc", "pgd_cw_acc_on_autoattack_subset"} <= set(result)
    assert result["pgd_cw_correct"] == students.pgd_cw(p, TINY, store=store)["pgd_cw_correct"]


# ---------------------------------------------------------------------------------------------------------
# The chapters
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["04_distillation", "05_scorecard"])
def test_chapters_are_committed_without_outputs_with_a_typed_parameters_cell(stem):
    nb = nbformat.read(ROOT / "chapters" / f"{stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    names = [line.split(":")[0] for line in params[0].source.splitlines()]
    assert names == ["profile", "device", "seed", "eps", "overrides"]
    assert all(line.count("=") == 1 for line in params[0].source.splitlines())
    assert max(len(c.source.splitlines()) for c in code) <= 30
    if stem == "04_distillation":
        assert 'claims.write_claims(p.name, "04_distillation"' in code[-1].source


@pytest.mark.slow
def test_scorecard_writes_the_json_and_names_chapters_without_claims(tmp_path):
    executed = tmp_path / "executed"
    env = {**os.environ, "ADVLOGITS_EXECUTED_DIR": str(executed), "ADVLOGITS_HOME": str(tmp_path / "store")}
    record = claims.claim("C6", claim="c", criterion="k", measured={"gain_points": 12.5}, holds=True)
    (executed / "claims").mkdir(parents=True)
    (executed / "claims" / "04_distillation.json").write_text(json.dumps([{**record, "chapter": "04_distillation"}]))
    out = tmp_path / "05.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "chapters/05_scorecard.ipynb"), str(out),
                           "-p", "profile", "smoke", "-k", "python3", "--cwd", str(ROOT / "chapters")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((executed / "scorecard.json").read_text())
    assert [(r["id"], r["holds"]) for r in card] == [("C6", True)]
    glued, markdown = {}, []
    for cell in nbformat.read(out, as_version=4).cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued[name] = output["data"]["application/papermill.record/text/plain"]
            elif "text/markdown" in output.get("data", {}):
                markdown += output["data"]["text/markdown"].splitlines()
    rows = {line.split("|")[1].strip(): line for line in markdown if line.startswith("| C")}
    assert list(rows) == list(claims.CLAIM_IDS)
    assert rows["C6"] == "| C6 | ✓ reproduced | c (04_distillation) | k | gain points = 12.5 |"
    assert rows["C1"].startswith("| C1 | – not measured | AT models have lower max logits")
    assert rows["C1"].endswith("(02_logit_distributions) | (no record) |  |")
    assert (glued["n_reproduced"], glued["n_measured"], glued["n_claims"]) == ("1", "1", "8")
    assert "02_logit_distributions, 03_sample_confidence" in glued["missing_note"]
