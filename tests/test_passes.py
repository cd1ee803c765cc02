"""advlogits.passes: the model passes a run makes, counted per architecture only when asked for."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from advlogits import models, passes


def test_nothing_is_counted_or_written_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(passes.ENV, raising=False)
    model = models.build_model("linear")
    assert not model._forward_hooks
    model(torch.rand(3, 1, 28, 28))
    passes.flush()
    assert passes.read(tmp_path) == {}


def test_a_process_counts_each_kind_of_pass_per_architecture(tmp_path):
    code = """
import torch
import torch.nn.functional as F
from advlogits import models
from advlogits.attacks import pgd
cnn, linear = models.build_model("cnn-small"), models.build_model("linear")
x, y = torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)
F.cross_entropy(cnn(x), y).backward()                     # a training step: 5 images
pgd(cnn, x[:3], y[:3], eps=0.1, alpha=0.05, steps=2)     # an attack: 2 steps of 3 images
with torch.no_grad():
    cnn(x); cnn(x[:2]); linear(x)                         # inference: 5 + 2 images of cnn-small, 5 of linear
"""
    env = {**__import__("os").environ, passes.ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert passes.read(tmp_path) == {
        "cnn-small": {"input_gradient": 6, "parameter_gradient": 5, "forward": 7},
        "linear": {"input_gradient": 0, "parameter_gradient": 0, "forward": 5},
    }
    (written,) = tmp_path.glob("*.json")
    assert json.loads(written.read_text()), "written when the process exited"
    (tmp_path / "2.json").write_text(json.dumps([["linear", "forward", 10]]))
    assert passes.read(tmp_path)["linear"]["forward"] == 15, "processes add up"


def test_the_kind_of_a_pass_follows_autograd_and_the_input():
    x = torch.rand(2, 3)
    assert passes.kind_of(x) == "parameter_gradient"
    assert passes.kind_of(x.clone().requires_grad_(True)) == "input_gradient"
    with torch.no_grad():
        assert passes.kind_of(x.clone().requires_grad_(True)) == "forward"
