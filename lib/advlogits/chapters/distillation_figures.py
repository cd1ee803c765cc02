"""Chapter 4's figures: every student's robust accuracy, and the contrast that decides each manipulated student,
one panel per teacher group, each student against its own threshold."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ..inference import seed_image_interval
from ..pipeline.lineup import student_label
from . import comparisons, figures, style
from .removal import manipulated


def removal_figure(rows: Mapping[str, Mapping]) -> Figure:
    """`removal_rows`' contrasts (points), one panel per teacher group, rows shared: the AT teacher's students in
    vermillion, the label-corrected reading's in green; dashed line at 0 (the C7 and C8 threshold)."""
    panels: dict[str, dict[str, tuple[float, float, float]]] = {}
    colors = {}
    for row in rows.values():
        c = row["contrast"]
        panels.setdefault(row["teacher"], {})[row["student"]] = (100 * c.estimate, 100 * c.low, 100 * c.high)
        colors[row["student"]] = style.OKABE_ITO["green" if row["label_corrected"] else "vermillion"]
    return figures.interval_panels(panels, xlabel="KD - student - half the gain (points)", threshold=0.0, colors=colors)


ROLE_COLORS = {
    "baseline": style.OKABE_ITO["blue"],
    "claim": style.OKABE_ITO["vermillion"],
    "mixed": style.OKABE_ITO["purple"],
    "control": style.OKABE_ITO["green"],
}


def _thresholds(outcomes: Mapping[str, np.ndarray]) -> dict[bool, float]:
    """The C7/C8 threshold of one teacher group, KD minus half its gain over the best baseline, for the AT teacher's
    students (False) and, where the group has them, the label-corrected reading's (True), held against its own KD
    student and its own gain."""
    out = {}
    for corrected in (False, True):
        reference = student_label("kd", label_corrected=corrected)
        if reference in outcomes:
            gain = float(comparisons.gain_values(outcomes, reference=reference).mean())
            out[corrected] = float(outcomes[reference].mean()) - comparisons.REMOVED_SHARE * gain
    return out


def robust_figure(groups: Mapping[str, Mapping[str, np.ndarray]], *, roles: Mapping[str, str]) -> Figure:
    """Dot-and-whisker, one panel per teacher group (``groups``: `robust_outcomes_by_teacher`), rows shared: each
    student's robust accuracy (%), one dot per seed and the mean with its 95% seed-and-image interval, coloured by
    role. Dotted line: the group's best C6 baseline; dashed ticks on each manipulated student's row: the threshold it
    is held against (KD minus half the gain: KD-AT's for the AT teacher's students, the label-corrected KD student's
    for the corrected reading's)."""
    names = list(dict.fromkeys(name for outcomes in groups.values() for name in outcomes))
    fig, axes = style.figure(1.3 + 0.3 * len(names), ncols=len(groups), sharey=True, sharex=True, squeeze=False)
    for ax, (label, outcomes) in zip(axes[0], groups.items()):
        thresholds = _thresholds(outcomes)
        held_against = {n: c for c in thresholds for n in manipulated(outcomes, label_corrected=c)}
        for row, name in enumerate(names):
            if name not in outcomes:
                continue
            c = ROLE_COLORS.get(roles.get(name, ""), "black")
            per_seed = 100 * outcomes[name].mean(axis=1)
            ax.scatter(per_seed, np.full(len(per_seed), row), s=12, color=c, alpha=0.45, linewidths=0, zorder=2)
            e = seed_image_interval(outcomes[name])
            xerr = [[100 * (e.estimate - e.low)], [100 * (e.high - e.estimate)]]
            ax.errorbar(100 * e.estimate, row, xerr=xerr, fmt="o", color=c, markersize=4, capsize=2, zorder=3)
            if name in held_against:
                x = 100 * thresholds[held_against[name]]
                ax.vlines(x, row - 0.45, row + 0.45, color="black", linestyle="--", linewidth=1, zorder=1)
        best = float(outcomes[comparisons.best_baseline(outcomes)].mean())
        ax.axvline(100 * best, color="grey", linestyle=":", linewidth=1.2)
        ax.set(title=label, xlabel="robust accuracy (%)" if len(groups) == 1 else "", xlim=(0, None))
        ax.locator_params(axis="x", nbins=4)
        ax.grid(axis="y", visible=False)
    if len(groups) > 1:
        fig.supxlabel("robust accuracy, worst case over all attacks (%)", fontsize=style.FONT_PT)
    axes[0][0].set_yticks(range(len(names)), names)
    axes[0][0].invert_yaxis()
    for role, c in ROLE_COLORS.items():
        axes[0][0].plot([], [], "o", color=c, label=role)
    axes[0][0].plot([], [], ":", color="grey", label="best C6 baseline")
    axes[0][0].plot([], [], "--", color="black", label="C7/C8 threshold")
    fig.legend(loc="outside upper center", ncols=3)
    return fig
