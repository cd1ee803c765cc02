"""The paper profile's GPU-hours: every unit of ``book_plan(p)`` priced from the GPU check's measured rates.

Prices (seconds), with ``f`` the fp32 inference rate, ``s`` the seconds of one PGD step per image (the PGD
measurement's time per image over its steps) and ``a`` the seconds of one APGD run per image (AutoAttack's time per
image over 1 + 9 x its robust fraction: APGD-CE on every image, APGD-T's 9 targets on the survivors; 100 PGD steps
where AutoAttack was not measured). A training rate that was not measured (torch.compile failed) is replaced by the
same method's uncompiled one, with a note:

* model: per epoch, its images at the training rate of its method and precision (distillation and the hard-label
  students: standard training; adversarial: PGD-AT, scaled by (steps + 1) / (measured steps + 1)), plus ``n_val``
  images of inference and, for PGD-AT, PGD on them (its per-epoch validation); linear models at the inference rate
  (a generous bound);
* evaluation: clean inference, PGD with the CE and the CW loss (``eval_steps`` x ``eval_restarts``, every image
  taking every step) on ``n_eval`` images (``n_autoattack`` for the pgd-survivors scope), and AutoAttack on
  ``n_autoattack``: ``hours`` prices the worst case, every image surviving every sub-attack (fast: 1 + 9 APGD runs;
  standard: also FAB-T's 9 targets, priced as 9 APGD runs, and Square's 5,000 queries at the inference rate);
  ``hours_low`` the best case, every image broken by APGD-CE;
* train-logits, eval-logits, robustbench-logits: inference on their images; gap-gradients: one gradient per image;
  margin-drops: one gradient and a PGD per image; linear-check: a PGD per image, wrong class and norm
  (`margins.CHECK_STEPS`) at the inference rate; masking: PGD at each radius with both losses, Square (1,000
  queries) and a transfer PGD on its 100 images.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from advlogits import profiles
from advlogits.autoattack import AA_SQUARE_QUERIES
from advlogits.data import dataset_info, num_classes
from advlogits.margins import CHECK_STEPS
from advlogits.pipeline.plan import Unit, book_plan
from advlogits.pipeline.stored import MASKING_RADII
from benchmarks.gpu.measure import training_key

AA_TARGETS = 9  # AutoAttack's target classes for APGD-T and FAB-T on 10 classes
APGD_ITERATIONS = 100  # AutoAttack's iterations per APGD run (its standard setting)
ASSUMPTIONS = (
    "hours: AutoAttack's worst case (every image survives every sub-attack); hours_low: every image broken "
    "by APGD-CE. PGD always takes every step (the book's early stopping only saves time). One GPU, "
    "units run one after the other; start-up, data loading and the store's writes are not counted."
)


@dataclass(frozen=True)
class Prices:
    """The measured rates a unit is priced with, and the notes on what had to stand in for a missing one."""

    p: profiles.Profile
    training: dict[str, float]  # images per second of each training measurement, by `training_key`
    f: float  # images per second of fp32 inference
    s: float  # seconds of one PGD step per image
    a: float  # seconds of one APGD run per image
    measured_steps: int  # PGD steps of the measured adversarial training
    notes: set[str] = field(default_factory=set)

    @classmethod
    def measured(cls, p: profiles.Profile, measurements: dict[str, dict[str, Any]]) -> Prices:
        """The prices that ``measurements`` (the GPU check's) give for profile ``p``."""
        training = {
            name: m["images_per_s"]
            for name, m in measurements.items()
            if name.startswith(("standard_", "adversarial_"))
        }
        pgd = measurements["pgd_fp32"]
        s = 1 / pgd["images_per_s"] / pgd["steps"]
        autoattack = measurements.get("autoattack_fast_fp32")
        if autoattack is not None:
            a, notes = 1 / autoattack["images_per_s"] / (1 + AA_TARGETS * autoattack["robust_fraction"]), set()
        else:
            a, notes = (
                APGD_ITERATIONS * s,
                {f"AutoAttack not measured: an APGD run priced as {APGD_ITERATIONS} PGD steps"},
            )
        return cls(
            p,
            training,
            f=measurements["inference_fp32"]["images_per_s"],
            s=s,
            a=a,
            measured_steps=measurements["adversarial_fp32"]["pgd_steps"],
            notes=notes,
        )

    def train_seconds_per_image(self, config: Any) -> float:
        """Seconds per training image of ``config``'s method and precision (a stand-in, with a note, if unmeasured)."""
        key = training_key(config.method, config.precision, config.compile)
        if key not in self.training:
            fallback = key.removesuffix("_compile")
            fallback = fallback if fallback in self.training else training_key(config.method, "fp32", False)
            self.notes.add(f"{key} not measured: priced at {fallback}")
            key = fallback
        per_image = 1 / self.training[key]
        if config.method == "adversarial":
            per_image *= (config.steps + 1) / (self.measured_steps + 1)
        return per_image

    def autoattack(self, n: int) -> tuple[float, float]:
        """(worst-case, best-case) seconds of AutoAttack on ``n`` images."""
        standard = self.p.autoattack_version == "standard"
        runs = 1 + AA_TARGETS + (AA_TARGETS if standard else 0)
        square = AA_SQUARE_QUERIES / self.f if standard else 0.0
        return n * (runs * self.a + square), n * self.a

    def model(self, c: Any) -> tuple[float, float]:
        """Seconds of training the model of config ``c``, with its per-epoch validation."""
        images = c.n_train if c.n_train is not None else dataset_info(c.dataset).train_size
        if c.arch == "linear":
            per_epoch = (images + c.n_val) / self.f
        else:
            per_epoch = images * self.train_seconds_per_image(c) + c.n_val / self.f
            if c.method == "adversarial":
                per_epoch += c.n_val * c.steps * self.s
        return (c.epochs * per_epoch,) * 2

    def evaluation(self, unit: Unit) -> tuple[float, float]:
        """(worst-case, best-case) seconds of an evaluation: clean inference, PGD with two losses, AutoAttack."""
        p = self.p
        scope = "clean-correct"
        with contextlib.suppress(Exception):
            scope = unit.result(None).params["autoattack_scope"]
        n = p.n_eval if scope == "clean-correct" else p.n_autoattack
        attacks = n / self.f + 2 * n * p.eval_steps * p.eval_restarts * self.s
        high, low = self.autoattack(p.n_autoattack)
        return attacks + high, attacks + low

    def other(self, kind: str) -> float:
        """Seconds of a unit that neither trains nor evaluates, by its kind."""
        p, f, s = self.p, self.f, self.s
        if kind == "train-logits":
            return (p.student_n_train if p.student_n_train is not None else dataset_info(p.dataset).train_size) / f
        if kind in ("eval-logits", "robustbench-logits"):
            return p.n_eval / f
        if kind == "gap-gradients":
            return p.n_eval * s
        if kind == "linear-check":  # a PGD per image, class and norm on a linear model, priced as inference
            return p.n_eval * (num_classes(p.dataset) - 1) * sum(CHECK_STEPS.values()) / f
        if kind == "margin-drops":
            return p.n_eval * (1 + p.eval_steps * p.eval_restarts) * s
        if kind == "masking":
            n = min(p.masking_images, p.n_eval)
            radii = len({min(r * p.eps, 0.5) for r in MASKING_RADII} | {0.5})
            return n * (2 * radii + 1) * p.eval_steps * s + n * (p.masking_queries + 2) / f
        self.notes.add(f"kind {kind!r} has no price here: priced as inference on n_eval images")
        return p.n_eval / f

    def cost(self, unit: Unit) -> tuple[float, float]:
        """(worst-case seconds, best-case seconds) of one unit."""
        if unit.kind == "model":
            return self.model(unit.config)
        if unit.kind == "evaluation":
            return self.evaluation(unit)
        return (self.other(unit.kind),) * 2


def paper_estimate(p: profiles.Profile, measurements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """GPU-hours of every unit of ``book_plan(p)``, priced from ``measurements`` (see the module's docstring); in
    hours, in total and per kind of unit, with the rates used and the notes on what stood in for what."""
    prices = Prices.measured(p, measurements)
    units = book_plan(p)
    per_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"units": 0, "hours": 0.0, "hours_low": 0.0})
    for unit in units:
        high, low = prices.cost(unit)
        entry = per_kind[unit.kind]
        entry["units"] += 1
        entry["hours"] += high / 3600
        entry["hours_low"] += low / 3600
    return {
        "profile": p.name,
        "units": len(units),
        "hours": sum(k["hours"] for k in per_kind.values()),
        "hours_low": sum(k["hours_low"] for k in per_kind.values()),
        "per_kind": dict(per_kind),
        "rates": {
            "training_images_per_s": prices.training,
            "inference_images_per_s": prices.f,
            "pgd_step_s_per_image": prices.s,
            "apgd_run_s_per_image": prices.a,
            "measured_adversarial_steps": prices.measured_steps,
            "autoattack_version": p.autoattack_version,
        },
        "notes": sorted(prices.notes) + [ASSUMPTIONS],
    }
