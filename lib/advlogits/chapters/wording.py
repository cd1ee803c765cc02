"""Sentences that say what a claim's decided comparisons found, for the chapters' prose and the scorecard.

They read the ``checks`` of a claims-registry outcome (`advlogits.chapters.verdicts.decide_family`), so the words
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


Shares = float | Mapping[str, float] | None


def _shares(value: Shares) -> dict[str, float] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return None if not value or any(v is None for v in value.values()) else dict(value)
    return {"": float(value)}


def shares_text(shares: Mapping[str, float]) -> str:
    """Shares of the gain in prose: "62%", or "62% (AT teacher) and 58% (AT teacher (seed 1))"."""
    if len(shares) == 1:
        return numbers.percent(next(iter(shares.values())))
    return numbers.join_words([f"{numbers.percent(v)} ({label})" for label, v in shares.items()])


def _most_or_part(shares: Mapping[str, float]) -> str:
    if all(v >= 0.5 for v in shares.values()):
        return "most"
    if all(v < 0.5 for v in shares.values()):
        return "part"
    return "most or part (depending on the teacher)"


def relabelling_sentence(argmax_share: Shares, corrected_share: Shares) -> str:
    """What the two controls say about the relabelling, no stronger than their numbers: the argmax student shows the
    relabelling is enough for part of the gain, the label-corrected teacher's student that the logits carry part of
    it without the relabelling; where both keep much of it, the two overlap and neither accounts for it alone. Each
    share is one number, or one per teacher group (teacher label -> share)."""
    argmax, corrected = _shares(argmax_share), _shares(corrected_share)
    if argmax is None or corrected is None:
        return "KD-AT has no gain over the best baseline, so the controls have nothing to divide."
    total = [argmax[k] + corrected[k] for k in argmax if k in corrected]
    overlap = (
        "the two overlap: neither accounts for the gain alone"
        if all(t > 1 for t in total)
        else "together they account for at most the whole gain"
        if all(t <= 1 for t in total)
        else "whether the two overlap depends on the teacher"
    )
    return (
        f"A student trained only on the AT teacher's hard predictions keeps {shares_text(argmax)} of the "
        f"KD-AT student's gain, and the label-corrected teacher's student (the relabelling undone) keeps "
        f"{shares_text(corrected)} of it: the relabelling is enough for {_most_or_part(argmax)} of the gain, the "
        f"logits carry {_most_or_part(corrected)} of it without the relabelling, and {overlap}."
    )


WHAT_IS_REMOVED = {"C7": "the information about the incorrect classes", "C8": "the per-image confidence"}


def _by_student(checks: Mapping[str, dict]) -> dict[str, list[str]]:
    """Each manipulated student's verdicts, one per teacher group: the checks named "<student>" or "<student>
    (<teacher>)", the gain's precondition left out."""
    out: dict[str, list[str]] = {}
    for name, c in checks.items():
        if "p_claim_holm" not in c or name.startswith("a gain to remove"):
            continue
        student = name.split(" (AT teacher")[0]
        out.setdefault(student, []).append(c["verdict"])
    return out


def _students_sentence(checks: Mapping[str, dict]) -> str:
    """Which students remove at least half the gain in every teacher group, which keep more than half in every one,
    which are decided both ways (one way for one teacher, the other for another) and which are undecided for at
    least one teacher, e.g. "shuffled and spread keep more than half of it; ST order is undecided"."""
    kinds = {
        "remove at least half of it": [],
        "keep more than half of it": [],
        "differ between the teachers": [],
        "undecided": [],
    }
    for student, verdicts in _by_student(checks).items():
        if all(v == "reproduced" for v in verdicts):
            kinds["remove at least half of it"].append(student)
        elif all(v == "not reproduced" for v in verdicts):
            kinds["keep more than half of it"].append(student)
        elif all(v in ("reproduced", "not reproduced") for v in verdicts):
            kinds["differ between the teachers"].append(student)
        else:
            kinds["undecided"].append(student)
    parts = []
    for what, names in kinds.items():
        if names:
            one = len(names) == 1
            said = {
                "undecided": f"{'is' if one else 'are'} undecided for at least one teacher",
                "differ between the teachers": f"{'differs' if one else 'differ'} between the teachers",
            }.get(what, what)
            parts.append(f"{numbers.join_words(names)} {said}")
    return "; ".join(parts)


def _meaning(claim: str, at: str, corrected: str | None) -> str:
    """What the verdicts of a claim's two readings say together, no stronger than they are."""
    what = WHAT_IS_REMOVED[claim]
    if corrected is None:
        if at in ("reproduced", "not reproduced"):
            return f"{what} carries {'at least' if at == 'reproduced' else 'less than'} half of the gain"
        return f"this design cannot say whether {what} carries half of the gain ({at})"
    both = {at, corrected}
    if both == {"reproduced"}:
        return f"{what} carries at least half of the gain, with and without the relabelling"
    if both == {"not reproduced"}:
        return f"{what} carries less than half of the gain, with and without the relabelling"
    if at == "not reproduced" and corrected == "reproduced":
        return (
            f"{what} carries at least half of what the logits add once the relabelling is undone, but less than half "
            "of the AT teacher's gain, which its relabelling keeps"
        )
    if at == "reproduced" and corrected == "not reproduced":
        return (
            f"{what} carries at least half of the AT teacher's gain, but less than half once the relabelling is undone"
        )
    return (
        f"this design cannot say whether {what} carries half of the gain (the AT teacher's reading: {at}; the "
        f"label-corrected one: {corrected})"
    )


def removal_finding(records: Mapping[str, Mapping], claim: str) -> str:
    """What C7's or C8's students found, with and without the relabelling, and what that says about the claim at
    this profile; ``records`` maps claim ids ("C7", "C7c", ...) to their records."""
    at = records[claim]
    corrected = records.get(f"{claim}c")
    if at["verdict"] == "not testable":
        return f"{claim} is not testable here: the KD-AT student has no gain over the best baseline to remove."
    said = f"Of the AT teacher's students, {_students_sentence(at['checks'])}"
    if corrected is not None and corrected["verdict"] != "not testable":
        said += f"; of the label-corrected teacher's, {_students_sentence(corrected['checks'])}"
    meaning = _meaning(claim, at["verdict"], corrected["verdict"] if corrected else None)
    return f"{said}. At this profile, {meaning}."
