"""Tests for advlogits.predict: eval mode restored module by module, the batched inference loop, the progress bar."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from advlogits.predict import eval_mode, predict_logits, progress_bar

from helpers import BatchNormDropoutNet, fashion_test_images, linear_two_class


@pytest.fixture(scope="module")
def test_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 50 Fashion-MNIST test images and labels."""
    return fashion_test_images(50)


def test_eval_mode_sets_every_submodule_to_eval_and_restores_each_own_flag():
    torch.manual_seed(0)
    model = BatchNormDropoutNet().train()
    model.head.eval()
    model.features[1].eval()  # mixed modes, also below the top level
    modes = {name: m.training for name, m in model.named_modules()}
    assert len(set(modes.values())) == 2, "the test needs both modes"
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_eval_mode_restores_the_flags_on_an_exception():
    model = BatchNormDropoutNet().train()
    model.features[3].eval()
    modes = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model):
            assert not model.training
            raise RuntimeError("inside")
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_predict_logits_equals_the_model_in_eval_mode_batch_by_batch(test_data):
    x = test_data[0][:23]
    torch.manual_seed(0)
    model = BatchNormDropoutNet().train()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-0.5, 0.5)  # non-trivial BatchNorm statistics
        model.features[1].running_var.uniform_(0.5, 2.0)
    model.head.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    got = [predict_logits(model, x, batch_size=b) for b in (1000, 23, 5, 1)]
    assert {name: m.training for name, m in model.named_modules()} == modes  # modes restored
    for name, b in model.named_buffers():  # eval mode: BatchNorm statistics untouched
        assert torch.equal(b, buffers[name]), name
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = reference(x)
    for logits in got:
        assert logits.dtype == torch.float32 and logits.device.type == "cpu" and not logits.requires_grad
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)  # eval mode: no Dropout, BN running stats
    with torch.no_grad():  # in train mode the model gives other logits, so eval mode is what was used
        assert not torch.allclose(model.train()(x), expected, atol=1e-3)


def test_predict_logits_returns_float32_on_the_cpu_for_a_float64_model():
    model = linear_two_class(torch.float64)
    x = torch.rand(7, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    logits = predict_logits(model, x, batch_size=3)
    assert logits.dtype == torch.float32 and logits.shape == (7, 2)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x).float())
    assert predict_logits(model, x[:0]).numel() == 0  # no images: no logits
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"batch_size must be an integer >= 1 \(got {bad}\)"):
            predict_logits(model, x, batch_size=bad)


def test_predict_logits_of_no_images_has_one_column_per_class():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    logits = predict_logits(model, torch.zeros(0, 1, 2, 2))
    assert logits.shape == (0, 3) and logits.dtype == torch.float32


def test_progress_bar_shows_only_for_several_items_when_active():
    """A single batch or an inactive bar returns the items themselves; several batches are wrapped (and still
    yield the same items)."""
    assert progress_bar(range(1), desc="d", unit="batch") == range(1)
    assert progress_bar(range(5), desc="d", unit="batch", active=False) == range(5)
    wrapped = progress_bar(range(5), desc="d", unit="batch")
    assert wrapped is not range(5) and list(wrapped) == [0, 1, 2, 3, 4]
