"""advlogits.train: the training loops learn, are seeded, resume after a kill, and AT buys robustness; a
`TrainConfig` is refused when it is made if any value is bad (the bad-input table `CONFIG_CASES`)."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlogits import profiles, train
from advlogits.augmentation import augment
from advlogits.data import load_dataset
from advlogits.evaluation import accuracy, attack_correct, robust_accuracy
from advlogits.fileio import StoreError, safe_torch_load
from advlogits.models import build_model
from advlogits.predict import predict_logits
from advlogits.train import (
    STREAM_ATTACK,
    STREAM_AUGMENT,
    STREAM_ORDER,
    STREAM_VAL_ATTACK,
    epoch_generator,
    fit,
    train_adversarial,
    train_distilled,
    train_standard,
    triangular_lr,
)

from fault_workers import AT, ST
from helpers import code_running_bytes, train_config

_DISTILLED = dataclasses.replace(ST, method="distilled", teacher=ST, targets="kd", T=2.0)


@pytest.fixture(scope="module")
def data():
    x, y = load_dataset("fashion-mnist", "train", n=2000, seed=0)
    x_test, y_test = load_dataset("fashion-mnist", "test", n=500, seed=0)
    return x, y, x_test, y_test


def fresh(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("cnn-small")


def weights_equal(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_triangular_schedule_closed_form():
    total = 10  # peak at step 2 (20% of 10)
    assert [triangular_lr(s, total) for s in range(total)] == pytest.approx(
        [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]
    )


def test_standard_training_learns_and_reports_history(data):
    x, y, x_test, y_test = data
    model = fresh()
    history = train_standard(model, x, y, train_config(epochs=2), progress=False, x_val=x_test, y_val=y_test)
    assert history["epoch"] == [1, 2]
    assert len(history["batch_loss"]) == 2 * 32
    assert history["train_loss"][1] < history["train_loss"][0]
    assert accuracy(model, x_test, y_test) > 0.65, "a CNN learns Fashion-MNIST far above chance (10%)"
    assert history["val_acc"][-1] == pytest.approx(accuracy(model, x_test, y_test))
    assert not model.training


def test_same_seed_same_model_other_seed_other_model(data):
    x, y, *_ = data
    runs = []
    for seed in (0, 0, 1):
        model = fresh(seed)
        train_standard(model, x[:512], y[:512], train_config(seed=seed), progress=False)
        runs.append(model)
    assert weights_equal(runs[0], runs[1])
    assert not weights_equal(runs[0], runs[2])


def test_the_checkpoint_holds_the_last_epoch_but_one_and_a_one_epoch_run_writes_none(data, tmp_path):
    """The weights after the last epoch are the caller's to store, so no checkpoint repeats them."""
    x, y, *_ = data
    x, y = x[:256], y[:256]
    two, one = tmp_path / "two.pt", tmp_path / "one.pt"
    train_standard(fresh(), x, y, train_config(epochs=2), checkpoint=two, progress=False)
    train_standard(fresh(), x, y, train_config(epochs=1), checkpoint=one, progress=False)
    state = safe_torch_load(two)
    assert state["epoch"] == 0 and state["history"]["epoch"] == [1]
    assert not one.exists()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    """SIGKILL a training run after its first checkpoint; resuming must end where an uninterrupted run ends."""
    x, y, *_ = data
    config = train_config(epochs=3)
    reference = fresh()
    train_standard(reference, x, y, config, progress=False)

    ckpt = tmp_path / "checkpoint.pt"
    script = textwrap.dedent(f"""
        import torch
        from advlogits.data import load_dataset
        from advlogits.models import build_model
        from advlogits.train import TrainConfig, train_standard
        x, y = load_dataset("fashion-mnist", "train", n=2000, seed=0)
        torch.manual_seed(0)
        train_standard(build_model("cnn-small"), x, y, {config!r}, checkpoint={str(ckpt)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run must be killed before it finishes"
    done = safe_torch_load(ckpt)["epoch"]
    assert done < 2, "killed after its first epochs, not at the end"

    resumed = fresh(123)  # the initial weights do not matter: they come from the checkpoint
    history = train_standard(resumed, x, y, config, checkpoint=ckpt, progress=False)
    assert history["epoch"] == [1, 2, 3]
    for p, q in zip(reference.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_a_checkpoint_that_runs_code_is_refused_and_nothing_is_trained(data, tmp_path, monkeypatch):
    """Resuming reads the checkpoint through the safe load, even where the environment turns off torch's safe
    default: the code does not run and training does not start."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    x, y, *_ = data
    marker, ckpt = tmp_path / "pwned", tmp_path / "checkpoint.pt"
    ckpt.write_bytes(code_running_bytes(marker, "legacy", wrap=lambda e: {"model": e, "epoch": 0}))
    model = fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(StoreError, match=r"refusing to load .*checkpoint\.pt.*never load a checkpoint you do not"):
        train_standard(model, x, y, train_config(), checkpoint=ckpt, progress=False)
    assert not marker.exists()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "nothing was trained"


@pytest.mark.slow
def test_adversarial_training_buys_robustness(data):
    x, y, x_test, y_test = data
    st, at = fresh(), fresh()
    train_standard(st, x, y, train_config(epochs=3), progress=False)
    train_adversarial(at, x, y, train_config("adversarial", epochs=3), progress=False)
    attack = dict(
        attack="pgd", batch_size=500, eps=0.1, alpha=0.025, steps=10, generator=torch.Generator().manual_seed(0)
    )
    st_robust = robust_accuracy(st, x_test, y_test, **attack)
    at_robust = robust_accuracy(at, x_test, y_test, **attack)
    assert at_robust > st_robust + 0.2, (st_robust, at_robust)


def test_training_validates_before_compute(data):
    """Each training function trains the method its config names; the images and targets must match. (The config's
    own values are checked when it is made: `CONFIG_CASES`.)"""
    x, y, *_ = data
    model = fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"^config must be a TrainConfig with method='adversarial' \(got 'standard'\)"):
        train_adversarial(model, x, y, train_config())
    with pytest.raises(ValueError, match=r"^config must be a TrainConfig with method='standard' \(got 'distilled'\)"):
        train_standard(model, x, y, train_config("distilled"))
    with pytest.raises(
        ValueError, match=r"^config must be a TrainConfig with method='distilled' \(got \{'epochs': 1\}\)"
    ):
        train_distilled(model, x, y, {"epochs": 1})
    with pytest.raises(ValueError, match=r"^targets must be one row per image \(2000\) \(got 10 rows\)"):
        train_standard(model, x, y[:10], train_config())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "nothing was trained"


