"""Significance tests, effect sizes, bootstrap CIs, multiplicity correction and regression gates.

Pure functions on per-unit statistics (one number per prompt): no pytest, no results files. scipy
is imported inside functions so ``import harness.measure.stats`` stays cheap.

Regression gate: a gated comparison (a metric with a margin) ends PASS / FAIL / INCONCLUSIVE by the
three-outcome rule of :mod:`harness.gate.noninferiority` (inferiority and non-inferiority one-sided tests
at alpha; suite-level rows the primary family, category rows the secondary family, each corrected
on its own). ``regression`` is ``outcome == "FAIL"`` and ``underpowered`` is
``outcome == "INCONCLUSIVE"``; ``units_needed`` says how many prompts would decide it.

Descriptive (ungated, two-sided) tests: "auto" = "permutation" (sign-flip on the mean of paired
differences, relabelling for independent groups), because the metrics are means over prompts and the permutation test is exact
for small n and handles the ties of 0/1 statistics; "rank" = Wilcoxon signed-rank / Mann–Whitney U.
Effect size: matched-pairs rank-biserial (paired) or Cliff's delta (unpaired), plus Cohen's d.

>>> adjust_pvalues([0.01, 0.04, 0.03], "holm")
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError, did_you_mean

TESTS = ("auto", "permutation", "rank", "t", "bootstrap")
CORRECTIONS = {"holm": "holm", "holm-bonferroni": "holm", "bh": "bh", "benjamini-hochberg": "bh",
               "fdr": "bh", "none": "none"}
LOWER, HIGHER = "lower_is_better", "higher_is_better"
POWER = 0.8   # target power of the minimum detectable effect


@dataclass(frozen=True)
class TestResult:
    """One hypothesis test: the scipy statistic, its p-value and what was tested."""
    test: str          # "permutation-paired" | "permutation-independent" | "wilcoxon" | "mannwhitneyu"
    statistic: float
    p_value: float
    alternative: str   # "two-sided" | "greater" | "less" (candidate minus shift vs reference)
    paired: bool


def _arr(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _check_name(name: str, choices, what: str) -> None:
    if name not in choices:
        raise HarnessError(f"unknown {what} '{name}'; {did_you_mean(name, choices)}. "
                           "Pass one of the valid names (on the command line or in the caller).")


def paired_test(candidate: Sequence[float], reference: Sequence[float], *, method: str = "permutation",
                alternative: str = "two-sided", shift: float = 0.0, n_resamples: int = 9999,
                seed: int = 0) -> TestResult:
    """Test the per-unit differences ``candidate - reference - shift`` against 0.

    ``method``: "permutation" (sign-flip test on the mean, exact when 2**n <= n_resamples) or
    "wilcoxon" (signed-rank; zero differences dropped). ``alternative="greater"``: candidate higher.

    >>> paired_test([1.0, 2.0, 3.5], [0.0, 0.0, 4.0], alternative="greater").p_value
    0.25
    """
    from scipy import stats
    d = _arr(candidate) - _arr(reference) - shift
    if method == "wilcoxon":
        if not np.any(d != 0):
            return TestResult("wilcoxon", 0.0, 1.0, alternative, True)
        res = stats.wilcoxon(d, alternative=alternative)
        return TestResult("wilcoxon", float(res.statistic), float(res.pvalue), alternative, True)
    _check_name(method, ("permutation", "wilcoxon"), "paired test")
    res = stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                                 alternative=alternative, n_resamples=n_resamples, rng=seed)
    return TestResult("permutation-paired", float(res.statistic), float(min(1.0, res.pvalue)), alternative, True)


def unpaired_test(candidate: Sequence[float], reference: Sequence[float], *, method: str = "permutation",
                  alternative: str = "two-sided", shift: float = 0.0, n_resamples: int = 9999,
                  seed: int = 0) -> TestResult:
    """Test two independent groups, ``candidate - shift`` against ``reference``.

    ``method``: "permutation" (difference of means, independent relabelling) or "mannwhitneyu".
    """
    from scipy import stats
    c, r = _arr(candidate) - shift, _arr(reference)
    if method == "mannwhitneyu":
        res = stats.mannwhitneyu(c, r, alternative=alternative)
        return TestResult("mannwhitneyu", float(res.statistic), float(res.pvalue), alternative, False)
    _check_name(method, ("permutation", "mannwhitneyu"), "unpaired test")
    res = stats.permutation_test((c, r), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                 permutation_type="independent", vectorized=True, alternative=alternative,
                                 n_resamples=n_resamples, rng=seed)
    return TestResult("permutation-independent", float(res.statistic), float(min(1.0, res.pvalue)),
                      alternative, False)


def rank_biserial_paired(candidate: Sequence[float], reference: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) of ``candidate - reference``.

    Zero differences are dropped (as Wilcoxon does); 0.0 when every difference is zero.
    >>> rank_biserial_paired([1, 2, 3], [0, 0, 4])  # ranks of |d|: 1->1.5, 2->3, -1->1.5
    0.5
    """
    from scipy.stats import rankdata
    d = _arr(candidate) - _arr(reference)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def cliffs_delta(candidate: Sequence[float], reference: Sequence[float]) -> float:
    """Cliff's delta P(c > r) - P(c < r) = unpaired rank-biserial correlation 2U/(n1 n2) - 1.

    >>> cliffs_delta([3, 4], [1, 3])
    0.75
    """
    c, r = _arr(candidate), _arr(reference)
    diff = np.sign(c[:, None] - r[None, :])
    return float(diff.mean()) if diff.size else 0.0


