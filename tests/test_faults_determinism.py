"""Fault injection: the same profile and seed give byte-identical metrics files, another seed different ones.

Three processes at once train and evaluate the smoke profile's AT model in three fresh stores
(`fault_workers.worker_evaluate`): two with the same seed, one with another.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fault_workers import METRICS, WORKER_TIMEOUT_S, worker_command

pytestmark = pytest.mark.faults


@pytest.mark.slow
def test_same_profile_and_seed_give_byte_identical_metrics_files(tmp_path):
    """The smoke profile's AT model trained and evaluated in three fresh stores by three processes at once."""
    runs = {name: (tmp_path / name, seed) for name, seed in (("first", 0), ("again", 0), ("other-seed", 1))}
    procs = {
        name: subprocess.Popen(
            worker_command("evaluate", {"root": str(root), "seed": seed}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (root, seed) in runs.items()
    }
    entries = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
        assert proc.returncode == 0, err[-3000:]
        entries[name] = Path(json.loads(out.splitlines()[-1])["entry"])

    def metrics(name: str, kind: str = "evaluation") -> bytes:
        (path,) = (entries[name] / "results").glob(f"{kind}-*.json")
        return path.read_bytes()

    def history(name: str) -> dict:
        stored = json.loads((entries[name] / "history.json").read_text())
        return {key: stored[key] for key in METRICS}  # without the wall-clock seconds

    assert metrics("first") == metrics("again"), "the evaluation JSON (clean, PGD-CE, PGD-CW, AutoAttack, per image)"
    assert metrics("first") != metrics("other-seed")
    assert b"pgd_cw_correct" in metrics("first") and b"robust_correct" in metrics("first"), "every attack, per image"
    assert (entries["first"] / "model.pt").read_bytes() == (entries["again"] / "model.pt").read_bytes()
    assert history("first") == history("again") != history("other-seed")
