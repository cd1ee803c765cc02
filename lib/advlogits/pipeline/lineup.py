"""The book's models, by name: the configs every chapter asks the pipeline for.

One place lists them, so the chapters and a plan of the whole book's work see the same models. Nothing here
enters a store key: renaming a model or moving it between groups never retrains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..checks import fail
from ..profiles import Profile
from ..train import TrainConfig

Role = Literal["teacher", "baseline", "claim", "mixed", "control", "sweep"]

HARD, KD_ST, KD_ST_SOFT, KD_AT = "hard labels", "KD-ST", "KD-ST soft", "KD-AT"
C7_KINDS: dict[str, str] = {"shuffle": "shuffled", "spread": "spread", "reorder": "ST order"}  # kind -> row label
MIXED_KINDS: dict[str, str] = {"mean": "mean"}  # removes class information and changes the confidence: reported
C8_KINDS: dict[str, str] = {"flatten": "flattened", "label_smoothing": "label smoothing"}
TWO_BY_TWO: dict[str, tuple[bool, bool]] = {  # kind -> (per-image confidence kept, incorrect-class information kept)
    "kd": (True, True),
    "spread": (True, False),
    "flatten": (False, True),
    "label_smoothing": (False, False),
}
ARGMAX = "AT argmax"  # control (i): the AT teacher's predictions as hard labels
LABEL_CORRECTED = "AT-corr"  # control (ii): the label-corrected AT teacher, as a row-label prefix
CORRECTED_KINDS: tuple[str, ...] = ("kd", "shuffle", "spread", "reorder", "flatten", "label_smoothing")
SWEEP_TEMPERATURES: tuple[float, ...] = (1.0, 4.0)  # the temperature sweep (KD-AT and one manipulation)
SWEEP_KIND = "shuffle"  # the manipulation repeated in the temperature sweep (first student seed only)
# The RobustBench CIFAR-10 L-inf models chapter 2 analyses at the paper profile when no list is given.
PAPER_ROBUSTBENCH_MODELS: tuple[str, ...] = (
    "Engstrom2019Robustness",
    "Rice2020Overfitting",
    "Carmon2019Unlabeled",
    "Gowal2020Uncovering_28_10_extra",
)


@dataclass(frozen=True)
class Student:
    """One model of the distillation line-up: its name, the part it plays, the claim that reads it, its seed."""

    name: str  # row label in tables and figures (the same for every seed of a student)
    role: Role  # "teacher", "baseline" (C6's references), "claim" (C6-C8), "mixed", "control" (ours), "sweep"
    claim: str | None  # the claim whose criterion reads this model ("C6", "C7", "C8"), else None
    config: TrainConfig  # what the store trains and keys it by
    seed: int  # the student seed (the teacher's seed for a teacher)


def teachers(profile: Profile) -> dict[str, TrainConfig]:
    """The ST and AT models of the profile's main seed: the pair every chapter compares."""
    return {"ST": profile.standard(), "AT": profile.adversarial()}


def other_seed(profile: Profile) -> int:
    """The seed of the seed baselines ST' and AT': the profile's first seed other than its main one."""
    seed = next((s for s in profile.seeds if s != profile.seed), None)
    if seed is None:
        fail(
            "seeds",
            f"at least one seed other than seed={profile.seed} (the seed baselines need it)",
            profile.seeds,
            hint="pass e.g. overrides={'seeds': (0, 1)}",
        )
    return seed


def seed_baselines(profile: Profile) -> dict[str, TrainConfig]:
    """ST, AT and their seed twins ST', AT': the same configs with the other seed (chapter 3)."""
    twin = other_seed(profile)
    return {**teachers(profile), "ST'": profile.standard(seed=twin), "AT'": profile.adversarial(seed=twin)}


def eps_sweep(profile: Profile, *, seed: int | None = None) -> dict[float, TrainConfig]:
    """The eps-sweep networks of one seed (default: the main one) by radius, with the standard model of the same
    budget at eps = 0 (chapter 2)."""
    return {
        0.0: profile.sweep(0.0, seed=seed),
        **{float(eps): profile.sweep(eps, seed=seed) for eps in profile.eps_sweep},
    }


def eps_sweeps(profile: Profile) -> dict[int, dict[float, TrainConfig]]:
    """`eps_sweep` for every seed of ``profile.sweep_seeds`` (C3's fits are per seed), the main seed first."""
    return {seed: eps_sweep(profile, seed=seed) for seed in profile.sweep_seeds}


def linear_radii(profile: Profile) -> list[float]:
    """The radii of the linear models of chapter 2: 0, the sweep's radii and the profile's eps."""
    return sorted({0.0, *map(float, profile.eps_sweep), float(profile.eps)})