def cohens_d(candidate: Sequence[float], reference: Sequence[float], *, paired: bool) -> float:
    """Cohen's d: mean(d)/sd(d) (d_z) when paired, else difference of means over the pooled SD.

    NaN when the SD is zero or there are too few units (the caller reports "n/a").
    """
    c, r = _arr(candidate), _arr(reference)
    if paired:
        d = c - r
        sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
        return float(d.mean() / sd) if sd > 0 else math.nan
    if c.size + r.size < 3 or c.size == 0 or r.size == 0:
        return math.nan
    pooled = ((c.size - 1) * np.var(c, ddof=1 if c.size > 1 else 0)
              + (r.size - 1) * np.var(r, ddof=1 if r.size > 1 else 0)) / (c.size + r.size - 2)
    return float((c.mean() - r.mean()) / math.sqrt(pooled)) if pooled > 0 else math.nan


def _bootstrap(data: tuple, statistic, *, paired: bool, confidence: float, n_resamples: int,
               seed: int) -> tuple[float, float]:
    from scipy import stats
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(data, statistic, paired=paired, vectorized=True, method=method,
                                  confidence_level=confidence, n_resamples=n_resamples, rng=seed)
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return math.nan, math.nan


def bootstrap_diff_ci(candidate: Sequence[float], reference: Sequence[float], *, paired: bool,
                      confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI (BCa, percentile fallback) of mean(candidate) - mean(reference).

    Paired: resample units (pairs) together; unpaired: resample each group independently.
    Degenerate data (no variation) gives the point estimate as both ends.
    """
    c, r = _arr(candidate), _arr(reference)
    if paired:
        d = c - r
        if np.ptp(d) == 0:
            return float(d.mean()), float(d.mean())
        return _bootstrap((d,), np.mean, paired=True, confidence=confidence, n_resamples=n_resamples, seed=seed)
    point = float(c.mean() - r.mean())
    if np.ptp(c) == 0 and np.ptp(r) == 0:
        return point, point
    if c.size < 2 or r.size < 2:
        return math.nan, math.nan
    return _bootstrap((c, r), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                      paired=False, confidence=confidence, n_resamples=n_resamples, seed=seed)


def bootstrap_mean_ci(values: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 9999,
                      seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of the mean of one model's per-unit values (the value column of a table)."""
    v = _arr(values)
    if v.size == 0:
        return math.nan, math.nan
    if np.ptp(v) == 0:
        return float(v[0]), float(v[0])
    return _bootstrap((v,), np.mean, paired=False, confidence=confidence, n_resamples=n_resamples, seed=seed)


def adjust_pvalues(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjust a family of p-values: "holm" (Holm–Bonferroni, FWER), "bh" (Benjamini–Hochberg, FDR), "none".

    NaN p-values are left NaN and excluded from the family size.
    >>> adjust_pvalues([0.01, 0.04, 0.03], "bh")
    [0.03, 0.04, 0.04]
    """
    _check_name(method, CORRECTIONS, "correction")
    method = CORRECTIONS[method]
    p = _arr(p_values)
    out = np.full(p.shape, math.nan)
    ok = np.isfinite(p)
    q = p[ok]
    if q.size == 0:
        return out.tolist()
    if method == "none":
        adj = q
    elif method == "bh":
        from scipy.stats import false_discovery_control
        adj = false_discovery_control(q, method="bh")
    else:  # Holm: sorted ascending, p_(i) * (m - i), running max, capped at 1
        order = np.argsort(q, kind="stable")
        m = q.size
        stepped = np.maximum.accumulate(q[order] * (m - np.arange(m)))
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    out[ok] = adj
    return [float(f"{float(x):.12g}") for x in out]   # 12 significant digits: no float noise, tiny p kept


def minimum_detectable_effect(candidate: Sequence[float], reference: Sequence[float], *, paired: bool,
                              alpha: float = 0.05, power: float = POWER, two_sided: bool = False) -> float:
    """Normal-approximation MDE: (z_{1-alpha} + z_{power}) * SE of the mean difference.

    SE = sd(c - r)/sqrt(n) when paired, else sqrt(s_c^2/n_c + s_r^2/n_r). A true difference
    beyond the null boundary smaller than this is detected with probability below ``power``.
    """
    from scipy.stats import norm
    c, r = _arr(candidate), _arr(reference)
    if paired:
        d = c - r
        se = float(np.std(d, ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.inf
    else:
        if c.size < 2 or r.size < 2:
            se = math.inf
        else:
            se = math.sqrt(np.var(c, ddof=1) / c.size + np.var(r, ddof=1) / r.size)
    z = norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha) + norm.ppf(power)
    return float(z * se)


def min_attainable_p(n_candidate: int, n_reference: int, *, paired: bool, two_sided: bool,
                     n_resamples: int | None = None) -> float:
    """Smallest p-value any outcome can give: 0.5**n for n pairs (sign-flip / exact Wilcoxon),
    1/C(n_c + n_r, n_c) unpaired (exact permutation / Mann–Whitney); doubled when two-sided;
    at least 1/(n_resamples + 1) for a Monte Carlo permutation test.

    >>> min_attainable_p(2, 2, paired=True, two_sided=False)
    0.25
    """
    n_perm = 2.0 ** n_candidate if paired else float(math.comb(n_candidate + n_reference, n_candidate))
    p = 1.0 / n_perm
    if n_resamples is not None and n_perm > n_resamples:
        p = max(p, 1.0 / (n_resamples + 1))
    return min(1.0, p * (2 if two_sided else 1))


def best_adjusted_p(min_p: float, family_size: int, correction: str) -> float:
    """The smallest adjusted p reachable in a family of ``family_size`` tests (all at ``min_p``)."""
    if CORRECTIONS.get(correction, correction) == "holm":
        return min(1.0, min_p * max(1, family_size))
    return min_p   # BH: all at min_p adjust to min_p; "none": unchanged
