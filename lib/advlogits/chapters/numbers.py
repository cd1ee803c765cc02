"""One number format for prose, tables, figures and the scorecard.

* accuracies: a count of images out of n, shown as a percentage with one decimal ("71.5%");
* differences of accuracies: percentage points with one decimal ("20.5 points");
* shares (a fraction of a gain): percentages with one decimal ("34.1%");
* logit statistics, correlations, overlaps: two decimals;
* an interval follows its estimate in brackets, in the estimate's unit, joined by no-break spaces so it never
  wraps: "20.5 [16.3, 24.5]".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NBSP = "\u00a0"

# How each claim's statistic reads: (scale, decimals, unit after the number).
CLAIM_FORMATS: dict[str, tuple[float, int, str]] = {
    "C1": (1.0, 2, ""),
    "C2": (1.0, 2, ""),
    "C3": (1.0, 3, ""),
    "C4": (1.0, 2, ""),
    "C5": (1.0, 2, ""),
    "C6": (100.0, 1, " points"),
    "C7": (100.0, 1, " points"),
    "C8": (100.0, 1, " points"),
    "C7c": (100.0, 1, " points"),
    "C8c": (100.0, 1, " points"),
}


def number(value: float | None, *, digits: int = 2, scale: float = 1.0) -> str:
    """``value * scale`` with ``digits`` decimals; "n/a" for None or NaN; no "-0.0"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{scale * value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def percent(fraction: float | None, *, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage: 0.715 -> "71.5%"."""
    text = number(fraction, digits=digits, scale=100.0)
    return text if text == "n/a" else text + "%"


def accuracy(correct: int, n: int) -> str:
    """``correct`` images out of ``n`` as a percentage with one decimal: (143, 200) -> "71.5%"."""
    if n <= 0:
        raise ValueError(f"n must be a positive number of images (got {n})")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be between 0 and n = {n} (got {correct})")
    return percent(correct / n)


def interval(low: float | None, high: float | None, *, digits: int = 2, scale: float = 1.0) -> str:
    """ "[low, high]" with a no-break space after the comma."""
    return f"[{number(low, digits=digits, scale=scale)},{NBSP}{number(high, digits=digits, scale=scale)}]"


def estimate(
    value: float | None,
    ci: Sequence[float | None] | None = None,
    *,
    digits: int = 2,
    scale: float = 1.0,
    unit: str = "",
) -> str:
    """An estimate with its interval: "20.5 [16.3, 24.5]" (``unit`` after the estimate, e.g. "%" or " points").
    Without an interval (or with an unknown bound), the estimate alone."""
    text = number(value, digits=digits, scale=scale)
    if text == "n/a":
        return text
    text += unit.replace(" ", NBSP)
    if ci is not None and len(ci) == 2 and None not in ci:
        text += NBSP + interval(ci[0], ci[1], digits=digits, scale=scale)
    return text


def claim_estimate(record: dict) -> str:
    """A claim record's statistic with its 95% interval, in the claim's unit."""
    scale, digits, unit = CLAIM_FORMATS.get(record["id"], (1.0, 2, ""))
    return estimate(record.get("estimate"), record.get("ci"), digits=digits, scale=scale, unit=unit)


def claim_threshold(record: dict) -> str:
    """A claim record's threshold, in the claim's unit."""
    scale, digits, unit = CLAIM_FORMATS.get(record["id"], (1.0, 2, ""))
    return number(record["threshold"], digits=digits, scale=scale) + unit.replace(" ", NBSP)


def join_words(names: Sequence[str]) -> str:
    """``names`` as a list in prose: "a", "a and b", "a, b and c"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""