def test_distilled_student_follows_its_teacher(data):
    x, y, x_test, y_test = data
    teacher = fresh()
    train_standard(teacher, x, y, train_config(epochs=2), progress=False)
    targets = predict_logits(teacher, x)
    student = fresh(1)
    history = train_distilled(student, x, targets, train_config("distilled", epochs=2), y=y, progress=False)
    agreement = (predict_logits(student, x_test).argmax(1) == predict_logits(teacher, x_test).argmax(1)).float().mean()
    assert agreement > 0.8
    assert 0 < history["train_acc"][-1] <= 1


def test_distillation_with_hard_labels_and_bad_input(data):
    x, y, *_ = data
    student = fresh()
    history = train_distilled(student, x[:512], y[:512], train_config("distilled", T=1.0), y=y[:512], progress=False)
    assert len(history["train_loss"]) == 1
    with pytest.raises(
        ValueError,
        match=r"^targets must be \(N, K\) float logits or \(N,\) int64 labels "
        r"\(got \(2000, 10\), torch\.int64\)",
    ):
        train_distilled(student, x, torch.zeros(len(x), 10, dtype=torch.long), train_config("distilled"))


# --------------------------------------------------------------------------------------------------------------
# bad configs: refused when made, before any compute (part of the bad-input matrix counted in
# tests/test_pipeline_stored.py)


