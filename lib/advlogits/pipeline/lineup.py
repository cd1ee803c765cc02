"""The book's models, by name: the configs every chapter asks the pipeline for.

One place lists them, so the chapters and a plan of the whole book's work see the same models. Nothing here
enters a store key: renaming a model or moving it between groups never retrains it.
"""

from __future__ import annotations

import dataclasses
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
# C8 pulled apart (profiles with `c8_apart`): each image's confidence replaced by another's, and constant confidence
# at levels other than the teacher's mean (the flattened student is the constant at the mean).
PERMUTED = "permute_confidence"
CONFIDENCE_LEVELS: tuple[float, ...] = (0.5, 0.95)
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
    """One model of the distillation line-up: its name, the part it plays, the claim that reads it, its seed, and
    the seed of the AT teacher whose group it belongs to (students are nested within teachers)."""

    name: str  # row label in tables and figures (the same for every seed of a student)
    role: Role  # "teacher", "baseline" (C6's references), "claim" (C6-C8), "mixed", "control" (ours), "sweep"
    claim: str | None  # the claim whose criterion reads this model ("C6", "C7", "C8"), else None
    config: TrainConfig  # what the store trains and keys it by
    seed: int  # the student seed (the teacher's seed for a teacher)
    teacher_seed: int = 0  # the seed of its teacher group's AT (and ST) teacher


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
    """ST, AT and their seed baselines ST', AT': the same configs with the other seed (chapter 3)."""
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


def teacher_seeds(profile: Profile) -> list[int]:
    """The seeds of the AT (and ST) teachers the students are distilled from: the main seed's, then the others of
    ``profile.seeds``, ``profile.distill_teachers`` in all."""
    ordered = [profile.seed, *(s for s in profile.seeds if s != profile.seed)]
    return ordered[: profile.distill_teachers]


def student_seeds_of(profile: Profile) -> dict[int, tuple[int, ...]]:
    """Each teacher seed's student seeds: ``profile.student_seeds`` split evenly, in order."""
    seeds = teacher_seeds(profile)
    per = len(profile.student_seeds) // len(seeds)
    return {t: tuple(profile.student_seeds[k * per : (k + 1) * per]) for k, t in enumerate(seeds)}


def student_label(kind: str, *, label_corrected: bool = False, confidence: float | None = None) -> str:
    """Row label of the AT teacher manipulated by ``kind`` (e.g. "AT shuffled", "AT-corr shuffled"; "AT confidence
    0.5" for the flattened targets at another confidence than the teacher's mean)."""
    names = {"kd": "KD", **C7_KINDS, **MIXED_KINDS, **C8_KINDS, "argmax": "argmax", PERMUTED: "confidence permuted"}
    if kind not in names:
        fail("kind", f"one of {', '.join(names)}", kind)
    if confidence is not None:
        prefix = LABEL_CORRECTED if label_corrected else "AT"
        return f"{prefix} confidence {confidence:g}"
    if not label_corrected:
        return KD_AT if kind == "kd" else f"AT {names[kind]}"
    return f"{LABEL_CORRECTED} {names[kind]}"


def students_of_seed(
    profile: Profile, seed: int, *, T: float | None = None, teacher_seed: int | None = None
) -> list[Student]:
    """The distillation line-up's students of one student seed and one teacher group (default: the main seed's), in
    table order: C6's baselines and KD-AT, the C7 and C8 students, the mixed mean student, then the controls (AT
    argmax, the label-corrected AT teacher's); with ``profile.c8_apart``, C8 pulled apart too."""
    T = profile.temperature if T is None else T
    t = profile.seed if teacher_seed is None else teacher_seed
    st, at = profile.standard(seed=t), profile.adversarial(seed=t)

    def kd(
        kind: str, *, label_corrected: bool = False, temperature: float = T, confidence: float | None = None
    ) -> TrainConfig:
        config = profile.student(
            teacher=at,
            targets=kind,
            T=temperature,
            label_corrected=label_corrected,
            reference=st if kind == "reorder" else None,
            seed=seed,
        )
        return config if confidence is None else dataclasses.replace(config, confidence=confidence)

    out = [
        Student(HARD, "baseline", "C6", profile.student(teacher=None, seed=seed), seed, t),
        Student(KD_ST, "baseline", "C6", profile.student(teacher=st, T=T, seed=seed), seed, t),
        Student(
            KD_ST_SOFT,
            "baseline",
            "C6",
            profile.student(teacher=st, targets="soften", T=T, reference=at, seed=seed),
            seed,
            t,
        ),
        Student(KD_AT, "claim", "C6", kd("kd"), seed, t),
    ]
    for claim, kinds in (("C7", C7_KINDS), ("C8", C8_KINDS)):
        out += [Student(student_label(k), "claim", claim, kd(k), seed, t) for k in kinds]
    if profile.c8_apart:
        out.append(Student(student_label(PERMUTED), "claim", "C8", kd(PERMUTED), seed, t))
        out += [
            Student(student_label("flatten", confidence=c), "mixed", None, kd("flatten", confidence=c), seed, t)
            for c in CONFIDENCE_LEVELS
        ]
    out += [Student(student_label(k), "mixed", None, kd(k), seed, t) for k in MIXED_KINDS]
    out.append(Student(ARGMAX, "control", None, kd("argmax"), seed, t))
    corrected = dict(label_corrected=True)
    for k in CORRECTED_KINDS:
        # label smoothing of the label-corrected teacher is plain label smoothing of the true labels: a baseline
        role: Role = "baseline" if profile.c8_apart and k == "label_smoothing" else "control"
        out.append(Student(student_label(k, **corrected), role, None, kd(k, **corrected), seed, t))
    if profile.c8_apart:
        out.append(Student(student_label(PERMUTED, **corrected), "control", None, kd(PERMUTED, **corrected), seed, t))
        out += [
            Student(
                student_label("flatten", confidence=c, **corrected),
                "control",
                None,
                kd("flatten", confidence=c, **corrected),
                seed,
                t,
            )
            for c in CONFIDENCE_LEVELS
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
    groups = student_seeds_of(profile)
    out = []
    for t in groups:
        suffix = "" if t == profile.seed else f" (seed {t})"
        out += [
            Student(f"ST teacher{suffix}", "teacher", None, profile.standard(seed=t), t, t),
            Student(f"AT teacher{suffix}", "teacher", None, profile.adversarial(seed=t), t, t),
        ]
    for t, seeds in groups.items():
        for seed in seeds:
            out += students_of_seed(profile, seed, T=T, teacher_seed=t)
    first, at = profile.student_seeds[0], profile.adversarial()
    for temperature in sweep if profile.temperature_sweep else ():
        if temperature != T:
            out += [
                Student(
                    f"{student_label(k)} (T={temperature:g})",
                    "sweep",
                    None,
                    profile.student(teacher=at, targets=k, T=temperature, seed=first),
                    first,
                    profile.seed,
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


MASKING_DEFAULT_KINDS: tuple[str, ...] = ("kd", "shuffle", "spread", "reorder", "mean", "flatten", "label_smoothing")


def masking_checked(profile: Profile, students_: Sequence[Student]) -> list[Student]:
    """The students the gradient-masking checks run on: the first student seed of each teacher group, every student
    kind with ``profile.masking_every_kind``, else KD-AT and the AT teacher's manipulated students."""
    firsts = {seeds[0] for seeds in student_seeds_of(profile).values()}
    default = {student_label(k) for k in MASKING_DEFAULT_KINDS}
    return [
        s
        for s in students_
        if s.seed in firsts and s.role not in ("teacher", "sweep") and (profile.masking_every_kind or s.name in default)
    ]
