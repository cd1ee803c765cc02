"""Chapter 5, the scorecard: every claim's record gathered into one table, with counts for the prose."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ..fileio import atomic_write_bytes
from . import style
from .claims import CHAPTERS, CLAIMS, PAPER_CLAIM_IDS
from .numbers import CLAIM_FORMATS, claim_estimate, claim_threshold, estimate, number, percent
from .verdicts import NOT_MEASURED, VERDICTS, verdict_label


def fmt_estimate(record: dict) -> str:
    """A record's statistic with its interval in the claim's unit (`numbers.claim_estimate`), "n/a" if none."""
    return claim_estimate(record)


CHAPTER_TITLES = {
    "02_logit_distributions": "2. Logit distributions",
    "03_sample_confidence": "3. Sample confidence",
    "04_distillation": "4. Distillation",
}


def chapter_link(chapter: str) -> str:
    """A MyST link from the scorecard page to a chapter."""
    return f"{{doc}}`{CHAPTER_TITLES.get(chapter, chapter)} <{chapter}>`"


def flagged_note(record: dict | None) -> str:
    """What the scorecard adds beside a verdict that reads students a gradient-masking check flagged: "; reads
    flagged AT spread" (nothing when none is)."""
    flagged = (record or {}).get("flagged") or []
    return f"; reads flagged {', '.join(flagged)}" if flagged else ""


def scorecard_rows(records: list[dict]) -> list[dict]:
    """One compact row per claim: id, the claim in a line, its verdict, the statistic with its interval, the
    threshold, and a link to the chapter; claims without a record are marked not measured."""
    rows = []
    for cid, claim in CLAIMS.items():
        found = [r for r in records if r["id"] == cid]
        for r in found or [None]:
            verdict = r["verdict"] if r else NOT_MEASURED
            rows.append(
                {
                    "id": cid,
                    "claim": claim.statement,
                    "verdict": verdict_label(verdict) + flagged_note(r),
                    "estimate [95% CI]": fmt_estimate(r) if r else "",
                    "threshold": claim_threshold(r) if r else "",
                    "chapter": chapter_link(r["chapter"] if r else claim.chapter),
                }
            )
    return rows


def comparison_rows(records: list[dict]) -> list[dict]:
    """Every comparison each claim was decided on, under its claim: its estimate with the 95% interval in the
    claim's unit, the threshold, the Holm-adjusted p-value on the claim's side (and the Monte-Carlo error of a
    bootstrap's bounds), and its own verdict."""
    rows = []
    for r in records:
        scale, digits, unit = CLAIM_FORMATS.get(r["id"], (1.0, 2, ""))
        for name, c in r.get("checks", {}).items():
            ci = c.get("ci")
            p = c.get("p_claim_holm")
            mc = c.get("mc_error")
            rows.append(
                {
                    "claim": r["id"],
                    "comparison": name,
                    "estimate [95% CI]": estimate(c.get("estimate"), ci, digits=digits, scale=scale, unit=unit)
                    if name != "closed form"
                    else f"{c['estimate']:.1e} logit units",
                    "threshold": number(c["threshold"], digits=digits, scale=scale) + unit if "threshold" in c else "",
                    "p (Holm, claim side)": "" if p is None or p != p else f"{p:.2g}",
                    "MC error of the bounds": "" if not mc else f"{scale * max(mc):.{digits + 1}f}",
                    "verdict": verdict_label(c["verdict"]) if c["verdict"] in VERDICTS else c["verdict"],
                }
            )
    return rows


