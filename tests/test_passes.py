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


def test_a_process_counts_forward_and_forward_backward_images_per_architecture(tmp_path):
    code = """
import torch
from advlogits import models
cnn, linear = models.build_model("cnn-small"), models.build_model("linear")
x = torch.rand(5, 1, 28, 28, requires_grad=True)
cnn(x).sum().backward()          # 5 images with gradients
with torch.no_grad():
    cnn(x); cnn(x[:2]); linear(x)  # 5 + 2 images of cnn-small, 5 of linear, without
"""
    env = {**__import__("os").environ, passes.ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert passes.read(tmp_path) == {
        "cnn-small": {"forward_backward": 5, "forward": 7},
        "linear": {"forward_backward": 0, "forward": 5},
    }
    (written,) = tmp_path.glob("*.json")
    assert json.loads(written.read_text()), "written when the process exited"
    (tmp_path / "2.json").write_text(json.dumps([["linear", "forward", 10]]))
    assert passes.read(tmp_path)["linear"]["forward"] == 15, "processes add up"
