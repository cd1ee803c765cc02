"""Sentences that say what a claim's decided comparisons found, for the chapters' prose and the scorecard.

They read the ``checks`` of a claims-registry outcome (`advlogits.chapters.claims.decide_family`), so the words
always follow the numbers of the run that wrote them.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import numbers


def comparisons_sentence(checks: Mapping[str, dict], claim_side: str) -> str:
    """How many of a claim's comparisons hold, e.g. "all 5 comparisons lie below 0 (after Holm's correction)" or
    "3 of 5 comparisons lie below 0 (after Holm's correction); inconclusive: ...; not reproduced: ..."."""
    tested = {name: c for name, c in checks.items() if "p_claim_holm" in c}
    held = [name for name, c in tested.items() if c["verdict"] == "reproduced"]
    n = len(tested)
    if n and len(held) == n:
        return f"all {n} comparisons lie {claim_side} (after Holm's correction)"
    parts = [f"{len(held)} of {n} comparisons lie {claim_side} (after Holm's correction)"]
    for verdict in ("inconclusive", "not reproduced"):
        names = [name for name, c in tested.items() if c["verdict"] == verdict]
        if names:
            parts.append(f"{verdict}: {', '.join(names)}")
    return "; ".join(parts)


def c3_sentence(checks: Mapping[str, dict]) -> str:
    """What C3's proportionality checks found, family by family, in one or two sentences."""
    families = [name.split(":")[0] for name in checks if name.endswith(": intercept contains 0")]
    sentences = []
    for family in families:
        intercept = checks[f"{family}: intercept contains 0"]
        ratios = checks[f"{family}: S / P constant across radii"]
        constant = ratios["estimate"]
        outside = [r for r, (_, lo, hi) in ratios["ratios"].items() if not lo <= constant <= hi]
        said_intercept = "contains 0" if intercept["verdict"] == "reproduced" else "excludes 0"
        said_ratios = (
            "every radius's ratio S / P has an interval containing the constant"
            if not outside
            else f"the ratio S / P at eps {outside[0]} has an interval excluding the constant"
            if len(outside) == 1
            else f"the ratios S / P at eps {', '.join(outside)} have intervals excluding the constant"
        )
        sentences.append(f"For the {family}, the intercept's interval {said_intercept} and {said_ratios}.")
    return " ".join(sentences)


def removal_sentence(rows: Mapping[str, Mapping]) -> str:
    """C7's or C8's students, each with its contrast (KD - student - half the gain, points, 95% interval) and the
    share of the gain it removes: "shuffled: -12.3 [-18.0, -6.6] points (removes 10% of the gain); ..."."""
    parts = []
    for name, row in rows.items():
        c = row["contrast"]
        ratio = row["share"][0]
        no_gain = ratio != ratio or row["gain"].estimate <= 0
        if no_gain:
            share = "no gain to remove"
        elif ratio < 0:
            share = "more robust than KD itself"
        else:
            share = f"removes {100 * ratio:.0f}% of the gain"
        parts.append(
            f"{name}: {numbers.estimate(c.estimate, (c.low, c.high), digits=1, scale=100, unit=' points')} ({share})"
        )
    return "; ".join(parts)


def relabelling_sentence(argmax_share: float | None, corrected_share: float | None) -> str:
    """What the two controls say about the relabelling, no stronger than their numbers: the argmax student shows the
    relabelling is enough for part of the gain, the label-corrected teacher's student that the logits carry part of
    it without the relabelling; where both keep much of it, the two overlap and neither accounts for it alone."""
    if argmax_share is None or corrected_share is None:
        return "KD-AT has no gain over the best baseline, so the controls have nothing to divide."
    overlap = (
        "the two overlap: neither accounts for the gain alone"
        if argmax_share + corrected_share > 1
        else "together they account for at most the whole gain"
    )
    return (
        f"A student trained only on the AT teacher's hard predictions keeps {numbers.percent(argmax_share)} of the "
        f"KD-AT student's gain, and the label-corrected teacher's student (the relabelling undone) keeps "
        f"{numbers.percent(corrected_share)} of it: the relabelling is enough for "
        f"{'most' if argmax_share >= 0.5 else 'part'} of the gain, the logits carry "
        f"{'most' if corrected_share >= 0.5 else 'part'} of it without the relabelling, and "
        f"{overlap}."
    )
