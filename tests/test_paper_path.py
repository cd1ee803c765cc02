"""Every chapter through the `paper` profile's code path, on the CPU, so that the GPU path cannot rot.

The paper profile's own data set, architecture and precision (CIFAR-10, PreAct ResNet-18, bf16 autocast) and
chapter 2's RobustBench models run here at a tiny scale: a CIFAR-10 set of 70 random images written in the
real on-disk format (read through ``$ADVLOGITS_DATA_ONLY``, which loads a small set the way ``root=`` does),
random-weight RobustBench checkpoints written where RobustBench looks before downloading, and tiny budgets
passed through the chapters' ``overrides`` parameter. The chapters are executed with papermill in sorted order,
as ``make execute`` does, into a temporary store and executed-claims folder. The numbers mean nothing (random
data, one-batch trainings); the test checks that every chapter runs and that every claim gets its record.

The store is kept in memory (``/dev/shm``) where the machine has room for it: its 58 ResNet-18s come to 2.6 GB, which
a 2-core virtual machine wrote to its ext4 disk at about 250 MB/s, all of it kernel time. The test's plan, run
serially on one thread, took 87.5 s with the store on disk (its 58 trainings, which write the models, 31.3 s) and
78.9 s in memory (21.2 s). What the test checks does not depend on where the store is; the store's atomic writes and
fsyncs are tested on disk elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import torch

from advlogits import paths
from advlogits.chapters import claims
from advlogits.fileio import process_folder, remove_process_folders
from advlogits.synthetic import cifar_batch, write_cifar

from helpers import (
    CHAPTERS,
    execute_chapter,
    robustbench_zoo_model,
    write_robustbench_checkpoint,
)

# Two small CIFAR-10 L-inf zoo entries of different families: a WRN-28-4 (5.8M parameters) and a PreAct ResNet-18.
RB_MODELS = ["Ding2020MMA", "Wong2020Fast"]
N_PER_BATCH, N_TRAIN_BATCHES, N_TEST = 10, 5, 20  # 50 training and 20 test images, every class in every batch

# The paper profile at a tiny scale; its data set, architecture and precision (bf16) are left as they are, and so is
# its line-up of models: every student kind of the decisive design (each kind is a code path of its own; the
# temperature sweep, which this design leaves out, runs in the smoke book), two seeds of teachers and of the eps sweep
# (the seed baselines and C3's fits need two), two sweep radii.
# Every training is one step (16 images, batch 16, one epoch, one PGD step). The sweep's 8/255 model is the AT
# model itself (same images, epochs and radius), so the first sweep seed adds one model and the second three. The
# evaluation subset keeps 16 images (chapter 3's grids show 16). AutoAttack "fast" (APGD-CE + APGD-T; the
# profile's "standard" adds FAB-T and Square) runs on the first two images (chapter 4's intervals need two), for the
# teachers on those they classify correctly (the standard protocol's scope) and for the others on those PGD left
# standing: where an image survives APGD-CE, APGD-T tries its target classes on it with a ResNet, 100 iterations each,
# about 25 s a model with AutoAttack's 9: one target class and 10 iterations (APGD's step-size schedule scaled to
# them) run the same code in a ninetieth of the time (AutoAttack's own settings ran on 7 of the students, 60% of the
# test's time; with one target class, its 100 iterations still took half of chapter 4's). The gradient-masking
# checks run Square with
# 50 queries (the profile's 5,000 run the same code 100 times longer) on 4 images.
# One student seed per teacher: the paper profile's design distils from two AT teachers (every student kind, the
# masking checks on each kind at the first seed of each teacher), and chapter 4's cost is its students (each trained
# and attacked once per seed); how seeds are combined does not depend on the profile (the smoke book runs two).
OVERRIDES = {
    "n_train": 16,
    "n_val": 8,
    "n_eval": 16,
    "n_autoattack": 2,
    "masking_queries": 50,
    "autoattack_version": "fast",
    "autoattack_targets": 1,
    "autoattack_iterations": 10,
    "epochs": 1,
    "adv_epochs": 1,
    "student_epochs": 1,
    "sweep_epochs": 1,
    "sweep_n_train": 16,
    "student_n_train": 16,
    "steps": 1,
    "eval_steps": 1,
    "batch_size": 16,
    "eps_sweep": [4 / 255, 8 / 255],
    "sweep_seeds": [0, 1],  # C3's fits need two seeds; the profile's third adds nothing the path does not run
    "student_seeds": [300, 310],
    "masking_images": 4,
}
CHAPTER_TIMEOUT_S = 900
MEMORY = Path("/dev/shm")  # a tmpfs on Linux
MEMORY_PREFIX = "advlogits-paper-path-"
STORE_ROOM = 6 * 1024**3  # free room (bytes) in MEMORY, and free memory, for the store of about 2.6 GB


def _memory_available() -> int:
    """MemAvailable of /proc/meminfo in bytes (0 where there is no such file)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return 0
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return int(fields.get("MemAvailable", "0 kB").split()[0]) * 1024


