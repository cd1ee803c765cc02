"""advlogits.profiles: defaults, overrides, the configs a profile builds, and a clear error for every bad value
before any compute (the tables `BAD` and `RESOLVE_CASES`; the latter is part of the bad-input matrix counted in
tests/test_pipeline_stored.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from advlogits import profiles
from advlogits.data import dataset_info
from advlogits.profiles import ProfileError, resolve


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_every_profile_resolves_on_this_machine(name):
    p = resolve(name, device="cpu")
    assert p.name == name and p.device == "cpu"
    assert p.standard().method == "standard" and p.adversarial().method == "adversarial"


def test_cpu_is_the_default_and_auto_device_resolves():
    p = resolve()
    assert p.name == "cpu" and p.dataset == "fashion-mnist" and p.eps == 0.1
    assert p.device == ("cuda" if torch.cuda.is_available() else p.device)
    assert p.device in {"cpu", "cuda", "mps"}
    assert p.eval_steps >= 20, "the book's protocol (docs/protocol.md): evaluation PGD uses at least 20 steps"


def test_paper_profile_matches_the_literature_setting():
    p = resolve("paper", device="cpu")
    assert (p.dataset, p.arch) == ("cifar10", "preact-resnet18")
    assert p.eps == pytest.approx(8 / 255) and p.eval_alpha == pytest.approx(2 / 255)


def test_eps_override_scales_step_sizes_and_strings_are_coerced():
    base = resolve("cpu", device="cpu")
    p = resolve("cpu", device="cpu", eps="0.2")
    assert p.eps == 0.2
    assert p.alpha == pytest.approx(base.alpha * 2) and p.eval_alpha == pytest.approx(base.eval_alpha * 2)
    assert resolve("cpu", device="cpu", eps=0.2, alpha=0.01).alpha == 0.01
    assert resolve("cpu", device="cpu", epochs="3").epochs == 3
    assert resolve("cpu", device="cpu", eps_sweep="0.05, 0.1").eps_sweep == (0.05, 0.1)
    assert resolve("cpu", device="cpu", compile="false").compile is False
    assert resolve("cpu", device="cpu", n_train=None).n_train is None


def test_none_overrides_keep_the_profile_value():
    assert resolve("smoke", device="cpu", eps=None, seed=None).eps == resolve("smoke", device="cpu").eps


def test_adversarial_config_of_another_eps_scales_alpha():
    p = resolve("cpu", device="cpu")
    c = p.adversarial(eps=0.2)
    assert c.eps == 0.2 and c.alpha == pytest.approx(2 * p.alpha) and c.steps == p.steps
    assert p.adversarial(seed=3).seed == 3 and p.standard(seed=3).seed == 3


BAD = [
    (dict(name="gpu-fast"), r"^profile must be one of 'smoke', 'cpu', 'decisive', 'paper' \(got 'gpu-fast'\)"),
    (dict(eps=-1), r"^eps must be a finite number > 0 and < 1 \(got -1\.0\); the L-inf radius of adversarial training"),
    (dict(eps=0), r"^eps must be a finite number > 0 and < 1 \(got 0\.0\)"),
    (dict(eps=1.5), r"^eps must be a finite number > 0 and < 1 \(got 1\.5\)"),
    (dict(eps="abc"), r"^eps must be a number \(got 'abc'\)"),
    (dict(alpha=0.5), r"^alpha must be a finite number > 0 and <= 0\.1 \(got 0\.5\)"),
    (dict(eval_alpha=0), r"^eval_alpha must be a finite number > 0 and <= 0\.1 \(got 0\.0\)"),
    (dict(steps=0), r"^steps must be an integer >= 1 \(got 0\)"),
    (dict(eval_steps=0), r"^eval_steps must be an integer >= 1 \(got 0\)"),
    (dict(epochs=0), r"^epochs must be an integer >= 1 \(got 0\)"),
    (dict(epochs=2.5), r"^epochs must be an integer \(got 2\.5\)"),
    (dict(batch_size=-4), r"^batch_size must be an integer >= 1 \(got -4\)"),
    (dict(seed=-1), r"^seed must be an integer >= 0 and <= 4294967295 \(got -1\)"),
    (
        dict(arch="vit"),
        r"^arch must be one of 'cnn-small', 'cnn', 'preact-resnet18', 'wrn-34-10', 'linear' "
        r"\(got 'vit'\)",
    ),
    (
        dict(arch="preact-resnet18"),
        r"^arch must be one of 'cnn-small', 'cnn', 'linear' \(got 'preact-resnet18'\); "
        r"those are the architectures that fit fashion-mnist",
    ),
    (dict(dataset="mnist"), r"^dataset must be one of 'fashion-mnist', 'cifar10' \(got 'mnist'\)"),
    (
        dict(n_train=70_000),
        r"^n_train must be an integer >= 1 and <= 60000 \(got 70000\); None uses the whole "
        r"training split",
    ),
    (dict(n_eval=0), r"^n_eval must be an integer >= 1 and <= 10000 \(got 0\)"),
    (dict(n_autoattack=5000), r"^n_autoattack must be an integer >= 0 and <= 1000 \(got 5000\); n_eval is 1000"),
    (dict(lr=0), r"^lr must be a finite number > 0 \(got 0\.0\)"),
    (dict(temperature=-1), r"^temperature must be a finite number > 0 \(got -1\.0\)"),
    (dict(autoattack_version="plus"), r"^autoattack_version must be one of 'fast', 'standard' \(got 'plus'\)"),
    (
        dict(eps_sweep=(0.1, 2.0)),
        r"^eps_sweep must be a finite number > 0 and < 1 \(got 2\.0\); every radius of the "
        r"sweep is in \(0, 1\)",
    ),
    (dict(eps_sweep=()), r"^eps_sweep must be one or more radii in \(0, 1\) \(got \(\)\)"),
    (dict(seeds=(-1,)), r"^seeds must be an integer >= 0 and <= 4294967295 \(got -1\)"),
    (dict(seeds=()), r"^seeds must be one or more seeds \(got \(\)\)"),
    (dict(precision="fp16"), r"^precision must be one of 'fp32', 'bf16' \(got 'fp16'\)"),
    (dict(device="tpu"), r"^device must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' \(got 'tpu'\)"),
    (
        dict(epoch=3),
        r"^overrides must be profile parameters, one of adv_epochs, alpha, .*, epochs, eps, .* "
        r"\(got 'epoch'\)",
    ),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[m[1:31] for _, m in BAD])
def test_bad_values_raise_a_clear_error(kwargs, message):
    kwargs = dict(kwargs)
    name = kwargs.pop("name", "cpu")
    kwargs.setdefault("device", "cpu")
    with pytest.raises(ProfileError, match=message):
        resolve(name, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_refused(device):
    with pytest.raises(
        ProfileError,
        match=f"^device must be 'cpu' or 'auto' on this machine \\(got '{device}'\\); CUDA is not available here",
    ):
        resolve("cpu", device=device)


def test_profile_errors_are_value_errors():
    assert issubclass(ProfileError, ValueError)
    assert set(profiles.PROFILES) == {"smoke", "cpu", "decisive", "paper"}


def test_sweep_models_use_the_reduced_budget():
    p = resolve("cpu", device="cpu")
    c = p.sweep(0.2)
    assert (c.eps, c.n_train, c.epochs, c.method) == (0.2, p.sweep_n_train, p.sweep_epochs, "adversarial")
    assert c.alpha == pytest.approx(p.alpha * 2)
    with pytest.raises(
        ProfileError,
        match=r"^student_n_train must be an integer >= 1 and <= 60000 \(got 0\); None "
        r"uses the whole training split",
    ):
        resolve("cpu", device="cpu", student_n_train=0)


def test_the_sweep_at_eps_zero_is_the_standard_model_of_the_sweep_budget():
    p = resolve("cpu", device="cpu")
    c = p.sweep(0.0)
    assert c == dataclasses.replace(p.standard(), n_train=p.sweep_n_train, epochs=p.sweep_epochs)
    assert (c.method, c.eps, c.alpha, c.steps) == ("standard", 0.0, 0.0, 0)
    assert c != p.standard(), "the cpu profile's sweep budget is smaller than the teachers'"
    assert all(p.sweep(e).method == "adversarial" and p.sweep(e).eps == e for e in p.eps_sweep)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2])
def test_linear_models_are_sweep_configs_with_the_linear_arch_in_float32(eps):
    p = resolve("paper", device="cpu")  # a bf16, CIFAR-10 profile: the linear models still run in fp32
    p = dataclasses.replace(p, compile=True)
    c = p.linear(eps)
    assert (c.arch, c.precision, c.compile) == ("linear", "fp32", False)
    assert dataclasses.replace(c, arch=p.arch, precision=p.precision, compile=True) == p.sweep(eps)
    assert c.method == ("standard" if eps == 0 else "adversarial")
    assert c.alpha == pytest.approx(p.alpha * eps / p.eps) and c.steps == (0 if eps == 0 else p.steps)
    assert (c.n_train, c.epochs, c.dataset) == (p.sweep_n_train, p.sweep_epochs, "cifar10")


def test_student_configs():
    p = resolve("smoke", device="cpu", temperature=2.0, student_n_train=256, student_epochs=3)
    st, at = p.standard(), p.adversarial()
    hard = p.student(teacher=None)
    assert hard == dataclasses.replace(st, n_train=256, epochs=3), "hard labels: standard training, student budget"
    kd = p.student(teacher=at)
    assert (kd.method, kd.teacher, kd.targets, kd.T, kd.label_corrected, kd.reference) == (
        "distilled",
        at,
        "kd",
        2.0,
        False,
        None,
    ), "T defaults to the profile's temperature"
    assert (kd.arch, kd.n_train, kd.epochs, kd.seed) == (p.arch, 256, 3, p.seed)
    order = p.student(teacher=at, targets="reorder", reference=st, T=4, label_corrected=True, seed=5)
    assert (order.targets, order.reference, order.T, order.label_corrected, order.seed) == ("reorder", st, 4.0, True, 5)
    assert isinstance(order.T, float)
    assert p.student(teacher=None, T=4.0) == hard, "the hard-label student does not depend on T"


def test_bad_student_input_is_refused_before_training():
    p = resolve("smoke", device="cpu")
    with pytest.raises(ValueError, match=r"^targets must be one of 'kd', 'shuffle', .* \(got 'smooth'\)"):
        p.student(teacher=p.adversarial(), targets="smooth")
    with pytest.raises(ValueError, match=r"^T must be a finite number > 0 \(got 0\.0\)"):
        p.student(teacher=p.adversarial(), T=0.0)
    with pytest.raises(
        ValueError,
        match=r"^reference must be a second teacher's config for targets in \('reorder', "
        r"'soften'\), and None otherwise \(got None\)",
    ):
        p.student(teacher=p.adversarial(), targets="reorder")
    with pytest.raises(ValueError, match=r"^reference must be a second teacher's config .* \(got None\)"):
        p.student(teacher=p.standard(), targets="soften")
    with pytest.raises(ValueError, match=r"^reference must be a second teacher's config .* \(got a config\)"):
        p.student(teacher=p.adversarial(), reference=p.standard())


# --------------------------------------------------------------------------------------------------------------
# bad values of the Python API (part of the bad-input matrix counted in tests/test_pipeline_stored.py)


RESOLVE_CASES = [
    # (id, overrides of resolve("smoke"), expected message)
    ("infinite-lr", dict(lr="inf"), r"^lr must be a finite number > 0 \(got inf\)"),
    ("infinite-weight-decay", dict(weight_decay="inf"), r"^weight_decay must be a finite number >= 0 \(got inf\)"),
    ("huge-seed", dict(seed=2**40), r"^seed must be an integer >= 0 and <= 4294967295 \(got 1099511627776\)"),
    (
        "huge-seed-in-seeds",
        dict(seeds="0, 99999999999"),
        r"^seeds must be an integer >= 0 and <= 4294967295 \(got 99999999999\)",
    ),
    ("nan-eps", dict(eps="nan"), r"^eps must be a finite number > 0 and < 1 \(got nan\); the L-inf radius .*"),
    ("fractional-seed", dict(seed="1.5"), r"^seed must be an integer \(got '1.5'\)"),
    ("device-not-a-string", dict(device=7), r"^device must be a string \(got 7\)"),
    (
        "alpha-above-a-new-eps",
        dict(eps=0.05, alpha=0.1),
        r"^alpha must be a finite number > 0 and <= 0\.05 \(got 0\.1\)",
    ),
    ("n-val-beyond-the-test-split", dict(n_val=20_000), r"^n_val must be an integer >= 1 and <= 10000 \(got 20000\)"),
    (
        "student-seed-of-a-teacher",
        dict(student_seeds="1, 100"),
        r"^student_seeds must be disjoint from the teachers' seeds \(a student never starts from its teacher's "
        r"initialisation\) \(got \(1, 100\)\); \[1\] are teacher seeds",
    ),
    ("no-student-seed", dict(student_seeds=()), r"^student_seeds must be one or more seeds \(got \(\)\)"),
    ("unknown-augmentation", dict(augment="mixup"), r"^augment must be one of 'none', 'crop-flip' \(got 'mixup'\)"),
    ("no-target-class", dict(autoattack_targets=0), r"^autoattack_targets must be an integer >= 1 \(got 0\)"),
    (
        "no-autoattack-iteration",
        dict(autoattack_iterations=0),
        r"^autoattack_iterations must be an integer >= 1 \(got 0\)",
    ),
]


@pytest.mark.faults
@pytest.mark.parametrize("overrides, message", [c[1:] for c in RESOLVE_CASES], ids=[c[0] for c in RESOLVE_CASES])
def test_bad_profile_values_are_refused(overrides, message):
    with pytest.raises(ProfileError, match=message):
        profiles.resolve("smoke", **{"device": "cpu", **overrides})


def test_size_bounds_follow_the_data_set_registry():
    info = dataset_info("fashion-mnist")
    assert resolve("smoke", device="cpu", n_train=info.train_size).n_train == info.train_size
    assert resolve("smoke", device="cpu", n_eval=info.test_size, n_val=info.test_size).n_eval == info.test_size
    with pytest.raises(ProfileError, match=rf"^n_eval must be an integer >= 1 and <= {info.test_size} "):
        resolve("smoke", device="cpu", n_eval=info.test_size + 1)


def test_the_claims_design_the_profiles_carry():
    """Three student seeds disjoint from the teachers' and 500 AutoAttack images at the cpu profile; the decisive
    design (two teachers, 8 fresh seeds each, C8 pulled apart, masking on every kind) at the decisive and paper
    profiles, 1000+ AutoAttack images at the paper profile, whose training uses crops and flips."""
    cpu, paper, smoke, decisive = (resolve(name, device="cpu") for name in ("cpu", "paper", "smoke", "decisive"))
    assert cpu.student_seeds == (100, 101, 102) and len(smoke.student_seeds) >= 2
    for p in (paper, decisive):
        assert p.student_seeds == (*range(300, 308), *range(310, 318)) and p.distill_teachers == 2
        assert p.c8_apart and p.masking_every_kind and (p.masking_images, p.masking_queries) == (200, 5000)
        assert not p.temperature_sweep
    assert (paper.dataset, decisive.dataset) == ("cifar10", "fashion-mnist")
    for p in (cpu, paper, smoke, decisive):
        assert not set(p.student_seeds) & {*p.seeds, p.seed}
    assert cpu.n_autoattack >= 500 and paper.n_autoattack >= 1000
    assert (cpu.augment, paper.augment) == ("none", "crop-flip")
    assert paper.standard().augment == paper.adversarial().augment == paper.student(teacher=None).augment
    assert cpu.student(teacher=None, seed=101).seed == 101


def test_students_nested_within_teachers_need_as_many_seeds_each():
    with pytest.raises(ValueError, match=r"^student_seeds must be as many seeds for each of the 2 teachers"):
        profiles.resolve("decisive", device="cpu", student_seeds=(300, 301, 302))
    with pytest.raises(ValueError, match=r"^student_seeds must be distinct seeds"):
        profiles.resolve("cpu", device="cpu", student_seeds=(100, 100, 101))
    with pytest.raises(ValueError, match=r"^distill_teachers must be an integer >= 1 and <= 2"):
        profiles.resolve("cpu", device="cpu", distill_teachers=3)


def test_eps_zero_is_refused_with_a_reason_that_does_not_contradict_itself():
    with pytest.raises(ValueError) as error:
        profiles.resolve("cpu", device="cpu", eps=0.0)
    message = str(error.value)
    assert message.startswith("eps must be a finite number > 0 and < 1 (got 0.0)"), message
    assert "[0, 1]" not in message and "standard training" in message