def details_rows(records: list[dict]) -> list[dict]:
    """Each record's criterion and design, for the collapsed block under the table: the statistic, the criterion in
    full, seeds x images and the comparison the row shows (every number is in `comparison_rows` and the record)."""
    return [
        {
            "id": r["id"],
            "statistic": r.get("statistic", ""),
            "criterion": r["criterion"],
            "seeds x images": f"{r['n_seeds']} x {r['n_images']}",
            "row shows": r.get("primary") or "",
        }
        for r in records
    ]


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys), pipes in cells escaped."""
    columns = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]).replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def summary(records: list[dict]) -> dict:
    """Counts for the scorecard's prose: the paper's claims of each verdict, measured claims, all claims, and what is
    missing (our own readings, C7c and C8c, are rows of the scorecard but not claims of the paper: not counted).

    A claim with several records takes the worst of them: not reproduced before inconclusive before not testable
    before reproduced.
    """
    order = ("not reproduced", "inconclusive", "not testable", "reproduced")
    verdict_of = {}
    for r in records:
        if r["id"] not in PAPER_CLAIM_IDS:
            continue
        current = verdict_of.get(r["id"])
        if current is None or order.index(r["verdict"]) < order.index(current):
            verdict_of[r["id"]] = r["verdict"]
    counts = {f"n_{v.replace(' ', '_')}": sum(1 for x in verdict_of.values() if x == v) for v in VERDICTS}
    missing = [i for i in PAPER_CLAIM_IDS if i not in verdict_of]
    silent = [chapter for chapter in CHAPTERS if chapter not in {r.get("chapter") for r in records}]
    note = (
        "Every claim has a record."
        if not missing
        else (
            f"Claims without a record: {', '.join(missing)}. Chapters that wrote no claims at this profile: "
            f"{', '.join(silent) or 'none'} (run them first)."
        )
    )
    return {
        **counts,
        "n_measured": len(verdict_of),
        "n_claims": len(PAPER_CLAIM_IDS),
        "missing_note": note,
        "verdicts": verdict_of,
    }


VERDICT_COLORS = {**style.VERDICT_COLORS, NOT_MEASURED: "#BBBBBB"}
TITLE_WIDTH = 80  # characters per line of a row's title (at the small font), so that it fits the figure's width


def scorecard_figure(records: list[dict]):
    """One row per claim of the paper, titled with the claim: its statistic with the 95% interval, coloured by verdict,
    against its threshold (dashed), the claim's side of the threshold shaded; every row on its own scale and unit."""
    by_id = {}
    for r in records:
        by_id.setdefault(r["id"], r)
    paper = {cid: CLAIMS[cid] for cid in PAPER_CLAIM_IDS}  # our own readings are rows of the table, not of the figure
    fig, axes = style.figure(0.74 * len(paper) + 0.5, nrows=len(paper), ncols=1)
    for ax, (cid, claim) in zip(axes, paper.items()):
        r = by_id.get(cid)
        verdict = r["verdict"] if r else NOT_MEASURED
        color = VERDICT_COLORS[verdict]
        threshold = r["threshold"] if r else claim.threshold
        scale, _, unit = CLAIM_FORMATS.get(cid, (1.0, 2, ""))
        t = scale * threshold
        ax.axvline(t, color="black", linestyle="--", linewidth=1)
        if r and r.get("estimate") is not None:
            e = scale * r["estimate"]
            lo, hi = [scale * v for v in r["ci"]] if r.get("ci") and None not in r["ci"] else (e, e)
            ax.errorbar([e], [0], xerr=[[e - lo], [hi - e]], fmt="o", color=color, capsize=4, markersize=7)
            span = max(hi, t, e) - min(lo, t, e) or 1.0
            ax.set_xlim(min(lo, t, e) - 0.25 * span, max(hi, t, e) + 0.25 * span)
            if claim.side is not None:  # the claim's side of its threshold
                left, right = ax.get_xlim()
                ax.axvspan(*((left, t) if claim.side == "below" else (t, right)), color="#DDEEDD", zorder=0)
                ax.set_xlim(left, right)
            ax.set_xlabel(
                f"{claim.statistic} ({unit.strip()})" if unit else claim.statistic,
                fontsize=style.SMALL_PT,
                labelpad=1,
            )
        else:
            ax.text(0.5, 0.5, verdict, transform=ax.transAxes, ha="center", va="center", color=color)
            ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        title = textwrap.fill(f"{cid} {verdict_label(verdict)}: {claim.statement}", TITLE_WIDTH)
        ax.set_title(title, loc="left", color=color, pad=3, fontsize=style.SMALL_PT)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
    fig.supxlabel("dashed: each claim's threshold; shaded: the claim's side of it")
    return fig


def lessons(records: list[dict], *, profile_name: str) -> str:
    """The scorecard's "what we learned" paragraph, written from the records' verdicts and numbers and scoped to the
    profile they come from (so it says what this run found, at any profile)."""
    by_id = {}
    for r in records:
        by_id.setdefault(r["id"], r)

    def verdict(cid: str) -> str:
        return by_id[cid]["verdict"] if cid in by_id else NOT_MEASURED

    def number(cid: str) -> str:
        r = by_id.get(cid)
        return claim_estimate(r) if r else "n/a"

    parts = [
        f"At the {profile_name} profile, adversarial training lowers the logits: the max logit (C1: "
        f"{verdict('C1')}; AT minus ST {number('C1')} logit units) and the logit gap (C2: {verdict('C2')}; "
        f"{number('C2')}). Whether the gap shrinks in proportion to our proposition's penalty across the eps "
        f"sweep, as the proposition predicts beyond C2, C3 says: {verdict('C3')} (the networks' fit intercept "
        f"{number('C3')}).",
        f"The two kinds of training disagree on which images they are sure about (C4: {verdict('C4')}; C5: "
        f"{verdict('C5')}).",
        f"Distilled on clean images only, the AT teacher's student beats every baseline (C6: {verdict('C6')}; "
        f"the comparison it hinges on: {number('C6')}).",
    ]
    c6 = by_id.get("C6", {}).get("measured", {})
    if c6.get("argmax_share") is not None:
        parts.append(
            f"A student trained only on the AT teacher's hard predictions keeps {percent(c6['argmax_share'])} of "
            f"that gain: the teacher's relabelling of the images it gets wrong is enough for "
            f"{'most' if c6['argmax_share'] >= 0.5 else 'part'} of it (which does not make it the whole account: "
            "chapter 4's label-corrected control keeps part of the gain without it)."
        )
    parts.append(
        f"Removing what the teacher says about the incorrect classes (C7: {verdict('C7')}; KD-AT minus the "
        f"student minus half the gain, for the student it hinges on: {number('C7')}) or its per-image confidence "
        f"(C8: {verdict('C8')}; {number('C8')}) is judged against that gain."
    )
    for cid in ("C7", "C8"):  # chapter 4's finding: which students keep the gain, with and without relabelling
        finding = by_id.get(cid, {}).get("measured", {}).get("finding")
        if finding:
            parts.append(f"{cid}: {finding}")
    return " ".join(parts)


