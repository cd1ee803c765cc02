"""advlogits.pipeline.lineup: the book's models by name (teachers, seed baselines, the eps sweep, the linear
models and the distillation line-up), their configs, and bad line-up input refused before any training."""

from __future__ import annotations

import pytest

from advlogits import profiles
from advlogits.pipeline import lineup, model_key

C7 = ("AT shuffled", "AT spread", "AT ST order")
C8 = ("AT flattened", "AT label smoothing")


def of_seed(students, seed):
    return {s.name: s for s in students if s.seed == seed or s.role == "teacher"}


def test_lineup_holds_every_student_for_each_seed_with_distinct_keys():
    p = profiles.resolve("cpu", device="cpu")
    students = lineup.students(p)
    per_seed = 17
    assert len(students) == 2 + per_seed * len(p.student_seeds) + 2 == 55
    assert len({model_key(x.config) for x in students}) == len(students)
    assert p.student_seeds == (100, 101, 102) and not set(p.student_seeds) & {*p.seeds, p.seed}
    for seed in p.student_seeds:
        s = of_seed(students, seed)
        assert [x.name for x in students if x.claim == "C6" and x.seed == seed] == [
            "hard labels",
            "KD-ST",
            "KD-ST soft",
            "KD-AT",
        ]
        assert [x.name for x in students if x.claim == "C7" and x.seed == seed] == list(C7)
        assert [x.name for x in students if x.claim == "C8" and x.seed == seed] == list(C8)
        st, at = p.standard(), p.adversarial()
        assert s["ST teacher"].config == st and s["AT teacher"].config == at and s["ST teacher"].seed == p.seed
        for x in s.values():
            if x.role == "teacher":
                continue
            c = x.config
            assert (c.arch, c.n_train, c.epochs, c.seed) == (p.arch, p.student_n_train, p.student_epochs, seed)
            assert c.seed not in p.seeds, "a student never starts from a teacher's initialisation"
        assert s["hard labels"].config.method == "standard"
        assert s["KD-ST"].config.teacher == st and s["KD-ST"].config.targets == "kd"
        soft = s["KD-ST soft"].config
        assert (soft.teacher, soft.targets, soft.reference) == (st, "soften", at)
        expected = {
            "KD-AT": ("kd", False),
            "AT shuffled": ("shuffle", False),
            "AT spread": ("spread", False),
            "AT mean": ("mean", False),
            "AT ST order": ("reorder", False),
            "AT flattened": ("flatten", False),
            "AT label smoothing": ("label_smoothing", False),
            "AT argmax": ("argmax", False),
            "AT-corr KD": ("kd", True),
            "AT-corr shuffled": ("shuffle", True),
            "AT-corr spread": ("spread", True),
            "AT-corr ST order": ("reorder", True),
            "AT-corr flattened": ("flatten", True),
            "AT-corr label smoothing": ("label_smoothing", True),
        }
        for name, (kind, corrected) in expected.items():
            c = s[name].config
            assert (c.method, c.teacher, c.targets, c.label_corrected, c.T) == (
                "distilled",
                at,
                kind,
                corrected,
                1.0,
            ), name
            assert c.reference == (st if kind == "reorder" else None), name
        assert s["AT mean"].role == "mixed" and s["AT mean"].claim is None
    # paired: seed s of every student draws the same images and initialisation
    first = of_seed(students, 100)
    assert {x.config.seed for x in first.values() if x.role != "teacher"} == {100}
    assert {(x.name, x.config.targets, x.config.T) for x in students if x.role == "sweep"} == {
        ("KD-AT (T=4)", "kd", 4.0),
        ("AT shuffled (T=4)", "shuffle", 4.0),
    }
    assert {x.seed for x in students if x.role == "sweep"} == {100}, "the sweep runs on the first seed only"
    assert {x.role for x in students if x.name.startswith("AT-corr") or x.name == "AT argmax"} == {"control"}


def test_the_temperature_comes_from_the_profile_and_the_sweep_adds_the_others():
    p = profiles.resolve("smoke", device="cpu", temperature=2.0)
    s = of_seed(lineup.students(p), 100)
    assert s["KD-AT"].config.T == 2.0 and s["AT flattened"].config.T == 2.0
    assert {n for n, x in s.items() if x.role == "sweep"} == {
        "KD-AT (T=1)",
        "AT shuffled (T=1)",
        "KD-AT (T=4)",
        "AT shuffled (T=4)",
    }
    plain = of_seed(lineup.students(profiles.resolve("smoke", device="cpu")), 100)
    assert s["hard labels"].config == plain["hard labels"].config, "hard labels do not depend on T"
    assert of_seed(lineup.students(p, T=4.0, sweep=()), 100)["KD-AT"].config.T == 4.0
    assert not [x for x in lineup.students(p, sweep=()) if x.role == "sweep"]
    assert [x.name for x in lineup.students_of_seed(p, 7)][:4] == ["hard labels", "KD-ST", "KD-ST soft", "KD-AT"]


def test_bad_line_up_input_is_refused_before_training():
    p = profiles.resolve("smoke", device="cpu")
    with pytest.raises(
        ValueError,
        match=r"^sweep must be temperatures that give unique student names "
        r"\(got \(4\.0, 4\.0\)\); is a sweep temperature repeated\?",
    ):
        lineup.students(p, sweep=(4.0, 4.0))
    with pytest.raises(ValueError, match=r"^n_autoattack must be >= 1 for the distillation line-up .*\(got 0\)"):
        lineup.students(profiles.resolve("smoke", device="cpu", n_autoattack=0))
    with pytest.raises(
        ValueError, match=r"^kind must be one of kd, shuffle, spread, .*argmax, permute_confidence \(got 'bogus'\)"
    ):
        lineup.student_label("bogus")


