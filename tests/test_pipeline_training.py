"""advlogits.pipeline.training: the model a `TrainConfig` describes, trained without the store: its images, its
seeded initialisation, a student's targets from its teacher's logits, and weights checked when loaded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from advlogits.data import load_dataset
from advlogits.distill import average_confidence, label_correct, make_targets
from advlogits.fileio import StoreError
from advlogits.models import build_for
from advlogits.pipeline import training
from advlogits.predict import predict_logits

from helpers import tiny_standard_config

TEACHER = tiny_standard_config()


@pytest.fixture(scope="module")
def teacher():
    """TEACHER trained once, and its logits on its own 256 training images: (model, history, logits)."""
    model, history = training.train_model(TEACHER, device="cpu", progress=False)
    x, _ = training.student_images(TEACHER)
    return model, history, predict_logits(model, x)


def test_a_standard_model_is_trained_on_its_seeded_images(teacher):
    model, history, _ = teacher
    assert not model.training and history["epoch"] == [1] and len(history["batch_loss"]) == 4
    x, y = training.student_images(TEACHER)
    expected = load_dataset("fashion-mnist", "train", n=256, seed=0)
    assert torch.equal(x, expected[0]) and torch.equal(y, expected[1])
    assert history["val_acc"][0] > 0.1, "it learned something in one epoch"


def test_initialisation_is_seeded_by_the_config():
    a, b = training.init_model(TEACHER), training.init_model(TEACHER)
    other = training.init_model(dataclasses.replace(TEACHER, seed=1))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), other.state_dict().values()))
    assert next(a.parameters()).device.type == "cpu"
    linear = training.init_model(dataclasses.replace(TEACHER, arch="linear"))
    assert linear.linear.weight.shape == (10, 784)


def test_model_from_state_checks_the_weights(teacher):
    model, _, _ = teacher
    rebuilt = training.model_from_state(TEACHER, model.state_dict(), source="entry/model.pt")
    assert not rebuilt.training
    x, _ = training.student_images(TEACHER)
    assert torch.equal(predict_logits(rebuilt, x[:32]), predict_logits(model, x[:32]))
    state = dict(model.state_dict())
    state.pop("net.head.3.bias")
    with pytest.raises(StoreError, match=r"weights in entry/model\.pt do not fit .*missing keys: net\.head\.3\.bias"):
        training.model_from_state(TEACHER, state, source="entry/model.pt")
    with pytest.raises(StoreError, match=r"entry/model\.pt do not fit"):
        training.model_from_state(dataclasses.replace(TEACHER, arch="cnn"), model.state_dict(), source="entry/model.pt")


@pytest.mark.parametrize("arch", ["cnn-small", "preact-resnet18"])
def test_model_from_state_holds_the_state_in_its_layout_and_leaves_the_global_generator_alone(arch):
    """Loading builds no initial weights and copies nothing: every parameter and buffer is the state's own tensor,
    on the CPU; a tensor in another layout than a built model's (a contiguous convolution weight where the model
    keeps it channels-last) is copied into the built model's layout; and torch's global generator is where it was,
    so loading a teacher cannot change what a computation drawing from it after the load gets."""
    resnet = arch.startswith("preact")
    config = dataclasses.replace(TEACHER, arch=arch, dataset="cifar10" if resnet else TEACHER.dataset)
    built = training.init_model(config)
    layout = {name: value.stride() for name, value in built.state_dict().items()}
    state = {name: value.clone() for name, value in built.state_dict().items()}
    relaid = [name for name, value in state.items() if not value.is_contiguous()]
    assert relaid and all(name.endswith(".weight") for name in relaid), "the built convolutions are channels-last"
    state.update({name: state[name].contiguous() for name in relaid})
    before = torch.random.get_rng_state()
    rebuilt = training.model_from_state(config, state, source="entry/model.pt")
    assert torch.equal(torch.random.get_rng_state(), before)
    loaded = rebuilt.state_dict()
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert torch.equal(loaded[name], value) and loaded[name].stride() == layout[name], name
        assert loaded[name].device.type == "cpu", name
        assert (loaded[name].data_ptr() == value.data_ptr()) == (name not in relaid), name
    x = torch.rand(4, *((3, 32, 32) if resnet else (1, 28, 28)))
    assert torch.equal(rebuilt(x), built.eval()(x))


def test_model_from_state_refuses_a_network_that_its_state_leaves_without_values(monkeypatch):
    """A tensor outside the state dict (a buffer registered as not persistent) would be left on the meta device,
    without a value: refused, naming it."""

    def with_scale(arch: str, dataset: str) -> torch.nn.Module:
        model = build_for(arch, dataset)
        model.register_buffer("scale", torch.ones(1), persistent=False)
        return model

    state = training.init_model(TEACHER).state_dict()
    monkeypatch.setattr(training, "build_for", with_scale)
    with pytest.raises(StoreError, match=r"^entry/model\.pt leaves scale of cnn-small without a value$"):
        training.model_from_state(TEACHER, state, source="entry/model.pt")


def test_flatten_targets_use_the_teachers_average_confidence(teacher):
    _, _, logits = teacher
    student = dataclasses.replace(TEACHER, method="distilled", teacher=TEACHER, targets="flatten")
    _, y = training.student_images(student)
    targets = training.distillation_targets(student, y, logits, None)
    average = torch.softmax(logits, 1).max(1).values.mean()
    torch.testing.assert_close(torch.softmax(targets, 1).max(1).values, average.expand(256), atol=1e-4, rtol=0)
    corrected = dataclasses.replace(student, label_corrected=True)
    targets = training.distillation_targets(corrected, y, logits, None)
    average = average_confidence(label_correct(logits, y))
    torch.testing.assert_close(
        torch.softmax(targets, 1).max(1).values, torch.as_tensor(average).expand(256).float(), atol=1e-4, rtol=0
    )
    assert torch.equal(targets.argmax(1), y), "a label-corrected teacher keeps the true class on top"


def test_other_targets_follow_make_targets_with_the_students_seed(teacher):
    _, _, logits = teacher
    student = dataclasses.replace(TEACHER, method="distilled", teacher=TEACHER, targets="shuffle", seed=5)
    y = torch.arange(256) % 10
    targets = training.distillation_targets(student, y, logits, None)
    assert torch.equal(targets, make_targets("shuffle", logits, y=y, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(
        targets, training.distillation_targets(dataclasses.replace(student, seed=6), y, logits, None)
    ), "the shuffle is drawn from the seed"
    reorder = dataclasses.replace(student, targets="reorder", reference=TEACHER)
    reference = logits.flip(1)
    assert torch.equal(
        training.distillation_targets(reorder, y, logits, reference),
        make_targets("reorder", logits, y=y, reference=reference),
    )
    assert torch.equal(
        training.distillation_targets(dataclasses.replace(student, targets="kd"), y, logits, None), logits
    )


def test_a_teacher_of_another_data_set_is_refused():
    with pytest.raises(
        ValueError,
        match=r"^TrainConfig: teacher must be a model of the student's data set "
        r"'fashion-mnist' \(got 'cifar10'\)",
    ):
        dataclasses.replace(TEACHER, method="distilled", teacher=dataclasses.replace(TEACHER, dataset="cifar10"))
    with pytest.raises(
        ValueError,
        match=r"^TrainConfig: reference must be a model of the student's data set "
        r"'fashion-mnist' \(got 'cifar10'\)",
    ):
        dataclasses.replace(
            TEACHER,
            method="distilled",
            teacher=TEACHER,
            targets="reorder",
            reference=dataclasses.replace(TEACHER, dataset="cifar10"),
        )


def test_a_distilled_config_needs_its_teachers_logits():
    student = dataclasses.replace(TEACHER, method="distilled", teacher=TEACHER)
    with pytest.raises(
        ValueError,
        match=r"^teacher_logits must be the teacher's logits on the student's images "
        r"for a distilled config \(got None\)",
    ):
        training.train_model(student, device="cpu", progress=False)


@pytest.mark.slow
def test_hard_label_student_equals_distilling_the_corrected_argmax_at_T1():
    """The reason for a "standard" hard-label config: at T = 1 it is the same loss as the label-corrected argmax."""
    teacher = dataclasses.replace(TEACHER, n_train=128)
    hard = dataclasses.replace(teacher, seed=3)
    via_kd = dataclasses.replace(
        hard, method="distilled", teacher=teacher, targets="argmax", label_corrected=True, T=1.0
    )
    teacher_model, _ = training.train_model(teacher, device="cpu", progress=False)
    logits = predict_logits(teacher_model, training.student_images(via_kd)[0])
    a, history_a = training.train_model(hard, device="cpu", progress=False)
    b, history_b = training.train_model(via_kd, device="cpu", progress=False, teacher_logits=logits)
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(wa, wb, atol=1e-5, rtol=1e-4, msg=name)
    assert history_a["batch_loss"] == pytest.approx(history_b["batch_loss"], rel=1e-5)
    at_T4 = dataclasses.replace(via_kd, T=4.0)
    c, _ = training.train_model(at_T4, device="cpu", progress=False, teacher_logits=logits)
    last_a, last_c = (list(m.state_dict().values())[-1] for m in (a, c))  # the output layer's bias
    assert not torch.allclose(last_a, last_c, atol=1e-3), "at T = 4 the T^2 factor changes the training"
