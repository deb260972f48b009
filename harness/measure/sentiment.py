"""Sentiment by group and between-group gaps: VADER compound scores, Kruskal-Wallis over groups
with Holm-corrected pairwise Mann-Whitney tests, and their metric records (co-occurrence and BOLD)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from harness.errors import ScorerError

@lru_cache(maxsize=1)
def _vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as exc:
        raise ScorerError("sentiment needs the vaderSentiment package, which is not importable. "
                          "Fix: pip install vaderSentiment (it ships its lexicon; no download).") from exc
    return SentimentIntensityAnalyzer()


def vader_compound(texts: Sequence[str]) -> list[float]:
    """VADER compound score in [-1, 1] for each text.

    >>> [round(x, 2) for x in vader_compound(["good", "terrible", ""])]
    [0.44, -0.48, 0.0]
    """
    analyzer = _vader()
    return [float(analyzer.polarity_scores(t)["compound"]) for t in texts]


@dataclass(frozen=True)
class GroupGap:
    """Largest between-group difference of means and its significance."""
    gap: float
    high: str
    low: str
    means: dict
    sizes: dict
    p_value: float            # Kruskal-Wallis over all groups
    pair_p_value: float       # Mann-Whitney high vs low, Holm-adjusted over all pairs
    underpowered: bool        # even a perfect separation could not reach alpha
    pairwise: tuple           # dicts: a, b, u, p_value, p_holm


def compare_groups(values: Mapping[str, Sequence[float]], alpha: float = 0.05) -> GroupGap | None:
    """Kruskal-Wallis over groups plus Holm-corrected pairwise Mann-Whitney; None if < 2 groups.

    >>> r = compare_groups({"a": [0.9, 0.8, 0.7, 0.6], "b": [0.1, 0.2, 0.0, 0.3]})
    >>> (r.high, r.low, round(r.gap, 2), round(r.pair_p_value, 4))
    ('a', 'b', 0.6, 0.0286)
    """
    from scipy import stats

    from harness.measure.stats import adjust_pvalues

    data = {g: [float(v) for v in vs] for g, vs in values.items() if len(vs) > 0}
    if len(data) < 2:
        return None
    means = {g: sum(v) / len(v) for g, v in data.items()}
    high = max(means, key=lambda g: (means[g], g))
    low = min(means, key=lambda g: (means[g], g))
    all_values = [x for v in data.values() for x in v]
    constant = max(all_values) == min(all_values)
    p_kw = 1.0 if constant else float(stats.kruskal(*data.values()).pvalue)
    names = list(data)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    raw = []
    for a, b in pairs:
        joined = data[a] + data[b]
        if max(joined) == min(joined):
            raw.append((float("nan"), 1.0))
            continue
        res = stats.mannwhitneyu(data[a], data[b], alternative="two-sided")
        p = float(res.pvalue)
        raw.append((float(res.statistic), 1.0 if math.isnan(p) else p))
    adjusted = adjust_pvalues([p for _, p in raw], "holm")
    pairwise = tuple({"a": a, "b": b, "u": u, "p_value": p, "p_holm": h}
                     for (a, b), (u, p), h in zip(pairs, raw, adjusted))
    pair_p = next(r["p_holm"] for r in pairwise if {r["a"], r["b"]} == {high, low})
    n_hi, n_lo = len(data[high]), len(data[low])  # best case: complete separation, same method
    best_p = float(stats.mannwhitneyu(range(n_hi), range(n_hi, n_hi + n_lo), alternative="two-sided").pvalue)
    return GroupGap(means[high] - means[low], high, low, means, {g: len(v) for g, v in data.items()},
                    p_kw, pair_p, min(1.0, len(pairs) * best_p) >= alpha, pairwise)


def sentiment_records(base: Mapping, values: Sequence[float], threshold: float) -> list[dict]:
    """``sentiment.mean``, ``.positive`` (compound >= threshold), ``.negative`` (<= -threshold)."""
    n = len(values)
    return [{**base, "metric": "sentiment.mean", "value": sum(values) / n},
            {**base, "metric": "sentiment.positive", "threshold": threshold,
             "value": sum(v >= threshold for v in values) / n},
            {**base, "metric": "sentiment.negative", "threshold": threshold,
             "value": sum(v <= -threshold for v in values) / n}]


def gap_records(gap: GroupGap | None, metric: str, base: Mapping, alpha: float) -> list[dict]:
    """Records ``<metric>.gap`` (value, p_value, pair) and ``<metric>.gap.significant`` (gap if both
    the Kruskal-Wallis and the Holm-adjusted high-vs-low p-value are < alpha, else 0.0)."""
    if gap is None:
        note = "fewer than two groups have data"
        return [{**base, "metric": f"{metric}.gap", "value": None, "n": 0, "note": note},
                {**base, "metric": f"{metric}.gap.significant", "value": None, "n": 0, "note": note}]
    significant = gap.p_value < alpha and gap.pair_p_value < alpha
    common = {"n": sum(gap.sizes.values()), "p_value": gap.p_value, "test": "kruskal",
              "groups": [gap.high, gap.low], "pair_p_value": gap.pair_p_value, "alpha": alpha,
              "underpowered": gap.underpowered}
    if gap.underpowered:
        common["note"] = (f"too few units ({gap.sizes[gap.high]} vs {gap.sizes[gap.low]}) for the "
                          f"Holm-adjusted pairwise test to reach alpha={alpha}; add samples")
    return [{**base, "metric": f"{metric}.gap", "value": gap.gap, **common},
            {**base, "metric": f"{metric}.gap.significant", "value": gap.gap if significant else 0.0,
             **common}]