def test_student_labels():
    assert lineup.student_label("kd") == lineup.KD_AT == "KD-AT"
    assert lineup.student_label("reorder") == "AT ST order"
    assert lineup.student_label("kd", label_corrected=True) == f"{lineup.LABEL_CORRECTED} KD" == "AT-corr KD"
    assert lineup.student_label("label_smoothing", label_corrected=True) == "AT-corr label smoothing"
    assert lineup.student_label("argmax") == lineup.ARGMAX == "AT argmax"
    assert lineup.SWEEP_KIND in lineup.C7_KINDS
    assert lineup.student_label("spread") == "AT spread" and lineup.student_label("mean") == "AT mean"
    assert lineup.TWO_BY_TWO == {
        "kd": (True, True),
        "spread": (True, False),
        "flatten": (False, True),
        "label_smoothing": (False, False),
    }


def test_teachers_seed_baselines_sweep_and_linear_models():
    p = profiles.resolve("cpu", device="cpu", seeds=(0, 3))
    assert lineup.teachers(p) == {"ST": p.standard(), "AT": p.adversarial()}
    assert lineup.other_seed(p) == 3
    baselines = lineup.seed_baselines(p)
    assert list(baselines) == ["ST", "AT", "ST'", "AT'"]
    assert baselines["ST'"] == p.standard(seed=3) and baselines["AT'"] == p.adversarial(seed=3)
    sweep = lineup.eps_sweep(p)
    assert list(sweep) == [0.0, *p.eps_sweep]
    assert sweep[0.0] == p.sweep(0.0) and sweep[0.0].method == "standard"
    assert sweep[0.0].n_train == p.sweep_n_train and sweep[0.0].epochs == p.sweep_epochs
    assert all(sweep[e] == p.sweep(e) for e in p.eps_sweep)
    radii = lineup.linear_radii(profiles.resolve("cpu", device="cpu", eps=0.12))
    assert radii == sorted({0.0, *p.eps_sweep, 0.12}), "the profile's eps is added to the sweep's radii"
    linear = lineup.linear_models(p)
    assert list(linear) == lineup.linear_radii(p) == [0.0, *p.eps_sweep]  # the profile's eps is in its sweep
    assert all(c == p.linear(e) and c.arch == "linear" for e, c in linear.items())
    with pytest.raises(
        ValueError,
        match=r"^seeds must be at least one seed other than seed=0 .*\(got \(0,\)\); "
        r"pass e\.g\. overrides=",
    ):
        lineup.seed_baselines(profiles.resolve("cpu", device="cpu", seeds=(0,)))


def test_the_decisive_line_up_nests_students_within_two_teachers():
    p = profiles.resolve("decisive", device="cpu")
    assert lineup.teacher_seeds(p) == [0, 1]
    groups = lineup.student_seeds_of(p)
    assert groups == {0: tuple(range(300, 308)), 1: tuple(range(310, 318))}, "fresh seeds, never 100-102"
    students = lineup.students(p)
    teachers = [s for s in students if s.role == "teacher"]
    assert [(s.name, s.seed) for s in teachers] == [
        ("ST teacher", 0),
        ("AT teacher", 0),
        ("ST teacher (seed 1)", 1),
        ("AT teacher (seed 1)", 1),
    ]
    kinds = {s.name for s in students if s.seed == 310}
    assert len(kinds) == 23 and not [s for s in students if s.role == "sweep"], "no temperature sweep"
    assert {"AT confidence permuted", "AT confidence 0.5", "AT confidence 0.95", "AT-corr confidence permuted"} <= kinds
    for s in students:
        if s.role == "teacher":
            continue
        assert s.teacher_seed == (0 if s.seed < 310 else 1)
        if s.config.method == "distilled":
            assert s.config.teacher.seed == s.teacher_seed, "a student learns from its own group's teacher"
            if s.config.reference is not None:
                assert s.config.reference.seed == s.teacher_seed
    level = next(s for s in students if s.name == "AT confidence 0.95" and s.seed == 300)
    assert (level.config.targets, level.config.confidence) == ("flatten", 0.95)
    smoothing = next(s for s in students if s.name == "AT-corr label smoothing" and s.seed == 300)
    assert smoothing.role == "baseline", "label smoothing of the true labels is a baseline, not a manipulation"
    assert next(s for s in students if s.name == "AT confidence permuted").claim == "C8"


def test_the_cpu_line_up_is_the_one_teacher_design():
    p = profiles.resolve("cpu", device="cpu")
    students = lineup.students(p)
    assert lineup.teacher_seeds(p) == [0] and {s.teacher_seed for s in students} == {0}
    assert not [s for s in students if "confidence" in s.name]
    assert next(s for s in students if s.name == "AT-corr label smoothing").role == "control"


def test_the_masking_checks_run_on_the_first_seed_of_each_teacher_group():
    cpu = profiles.resolve("cpu", device="cpu")
    checked = lineup.masking_checked(cpu, lineup.students(cpu))
    assert {s.seed for s in checked} == {cpu.student_seeds[0]}
    assert [s.name for s in checked] == [
        "KD-AT",
        "AT shuffled",
        "AT spread",
        "AT ST order",
        "AT flattened",
        "AT label smoothing",
        "AT mean",
    ]
    decisive = profiles.resolve("decisive", device="cpu")
    students = lineup.students(decisive)
    checked = lineup.masking_checked(decisive, students)
    assert {(s.seed, s.teacher_seed) for s in checked} == {(300, 0), (310, 1)}
    every_kind = {s.name for s in students if s.role not in ("teacher", "sweep")}
    assert {s.name for s in checked if s.seed == 310} == every_kind, "every student kind, the controls included"
