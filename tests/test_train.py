"""Training loops: they learn, they are seeded, they resume after a kill, AT buys robustness."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from advlogits.attacks import robust_accuracy
from advlogits.data import load_dataset
from advlogits.experiments import predict_logits
from advlogits.models import build_model
from advlogits.store import safe_torch_load
from advlogits.train import accuracy, train_adversarial, train_distilled, train_standard, triangular_lr


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
        [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])


def test_standard_training_learns_and_reports_history(data):
    x, y, x_test, y_test = data
    model = fresh()
    history = train_standard(model, x, y, epochs=2, batch_size=64, lr=0.05, progress=False,
                             x_val=x_test, y_val=y_test)
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
        train_standard(model, x[:512], y[:512], epochs=1, batch_size=64, lr=0.05, seed=seed, progress=False)
        runs.append(model)
    assert weights_equal(runs[0], runs[1])
    assert not weights_equal(runs[0], runs[2])


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    """SIGKILL a training run after its first checkpoint; resuming must end where an uninterrupted run ends."""
    x, y, *_ = data
    kwargs = dict(epochs=3, batch_size=64, lr=0.05, seed=0, progress=False)
    reference = fresh()
    train_standard(reference, x, y, **kwargs)

    ckpt = tmp_path / "checkpoint.pt"
    script = textwrap.dedent(f"""
        import torch
        from advlogits.data import load_dataset
        from advlogits.models import build_model
        from advlogits.train import train_standard
        x, y = load_dataset("fashion-mnist", "train", n=2000, seed=0)
        torch.manual_seed(0)
        train_standard(build_model("cnn-small"), x, y, checkpoint={str(ckpt)!r}, **{kwargs!r})
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
    history = train_standard(resumed, x, y, checkpoint=ckpt, **kwargs)
    assert history["epoch"] == [1, 2, 3]
    for p, q in zip(reference.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_adversarial_training_buys_robustness(data):
    x, y, x_test, y_test = data
    kwargs = dict(epochs=3, batch_size=64, lr=0.05, progress=False)
    st, at = fresh(), fresh()
    train_standard(st, x, y, **kwargs)
    train_adversarial(at, x, y, eps=0.1, alpha=0.04, steps=3, **kwargs)
    attack = dict(attack="pgd", batch_size=500, eps=0.1, alpha=0.025, steps=10,
                  generator=torch.Generator().manual_seed(0))
    st_robust = robust_accuracy(st, x_test, y_test, **attack)
    at_robust = robust_accuracy(at, x_test, y_test, **attack)
    assert at_robust > st_robust + 0.2, (st_robust, at_robust)


def test_adversarial_training_validates_before_compute(data):
    x, y, *_ = data
    with pytest.raises(ValueError, match=r"alpha must be in \(0, eps=0.1\]"):
        train_adversarial(fresh(), x, y, eps=0.1, alpha=0.2, steps=3, epochs=1, batch_size=64, lr=0.1)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\)"):
        train_adversarial(fresh(), x, y, eps=0.0, alpha=0.2, steps=3, epochs=1, batch_size=64, lr=0.1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_standard(fresh(), x, y, epochs=0, batch_size=64, lr=0.1)
    with pytest.raises(ValueError, match="targets must have one row per image"):
        train_standard(fresh(), x, y[:10], epochs=1, batch_size=64, lr=0.1)


def test_distilled_student_follows_its_teacher(data):
    x, y, x_test, y_test = data
    teacher = fresh()
    train_standard(teacher, x, y, epochs=2, batch_size=64, lr=0.05, progress=False)
    targets = predict_logits(teacher, x)
    student = fresh(1)
    history = train_distilled(student, x, targets, T=2.0, epochs=2, batch_size=64, lr=0.05, y=y, progress=False)
    agreement = (predict_logits(student, x_test).argmax(1) == predict_logits(teacher, x_test).argmax(1)).float().mean()
    assert agreement > 0.8
    assert 0 < history["train_acc"][-1] <= 1


def test_distillation_with_hard_labels_and_bad_input(data):
    x, y, *_ = data
    student = fresh()
    history = train_distilled(student, x[:512], y[:512], T=1.0, epochs=1, batch_size=64, lr=0.05, y=y[:512],
                              progress=False)
    assert len(history["train_loss"]) == 1
    with pytest.raises(ValueError, match=r"T must be > 0 \(got 0"):
        train_distilled(student, x, torch.zeros(len(x), 10), T=0.0, epochs=1, batch_size=64, lr=0.05)
    with pytest.raises(ValueError, match="targets must be"):
        train_distilled(student, x, torch.zeros(len(x), 10, dtype=torch.long), T=1.0, epochs=1, batch_size=64, lr=0.05)
