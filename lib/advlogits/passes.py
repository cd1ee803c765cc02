"""Counting the model passes a run makes, for the benchmark of the book's compute floor.

With ``$ADVLOGITS_COUNT_PASSES`` naming a folder, every model `advlogits.models.build_model` builds counts the
images of its forward passes, per architecture and kind (`KINDS`): with gradients enabled and an input that needs
its gradient (an attack's step, followed by a backward pass to the input), with gradients enabled and an input
that does not (a training step, followed by a backward pass to the parameters), or without gradients (inference).
The kinds cost differently (a training step's backward computes weight gradients, an attack's computes the
first layer's input gradient), so the floor prices each at its own bare cost. AutoAttack's clean check of a batch
runs with gradients enabled and no backward pass: it counts as training steps, one image per attacked image.

Each process writes its counts to ``<folder>/<pid>.json`` as it runs and when it exits; `read` sums a folder.
Unset (the default), nothing is counted and nothing is written.
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from pathlib import Path

import torch
from torch import nn

ENV = "ADVLOGITS_COUNT_PASSES"
KINDS = ("input_gradient", "parameter_gradient", "forward")  # an attack's step, a training step, inference
_FLUSH_EVERY = 500  # hook calls between writes, so a process killed without exiting loses little

_counts: Counter = Counter()
_calls = 0
_registered = False


def watch(model: nn.Module, arch: str) -> nn.Module:
    """``model``, counting its passes when ``$ADVLOGITS_COUNT_PASSES`` is set (unchanged otherwise)."""
    global _registered
    if not os.environ.get(ENV):
        return model
    if not _registered:
        atexit.register(flush)
        _registered = True
    model.register_forward_hook(lambda module, inputs, output: _count(arch, inputs[0]))
    return model


def kind_of(x: torch.Tensor) -> str:
    """The kind of pass (`KINDS`) a forward pass on input ``x`` makes, from the autograd state at the call."""
    if not torch.is_grad_enabled():
        return "forward"
    return "input_gradient" if x.requires_grad else "parameter_gradient"


def _count(arch: str, x: torch.Tensor) -> None:
    global _calls
    _counts[(arch, kind_of(x))] += x.shape[0]
    _calls += 1
    if _calls % _FLUSH_EVERY == 0:
        flush()


def flush() -> None:
    """Write this process's counts to ``$ADVLOGITS_COUNT_PASSES/<pid>.json`` (replacing its previous write)."""
    folder = os.environ.get(ENV)
    if not folder or not _counts:
        return
    path = Path(folder) / f"{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([[arch, kind, n] for (arch, kind), n in sorted(_counts.items())]))
    os.replace(tmp, path)


def read(folder: str | Path) -> dict[str, dict[str, int]]:
    """Every process's counts in ``folder``, summed: ``{arch: {kind: images}}`` for each kind of `KINDS`."""
    total: dict[str, dict[str, int]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        for arch, kind, n in json.loads(path.read_text()):
            total.setdefault(arch, dict.fromkeys(KINDS, 0))[kind] += n
    return total