def linear_models(profile: Profile, *, seed: int | None = None) -> dict[float, TrainConfig]:
    """The linear models of chapter 2 of one seed (default: the main one) by radius (0 = standard training)."""
    return {eps: profile.linear(eps, seed=seed) for eps in linear_radii(profile)}


def linear_model_seeds(profile: Profile) -> dict[int, dict[float, TrainConfig]]:
    """`linear_models` for every seed of ``profile.sweep_seeds``, the main seed first."""
    return {seed: linear_models(profile, seed=seed) for seed in profile.sweep_seeds}


def student_label(kind: str, *, label_corrected: bool = False) -> str:
    """Row label of the AT teacher manipulated by ``kind`` (e.g. "AT shuffled", "AT-corr shuffled")."""
    names = {"kd": "KD", **C7_KINDS, **MIXED_KINDS, **C8_KINDS, "argmax": "argmax"}
    if kind not in names:
        fail("kind", f"one of {', '.join(names)}", kind)
    if not label_corrected:
        return KD_AT if kind == "kd" else f"AT {names[kind]}"
    return f"{LABEL_CORRECTED} {names[kind]}"


def students_of_seed(profile: Profile, seed: int, *, T: float | None = None) -> list[Student]:
    """The distillation line-up's students of one student seed, in table order: C6's baselines and KD-AT, the C7
    and C8 students, the mixed mean student, then the controls (AT argmax, the label-corrected AT teacher's)."""
    T = profile.temperature if T is None else T
    st, at = profile.standard(), profile.adversarial()

    def kd(kind: str, *, label_corrected: bool = False, temperature: float = T) -> TrainConfig:
        return profile.student(
            teacher=at,
            targets=kind,
            T=temperature,
            label_corrected=label_corrected,
            reference=st if kind == "reorder" else None,
            seed=seed,
        )

    out = [
        Student(HARD, "baseline", "C6", profile.student(teacher=None, seed=seed), seed),
        Student(KD_ST, "baseline", "C6", profile.student(teacher=st, T=T, seed=seed), seed),
        Student(
            KD_ST_SOFT,
            "baseline",
            "C6",
            profile.student(teacher=st, targets="soften", T=T, reference=at, seed=seed),
            seed,
        ),
        Student(KD_AT, "claim", "C6", kd("kd"), seed),
    ]
    for claim, kinds in (("C7", C7_KINDS), ("C8", C8_KINDS)):
        out += [Student(student_label(k), "claim", claim, kd(k), seed) for k in kinds]
    out += [Student(student_label(k), "mixed", None, kd(k), seed) for k in MIXED_KINDS]
    out.append(Student(ARGMAX, "control", None, kd("argmax"), seed))
    out += [
        Student(student_label(k, label_corrected=True), "control", None, kd(k, label_corrected=True), seed)
        for k in CORRECTED_KINDS
    ]
    return out


def students(profile: Profile, *, T: float | None = None, sweep: Sequence[float] = SWEEP_TEMPERATURES) -> list[Student]:
    """The distillation chapter's models: the two teachers, every student for each of ``profile.student_seeds``,
    then the temperature sweep (first student seed only, an exploratory side result).

    ``T`` is the KD temperature of every student (default: the profile's ``temperature``); ``sweep`` adds KD-AT
    and the `SWEEP_KIND` student at each other temperature. Teachers are the profile's ST and AT models (seed
    ``profile.seed``), the same ones chapter 1 trains. The claims read robust accuracy on AutoAttack's images, so a
    profile with ``n_autoattack == 0`` is refused here, before anything is trained.
    """
    if profile.n_autoattack < 1:
        fail(
            "n_autoattack",
            ">= 1 for the distillation line-up (the claims' robust accuracy is measured on AutoAttack's images)",
            profile.n_autoattack,
            hint="keep the profile's value",
        )
    T = profile.temperature if T is None else T
    out = [
        Student("ST teacher", "teacher", None, profile.standard(), profile.seed),
        Student("AT teacher", "teacher", None, profile.adversarial(), profile.seed),
    ]
    for seed in profile.student_seeds:
        out += students_of_seed(profile, seed, T=T)
    first, at = profile.student_seeds[0], profile.adversarial()
    for temperature in sweep:
        if temperature != T:
            out += [
                Student(
                    f"{student_label(k)} (T={temperature:g})",
                    "sweep",
                    None,
                    profile.student(teacher=at, targets=k, T=temperature, seed=first),
                    first,
                )
                for k in ("kd", SWEEP_KIND)
            ]
    keys = [(s.name, s.seed) for s in out]
    if len(set(keys)) != len(keys):
        fail(
            "sweep",
            "temperatures that give unique student names",
            tuple(sweep),
            hint="is a sweep temperature repeated?",
        )
    return out
