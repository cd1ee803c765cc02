"""GPU check: the paper profile's training and attack throughput, bf16 against fp32, and its GPU-hours.

What is measured, on one CUDA device, with the ``paper`` profile's hyper-parameters (batch size 128, learning rate,
PGD-AT eps 8/255, alpha 2/255, 10 steps, crop-flip augmentation; evaluation PGD of 20 steps of 2/255):

* images per second of a standard-training epoch and of a PGD-10 adversarial-training epoch of PreAct ResNet-18
  (``advlogits.models.build_for("preact-resnet18", "cifar10")``), each in fp32, bf16 and bf16 + torch.compile:
  the library's ``train_standard`` / ``train_adversarial`` called as the book calls them, first on a few warm-up
  batches (for compile: while it compiles), then, timed between two device synchronisations, on a fixed number of
  batches (`Sizes`); a compiled graph built during the warm-up is reused by the timed call (``recompiled`` says if
  it was not);
* images per second of fp32 inference (``predict_logits``), of PGD-20 on a batch of 500 (``attack_correct`` as the
  evaluation calls it, without early stopping: every image takes every step) and of AutoAttack's fast version
  (APGD-CE + APGD-T, ``autoattack_correct``) on a batch of 500 labelled with the model's own predictions, so that
  every image is attacked; ``robust_fraction`` is the share that survives it;
* the peak GPU memory of each measurement (``torch.cuda.max_memory_allocated``, reset before its warm-up);
* the agreement of a bf16-trained and an fp32-trained model: the same seed, data order and initial weights, a few
  hundred SGD steps of standard training each way on the synthetic data, compared on held-out synthetic images
  (both evaluated in fp32, as the book evaluates): top-1 agreement and mean absolute logit difference;
* with real Fashion-MNIST at hand (``$ADVLOGITS_DATA_ONLY``, ``$ADVLOGITS_DATA``, Debian's folder or the data
  home; nothing is downloaded), the same for the ``cpu`` profile's model (cnn-small, fp32): epoch rates of standard
  and adversarial training and a bf16 agreement on real images;
* an estimate of the ``paper`` profile's GPU-hours: every unit of ``book_plan(resolve("paper"))`` priced from the
  rates above (see `paper_estimate`), summed, in hours and per kind of unit.

The CIFAR-format data are synthetic (the GPU machine has no data sets and no internet): random uint8 images, each
drawn around a random low-frequency prototype of its class (so that the task is learnable), written in the real
CIFAR-10 pickle format into a temporary folder by ``advlogits.synthetic`` (the tests' writer too) and read back
through ``advlogits.data.load_dataset(root=...)``. The cost of a dense network does not depend on what its images
show.

Expected time on one H200 (an estimate: not measured yet): about 3 minutes, at most about 4, well inside 5. Most of
it is torch.compile's first compilations (about a minute for the training graph and as much for the attack's
eval-mode graph; on this project's 2-core CPU they took 45 and 30 s); each eager measurement takes seconds (10
warm-up and 60 timed batches of 128 for a standard epoch, 10 and 20 for PGD-AT, 500 images for PGD-20 and for
AutoAttack, two trainings of 320 steps for the bf16 agreement). The compiled measurements run last and are skipped,
with a note, when the run has used too much of ``--budget-s`` (default 240 s): the first needs 120 s left, the
second 1.5 times the first one's compile time. A failing torch.compile (no Triton, no C compiler, ...) or
AutoAttack (the package missing) is recorded in ``not_measured``, not raised, and the estimate then uses what was
measured (see `paper_estimate`).
Progress lines go to stderr, the JSON result and the summary to stdout.

Without a CUDA device (or with ``--quick``) the same steps run at a tiny size (batches of 8 images, 2 timed
batches, PGD-2, AutoAttack on 2 images, torch.compile skipped unless ``--compile yes``): under a minute on a CPU,
so a test keeps the script working; its numbers mean nothing.

Run: ``python -m benchmarks.gpu`` (``make gpu-check``; ``--help`` for the flags); writes ``_build/bench/gpu.json``.

The parts: `device` (the clock, timing between synchronisations, peak memory, the failure guard), `measure` (the
sizes and each measurement), `estimate` (the GPU-hours), `run` (the steps of a run, its result and summary).
"""

from benchmarks.gpu.device import guarded
from benchmarks.gpu.estimate import paper_estimate
from benchmarks.gpu.run import main

__all__ = ["guarded", "main", "paper_estimate"]