CONFIG_CASES = [
    # (id, the bad config's fields, expected message): refused when the config is made, before any compute
    (
        "unknown-dataset",
        dict(dataset="mnist"),
        r"^TrainConfig: dataset must be one of 'fashion-mnist', 'cifar10' \(got 'mnist'\)",
    ),
    (
        "unknown-arch",
        dict(arch="vit"),
        r"^TrainConfig: arch must be one of 'cnn-small', 'cnn', 'preact-resnet18', 'wrn-34-10', 'linear' \(got 'vit'\)",
    ),
    (
        "arch-of-another-data-set",
        dict(arch="preact-resnet18"),
        r"^TrainConfig: arch must be one of 'cnn-small', 'cnn', 'linear' \(got 'preact-resnet18'\); those are the "
        r"architectures that fit fashion-mnist",
    ),
    (
        "unknown-method",
        dict(method="fancy"),
        r"^TrainConfig: method must be one of 'standard', 'adversarial', 'distilled' \(got 'fancy'\)",
    ),
    (
        "alpha-above-eps",
        dict(method="adversarial", eps=0.1, alpha=0.2, steps=2),
        r"^TrainConfig: alpha must be a finite number > 0 and <= 0\.1 \(got 0\.2\)",
    ),
    (
        "zero-pgd-steps",
        dict(method="adversarial", eps=0.1, alpha=0.05, steps=0),
        r"^TrainConfig: steps must be an integer >= 1 \(got 0\)",
    ),
    (
        "eps-of-one",
        dict(method="adversarial", eps=1.0, alpha=0.05, steps=2),
        r"^TrainConfig: eps must be a finite number > 0 and < 1 \(got 1\.0\); an L-inf radius in pixel units",
    ),
    ("negative-seed", dict(seed=-3), r"^TrainConfig: seed must be an integer >= 0 and <= 4294967295 \(got -3\)"),
    ("zero-epochs", dict(epochs=0), r"^TrainConfig: epochs must be an integer >= 1 \(got 0\)"),
    (
        "zero-n-train",
        dict(n_train=0),
        r"^TrainConfig: n_train must be an integer >= 1 and <= 60000 \(got 0\); None "
        r"trains on all 60000 images of fashion-mnist",
    ),
    (
        "n-train-beyond-the-split",
        dict(n_train=60_001),
        r"^TrainConfig: n_train must be an integer >= 1 and <= 60000 "
        r"\(got 60001\)",
    ),
    (
        "unknown-precision",
        dict(precision="fp16"),
        r"^TrainConfig: precision must be one of 'fp32', 'bf16' \(got 'fp16'\)",
    ),
    (
        "unknown-augment",
        dict(augment="mixup"),
        r"^TrainConfig: augment must be one of 'none', 'crop-flip' \(got 'mixup'\)",
    ),
    (
        "student-temperature-zero",
        dict(method="distilled", teacher=ST, T=0.0),
        r"^TrainConfig: T must be a finite number > 0 \(got 0\.0\)",
    ),
    (
        "student-unknown-targets",
        dict(method="distilled", teacher=ST, targets="bogus"),
        r"^TrainConfig: targets must be one of 'kd', 'shuffle', 'mean', 'reorder', 'flatten', 'label_smoothing', "
        r"'argmax', 'spread', 'soften', 'permute_confidence' \(got 'bogus'\)",
    ),
    (
        "student-soften-without-reference",
        dict(method="distilled", teacher=ST, targets="soften"),
        r"^TrainConfig: reference must be a second teacher for targets in \('reorder', 'soften'\), and None otherwise "
        r"\(got None\)",
    ),
    (
        "student-without-teacher",
        dict(method="distilled"),
        r"^TrainConfig: teacher must be a teacher config for a distilled config \(got None\)",
    ),
]


@pytest.mark.faults
@pytest.mark.parametrize("fields, message", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_bad_train_configs_are_refused_when_made(fields, message):
    """A config is checked when it is made, so a student with T=0 or unknown targets is refused before its
    teacher is trained."""
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ST, **fields)


@pytest.mark.faults
def test_valid_students_and_adversarial_configs_are_accepted():
    assert _DISTILLED.teacher == ST and AT.alpha <= AT.eps
    assert profiles.resolve("smoke", device="cpu", seed=2**32 - 1).standard().seed == 2**32 - 1


# --------------------------------------------------------------------------------------------------------------
# augmentation of the training batches, and the validation PGD accuracy of adversarial training