SUMMARY_PNG = "scorecard.png"
SUMMARY_MD = "scorecard_summary.md"


def count_sentence(summary_counts: dict) -> str:
    """The scorecard's count in one sentence: "6 of 8 claims reproduced, 1 not reproduced, ..."."""
    s = summary_counts
    return (
        f"{s['n_reproduced']} of {s['n_claims']} claims reproduced, {s['n_not_reproduced']} not reproduced, "
        f"{s['n_inconclusive']} inconclusive, {s['n_not_testable']} not testable"
    )


DATASET_NAMES = {"fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
ARCH_NAMES = {"cnn-small": "small CNNs", "preact-resnet18": "PreAct ResNet-18 networks", "linear": "linear models"}


def setting_sentence(profile: Any) -> str:
    """Where this build's verdicts come from, in words: data set, networks, radius, and whether that is the paper's
    setting (CIFAR-10 networks) or not."""
    data = DATASET_NAMES.get(profile.dataset, profile.dataset)
    nets = ARCH_NAMES.get(profile.arch, profile.arch)
    paper = "the paper's scale" if profile.dataset == "cifar10" else "not the paper's CIFAR-10 networks"
    return f"These verdicts come from {nets} on {data} at eps = {profile.eps:.3g} ({profile.name} profile; {paper})."


def _meaning(record: dict) -> str:
    """What a claim's verdict means in words, for its row."""
    removal = record["id"] in ("C7", "C8")
    if record["verdict"] == "not reproduced":
        return "the student keeps more than half of KD-AT's gain" if removal else "the interval lies on the other side"
    return "the design cannot tell whether it removes half the gain" if removal else "the interval straddles it"


def open_claims_sentence(records: list[dict]) -> str:
    """Which claims did not reproduce (or stay undecided) and why: for each, the comparison it hinges on, with its
    estimate and interval against the threshold."""
    parts = []
    for r in records:
        if r["verdict"] == "reproduced":
            continue
        if r["verdict"] == "not testable":
            parts.append(f"{r['id']} is not testable: there is no gain to remove")
            continue
        row = r.get("primary")
        statistic = r["statistic"] if not row or row in r["statistic"] else f"{r['statistic']} for {row}"
        if CLAIMS[r["id"]].side is None:  # C3's row: an interval that should contain the threshold
            contains = bool(r["ci"]) and r["ci"][0] <= r["threshold"] <= r["ci"][1]
            why = (
                "the gap's shrinkage is not proportional to the proposition's penalty"
                if not contains
                else "another of its checks fails"
                if r["verdict"] == "not reproduced"
                else "the slope on the penalty is not clearly above 0"
            )
            parts.append(
                f"{r['id']} is {r['verdict']}: the {statistic} is {claim_estimate(r)}, which "
                f"{'contains' if contains else 'excludes'} 0 ({why})"
            )
        else:
            parts.append(
                f"{r['id']} is {r['verdict']}: {statistic} is {claim_estimate(r)} against a threshold of "
                f"{claim_threshold(r)} ({_meaning(r)})"
            )
    if not parts:
        return "Every claim reproduced."
    return "; ".join(parts) + "."


def write_summary(records: list[dict], folder: Path, *, profile_name: str, setting: str = "") -> tuple[Path, Path]:
    """The landing page's copy of the answer: the scorecard figure as a PNG, and as a Markdown paragraph the count,
    the setting the verdicts come from and which claims did not reproduce and why, written atomically into
    ``folder`` (the build copies both beside the landing page)."""
    fig = scorecard_figure(records)
    png = style.png(fig)
    plt.close(fig)
    text = (
        f"**{count_sentence(summary(records))}** at the `{profile_name}` profile. {setting} "
        f"{open_claims_sentence(records)} "
        "{doc}`The scorecard <../chapters/05_scorecard>` gives every comparison, its interval and chapter.\n"
    ).replace("  ", " ")
    atomic_write_bytes(png, folder / SUMMARY_PNG)
    atomic_write_bytes(text.encode(), folder / SUMMARY_MD)
    return folder / SUMMARY_PNG, folder / SUMMARY_MD