@pytest.fixture
def store_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder for the test's store: in memory (`MEMORY`) where it and the machine have `STORE_ROOM`, otherwise
    under tmp_path. The memory folder is removed when the test ends, passed or failed, and a later run removes the
    folder of a run that was killed before it could (`advlogits.fileio.process_folder`)."""
    if MEMORY.is_dir() and os.access(MEMORY, os.W_OK):
        remove_process_folders(MEMORY_PREFIX, parent=MEMORY, only_dead=True)
        if shutil.disk_usage(MEMORY).free >= STORE_ROOM and _memory_available() >= STORE_ROOM:
            with process_folder(MEMORY_PREFIX, parent=MEMORY) as folder:
                yield Path(folder)
            return
    yield tmp_path


def _write_tiny_cifar(root: Path) -> None:
    """data_batch_1..5 and test_batch of random pixels, labels cycling through the ten classes, and batches.meta."""
    batches = {
        f"data_batch_{i}": cifar_batch(N_PER_BATCH, seed=i, labels=[k % 10 for k in range(N_PER_BATCH)])
        for i in range(1, N_TRAIN_BATCHES + 1)
    }
    batches["test_batch"] = cifar_batch(N_TEST, seed=0, labels=[k % 10 for k in range(N_TEST)])
    write_cifar(root, batches)


def _write_robustbench(model_dir: Path) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for name in RB_MODELS:
            write_robustbench_checkpoint(model_dir, name, robustbench_zoo_model(name).state_dict())


def _errors(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [
        f"{o.ename}: {o.evalue}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]


def _glued(notebook: Path) -> dict[str, str]:
    glued = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued[name] = output["data"].get("application/papermill.record/text/plain")
    return glued


@pytest.mark.slow
@pytest.mark.whole_book
def test_every_chapter_runs_the_paper_profile_on_the_cpu(tmp_path: Path, store_folder: Path) -> None:
    home, executed, cifar = store_folder / "store", tmp_path / "executed", tmp_path / "cifar"
    _write_tiny_cifar(cifar)
    _write_robustbench(home / "robustbench")  # chapter 2's model_dir: the store's robustbench/ folder
    executed.mkdir()
    env = {
        **os.environ,
        "ADVLOGITS_HOME": str(home),
        "ADVLOGITS_EXECUTED_DIR": str(executed),
        paths.DATA_ONLY: str(cifar),
        paths.DATA: str(tmp_path / "no-downloads"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "JUPYTER_PREFER_ENV_PATH": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    assert [c.name[:3] for c in CHAPTERS] == ["01_", "02_", "03_", "04_", "05_"]
    for chapter in CHAPTERS:
        out = executed / chapter.name
        parameters = {"overrides": OVERRIDES}
        if chapter.name.startswith("02_"):
            parameters["robustbench_models"] = RB_MODELS
        start = time.perf_counter()
        proc = execute_chapter(chapter, out, env=env, profile="paper", parameters=parameters, timeout=CHAPTER_TIMEOUT_S)
        print(f"{chapter.stem}: {time.perf_counter() - start:.1f} s", flush=True)  # shown with pytest -s
        assert proc.returncode == 0, f"{chapter.name} failed at the paper profile:\n{proc.stderr[-4000:]}"
        assert _errors(out) == [], chapter.name

    # Every trained model has the paper profile's data set, architecture and precision, except chapter 2's linear
    # models (logistic regression on the pixels, in float32 whatever the profile: the proposition reads their weights).
    configs = [json.loads(p.read_text()) for p in (home / "entries").glob("*/config.json")]
    trained = [c for c in configs if "arch" in c]
    linear = [c for c in trained if c["arch"] == "linear"]
    networks = [c for c in trained if c["arch"] != "linear"]
    assert networks and all(
        (c["dataset"], c["arch"], c["precision"]) == ("cifar10", "preact-resnet18", "bf16") for c in networks
    ), networks
    # The paper's recipe: CIFAR-10 training with random crops and flips; adversarial training logs its validation
    # PGD accuracy every epoch (chapter 1 reads it for the overfitting flags); attacks ran in float32 (the
    # evaluations exist for bf16-trained models, and evaluate never wraps a model in autocast: tested elsewhere).
    assert all(c["augment"] == "crop-flip" for c in trained), "every CIFAR-10 model trains with crops and flips"
    adversarial = [
        p.parent
        for p in (home / "entries").glob("*/config.json")
        if json.loads(p.read_text()).get("method") == "adversarial"
    ]
    for entry in adversarial:
        history = json.loads((entry / "history.json").read_text())
        assert len(history["val_pgd_acc"]) == len(history["epoch"]) >= 1
        assert all(0.0 <= v <= 1.0 for v in history["val_pgd_acc"])
    assert adversarial and "overfitting_note" in _glued(executed / "01_standard_vs_adversarial.ipynb")
    assert linear and all((c["dataset"], c["precision"]) == ("cifar10", "fp32") for c in linear), linear
    # AutoAttack really ran on a ResNet, in both of its scopes (an image a model got wrong, or lost to PGD, is not
    # attacked): the teachers' AutoAttack number and the students' worst case.
    evaluations = [json.loads(p.read_text()) for p in (home / "entries").glob("*/results/evaluation-*.json")]
    attacked = {e["autoattack_scope"] for e in evaluations if e.get("n_autoattacked", 0) > 0}
    assert attacked == {"clean-correct", "pgd-survivors"}, attacked
    # Nothing was downloaded: the data came from the tiny set, chapter 2's two RobustBench models from the planted
    # random-weight checkpoints (a missing file would have meant a download attempt, which fails offline).
    assert not (tmp_path / "no-downloads").exists()
    assert sorted(p.name for p in (home / "robustbench" / "cifar10" / "Linf").iterdir()) == sorted(
        f"{name}.pt" for name in RB_MODELS
    )
    note = _glued(executed / "02_logit_distributions.ipynb")["robustbench_note"]
    assert note.strip("'\"").startswith(f"{len(RB_MODELS)} published AT models of the RobustBench zoo"), note
    # Each claim has its record from the chapter that tests it, and the scorecard gathered them all.
    written = {p.stem: [r["id"] for r in json.loads(p.read_text())] for p in (executed / "claims").glob("*.json")}
    assert sorted(i for ids in written.values() for i in ids) == list(claims.CLAIM_IDS), written
    card = json.loads((executed / "scorecard.json").read_text())
    assert [r["id"] for r in card] == list(claims.CLAIM_IDS)
    assert all(r["verdict"] in claims.VERDICTS and r["chapter"] in written for r in card)
    assert all(set(r) >= {"estimate", "ci", "threshold", "n_seeds", "n_images", "holds"} for r in card)
    shutil.rmtree(home)  # 2.6 GB of ResNet weights; on disk, a failed run keeps them for inspection