def plain_loop(model, x, y, *, epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int) -> list[float]:
    """Standard training written out without the training loop's options: the documented recipe (SGD with Nesterov
    momentum, the triangular schedule, the data order of `epoch_generator(seed, epoch, STREAM_ORDER)`); batch losses."""
    n = len(x)
    steps = -(-n // batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: triangular_lr(s, epochs * steps))
    losses = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=epoch_generator(seed, epoch, STREAM_ORDER))
        for b in range(steps):
            idx = order[b * batch_size : (b + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    return losses


def without_seconds(history: dict) -> dict:
    return {k: v for k, v in history.items() if k != "seconds"}


def test_no_augmentation_reproduces_the_plain_training_loop(data):
    """augment="none" (the default) changes nothing: the same weights and losses, bit for bit, as a loop without
    augmentation, and as the call without the argument."""
    x, y, x_test, y_test = data
    x, y = x[:256], y[:256]
    kwargs = dict(epochs=2, batch_size=64, lr=0.05, weight_decay=5e-4, seed=3)
    reference = fresh()
    losses = plain_loop(reference, x, y, **kwargs)
    default, explicit = fresh(), fresh()
    val = dict(progress=False, x_val=x_test[:100], y_val=y_test[:100])
    h_default = train_standard(default, x, y, train_config(**kwargs), **val)
    h_none = train_standard(explicit, x, y, train_config(augment="none", **kwargs), **val)
    assert h_none["batch_loss"] == losses
    assert weights_equal(reference, explicit) and weights_equal(default, explicit)
    assert without_seconds(h_default) == without_seconds(h_none)


def test_crop_flip_training_differs_from_none_and_is_deterministic(data):
    x, y, *_ = data
    x, y = x[:256], y[:256]
    runs = {}
    for name, kind in (("none", "none"), ("a", "crop-flip"), ("b", "crop-flip")):
        runs[name] = fresh()
        train_standard(runs[name], x, y, train_config(augment=kind), progress=False)
    assert weights_equal(runs["a"], runs["b"])
    assert not weights_equal(runs["a"], runs["none"])
    at_a, at_b = fresh(), fresh()
    config = train_config("adversarial", alpha=0.05, steps=1, augment="crop-flip")
    for model in (at_a, at_b):
        train_adversarial(model, x[:128], y[:128], config, progress=False)
    assert weights_equal(at_a, at_b)


def test_a_profile_with_a_bad_augmentation_is_refused():
    with pytest.raises(profiles.ProfileError, match=r"^augment must be one of 'none', 'crop-flip' \(got 'flip'\)"):
        profiles.resolve("smoke", augment="flip")
    paper = profiles.resolve("paper", device="cpu")
    assert paper.augment == "crop-flip"
    assert paper.standard().augment == paper.adversarial().augment == "crop-flip"
    assert profiles.resolve("smoke", augment="crop-flip").adversarial().augment == "crop-flip"


class Interrupt(Exception):
    """Stands for a kill after a checkpoint: raised by a test to stop a training run part-way."""


def test_the_step_gets_the_augmented_batches_and_a_resumed_run_the_same_ones(data, tmp_path):
    """`fit` augments each batch with `epoch_generator(seed, epoch, STREAM_AUGMENT)` before the loss step; a run resumed
    from its epoch-1 checkpoint hands epoch 2 the same augmented batches as the uninterrupted run."""
    x, y, *_ = data
    x, y = x[:96], y[:96]
    seed, batch_size = 4, 32

    def run(model, seen, *, checkpoint=None, stop_at=None):
        def step(m, xb, yb, gen):
            if len(seen) == stop_at:
                raise Interrupt
            seen.append(xb.clone())
            logits = m(xb)
            return F.cross_entropy(logits, yb), logits

        config = train_config(
            epochs=2, batch_size=batch_size, lr=0.01, weight_decay=0.0, seed=seed, augment="crop-flip"
        )
        return fit(model, x, y, config, step=step, checkpoint=checkpoint, progress=False, y_true=y)

    seen: list = []
    run(fresh(), seen)
    for epoch in range(2):
        order = torch.randperm(len(x), generator=epoch_generator(seed, epoch, STREAM_ORDER))
        generator = epoch_generator(seed, epoch, STREAM_AUGMENT)
        for b in range(3):
            expected = augment(x[order[b * batch_size : (b + 1) * batch_size]], "crop-flip", generator=generator)
            assert torch.equal(seen[3 * epoch + b], expected), (epoch, b)

    ckpt, first = tmp_path / "checkpoint.pt", []
    with pytest.raises(Interrupt):
        run(fresh(), first, checkpoint=ckpt, stop_at=4)  # epoch 1 done and checkpointed, stopped inside epoch 2
    assert safe_torch_load(ckpt)["epoch"] == 0
    resumed: list = []
    run(fresh(9), resumed, checkpoint=ckpt)
    assert len(resumed) == 3 and all(torch.equal(a, b) for a, b in zip(resumed, seen[3:]))


def test_adversarial_training_logs_the_validation_pgd_accuracy(data):
    """``val_pgd_acc``: one value per epoch, in [0, 1], at most the clean ``val_acc``, equal to the training attack
    (random start from `epoch_generator(seed, epoch, STREAM_VAL_ATTACK)`, early stop) run on the final model;
    standard and distilled training do not log it."""
    x, y, x_test, y_test = data
    x, y, x_val, y_val = x[:512], y[:512], x_test[:200], y_test[:200]
    kwargs = dict(progress=False, x_val=x_val, y_val=y_val)
    model = fresh()
    history = train_adversarial(
        model, x, y, train_config("adversarial", epochs=2, alpha=0.05, steps=2, seed=2), **kwargs
    )
    values = history["val_pgd_acc"]
    assert len(values) == len(history["val_acc"]) == 2
    assert all(0.0 <= v <= clean <= 1.0 for v, clean in zip(values, history["val_acc"])), history
    assert values[-1] > 0.0, "the adversarially trained CNN keeps some robustness"
    correct = attack_correct(
        model,
        x_val,
        y_val,
        attack="pgd",
        batch_size=64,
        eps=0.1,
        alpha=0.05,
        steps=2,
        early_stop=True,
        generator=epoch_generator(2, 1, STREAM_VAL_ATTACK),
    )
    assert values[-1] == correct.sum().item() / len(correct)
    assert STREAM_VAL_ATTACK not in (STREAM_ORDER, STREAM_ATTACK, STREAM_AUGMENT)
    st = train_standard(fresh(), x, y, train_config(epochs=2, seed=2), **kwargs)
    kd = train_distilled(
        fresh(), x, torch.randn(len(x), 10), train_config("distilled", epochs=2, seed=2), y=y, **kwargs
    )
    assert "val_pgd_acc" not in st and "val_pgd_acc" not in kd
    assert "val_pgd_acc" not in train_adversarial(
        fresh(), x[:64], y[:64], train_config("adversarial", alpha=0.05, steps=1), progress=False
    )


def dropout_bn_model() -> nn.Module:
    """A small model with batch norm and dropout: a hook that left it in eval mode (no dropout, frozen running
    statistics) or drew from the global RNG (other dropout masks) would change its training."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(8 * 13 * 13, 10),
    )


def test_the_validation_pgd_accuracy_does_not_change_the_training(data):
    x, y, x_test, y_test = data
    x, y = x[:256], y[:256]
    config = train_config("adversarial", alpha=0.05, steps=2, epochs=2, seed=1)
    with_hook, without = dropout_bn_model(), dropout_bn_model()
    torch.manual_seed(11)
    h_with = train_adversarial(with_hook, x, y, config, progress=False, x_val=x_test[:100], y_val=y_test[:100])
    rng_with = torch.get_rng_state()
    torch.manual_seed(11)
    h_without = train_adversarial(without, x, y, config, progress=False)
    assert len(h_with["val_pgd_acc"]) == 2 and "val_pgd_acc" not in h_without
    assert weights_equal(with_hook, without), "weights and batch-norm statistics as without the measurement"
    assert h_with["batch_loss"] == h_without["batch_loss"]
    assert torch.equal(rng_with, torch.get_rng_state()), "the global RNG is not drawn from"


def test_the_validation_pgd_accuracy_survives_a_resume(data, tmp_path, monkeypatch):
    x, y, x_test, y_test = data
    x, y = x[:128], y[:128]
    config = train_config("adversarial", alpha=0.05, steps=1, epochs=2)
    kwargs = dict(progress=False, x_val=x_test[:100], y_val=y_test[:100])
    reference = fresh()
    expected = train_adversarial(reference, x, y, config, **kwargs)

    ckpt, calls, attack = tmp_path / "checkpoint.pt", [], train.pgd

    def stopping_pgd(*args, **kw):  # the training attack; stops the run at epoch 2's first batch
        calls.append(1)
        if len(calls) == 3:
            raise Interrupt
        return attack(*args, **kw)

    monkeypatch.setattr(train, "pgd", stopping_pgd)
    with pytest.raises(Interrupt):
        train_adversarial(fresh(), x, y, config, checkpoint=ckpt, **kwargs)
    monkeypatch.setattr(train, "pgd", attack)
    saved = safe_torch_load(ckpt)
    assert saved["epoch"] == 0 and saved["history"]["val_pgd_acc"] == expected["val_pgd_acc"][:1]
    resumed = fresh(5)
    history = train_adversarial(resumed, x, y, config, checkpoint=ckpt, **kwargs)
    assert history["epoch"] == [1, 2] and history["val_pgd_acc"] == expected["val_pgd_acc"]
    assert weights_equal(resumed, reference)
