"""Candidate-vs-reference comparisons: one :class:`Comparison` per (suite, category, metric).

:func:`compare_units` runs the descriptive two-sided test, or, with a margin, the three-outcome
decision of :mod:`harness.gate.noninferiority`; :func:`adjust_comparisons` corrects each family and
settles gated rows' outcomes (primary = suite-level rows, secondary = category rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from harness.gate.noninferiority import decide, hierarchical_outcome, reason_for, units_needed
from harness.measure.stats import (CORRECTIONS, HIGHER, LOWER, TESTS, _arr, _check_name, adjust_pvalues,
                                best_adjusted_p, bootstrap_diff_ci, cliffs_delta, cohens_d, min_attainable_p,
                                minimum_detectable_effect, paired_test, rank_biserial_paired, unpaired_test)
from harness.errors import HarnessError

@dataclass(frozen=True)
class Comparison:
    """One candidate-vs-reference comparison: a record of the results file's ``comparisons``.

    ``difference``, ``ci_low``/``ci_high`` and ``effect_size`` are candidate minus reference on the
    metric's own scale (positive = candidate higher). ``margin`` is None for a descriptive two-sided
    test (never a regression); otherwise ``p_value`` is the one-sided test of "worse by more than the
    margin" and ``regression`` is ``p_adjusted <= alpha``.
    """
    suite: str
    category: str | None          # None: suite level (all prompts of the suite)
    metric: str
    candidate_value: float
    reference_value: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    margin: float | None
    alpha: float
    test: str
    n_candidate: int
    n_reference: int
    paired: bool
    effect_size: float
    effect_size_name: str         # "rank_biserial" (paired) | "cliffs_delta" (unpaired)
    mde: float
    underpowered: bool
    regression: bool
    direction: str                # "lower_is_better" | "higher_is_better"
    candidate: str = "candidate"  # role or model name of each side
    reference: str = "baseline"
    alternative: str = "two-sided"
    correction: str = "holm"
    cohens_d: float | None = None
    outcome: str | None = None          # gated rows: PASS | FAIL | INCONCLUSIVE (see harness.gate.noninferiority)
    reason: str = ""
    p_noninferiority: float | None = None
    confidence: float | None = None     # of [ci_low, ci_high]: 1 - 2*alpha for gated rows, 0.95 otherwise
    family: str = "primary"             # primary: suite level; secondary: categories
    units_needed: int | None = None
    method: str = "t"
    unit_sd: float | None = None        # SD of the per-unit differences (power planning)

    def to_dict(self) -> dict:
        """JSON-safe dict (NaN and inf become None)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out



def compare_units(candidate: Sequence[float], reference: Sequence[float], *, suite: str,
                  category: str | None, metric: str, paired: bool, margin: float | None = None,
                  alpha: float = 0.05, higher_is_better: bool = False, test: str = "auto",
                  correction: str = "holm", family_size: int = 1, n_resamples: int = 9999,
                  seed: int = 0, candidate_name: str = "candidate",
                  reference_name: str = "baseline", family: str = "primary",
                  default_method: str = "auto") -> Comparison:
    """Compare per-unit values of one (suite, category, metric); paired units must be aligned.

    ``p_adjusted`` is the raw p until :func:`adjust_comparisons` corrects the family; the
    ``underpowered`` flag already accounts for the family (``family_size``, ``correction``).
    """
    _check_name(test, TESTS, "test")
    _check_name(correction, CORRECTIONS, "correction")
    c, r = _arr(candidate), _arr(reference)
    if c.size == 0 or r.size == 0 or (paired and c.size != r.size):
        raise HarnessError(f"cannot compare {suite}/{category or '*'} {metric}: {c.size} candidate and "
                           f"{r.size} reference units{' (paired counts must match)' if paired else ''}; "
                           "run both models on the same prompts.")
    common = dict(suite=suite, category=category, metric=metric, candidate_value=float(c.mean()),
                  reference_value=float(r.mean()), difference=float(c.mean() - r.mean()), alpha=alpha,
                  n_candidate=int(c.size), n_reference=int(r.size), paired=paired,
                  effect_size=rank_biserial_paired(c, r) if paired else cliffs_delta(c, r),
                  effect_size_name="rank_biserial" if paired else "cliffs_delta",
                  direction=HIGHER if higher_is_better else LOWER, candidate=candidate_name,
                  reference=reference_name, correction=CORRECTIONS[correction], family=family,
                  cohens_d=cohens_d(c, r, paired=paired))
    if margin is not None:
        method = {"auto": default_method, "rank": default_method}.get(test, test)   # rank: descriptive rows only
        dec = decide(c, r, paired=paired, margin=margin, alpha=alpha, higher_is_better=higher_is_better,
                     method=method, n_resamples=n_resamples, seed=seed, family_size=family_size)
        # the decision is in the worse direction; the record is candidate - reference on the metric scale
        low, high = (-dec.ci_high, -dec.ci_low) if higher_is_better else (dec.ci_low, dec.ci_high)
        mde = minimum_detectable_effect(c, r, paired=paired, alpha=alpha) if min(c.size, r.size) > 1 else math.inf
        return Comparison(**common, ci_low=low, ci_high=high, p_value=dec.p_inferiority,
                          p_adjusted=dec.p_inferiority, margin=margin, test=f"{dec.method}-{'paired' if paired else 'unpaired'}",
                          mde=mde, underpowered=dec.outcome == "INCONCLUSIVE", regression=dec.outcome == "FAIL",
                          alternative="less" if higher_is_better else "greater", outcome=dec.outcome,
                          reason=dec.reason, p_noninferiority=dec.p_noninferiority, confidence=1 - 2 * alpha,
                          units_needed=dec.units_needed, method=dec.method,
                          unit_sd=dec.sd if math.isfinite(dec.sd) else None)
    if min(c.size, r.size) < 2:
        return Comparison(**common, ci_low=math.nan, ci_high=math.nan, p_value=math.nan, p_adjusted=math.nan,
                          margin=None, test="none", mde=math.inf, underpowered=True, regression=False,
                          reason="fewer than 2 units on a side: no test", confidence=0.95)
    rank = {True: "wilcoxon", False: "mannwhitneyu"}[paired] if test == "rank" else "permutation"
    run = paired_test if paired else unpaired_test
    res = run(c, r, method=rank, alternative="two-sided", n_resamples=n_resamples, seed=seed)
    low, high = bootstrap_diff_ci(c, r, paired=paired, n_resamples=n_resamples, seed=seed)
    mde = minimum_detectable_effect(c, r, paired=paired, alpha=alpha, two_sided=True)
    min_p = min_attainable_p(c.size, r.size, paired=paired, two_sided=True,
                             n_resamples=n_resamples if rank == "permutation" else None)
    underpowered = best_adjusted_p(min_p, family_size, correction) > alpha
    return Comparison(**common, ci_low=low, ci_high=high, p_value=res.p_value, p_adjusted=res.p_value, margin=None,
                      test=res.test, mde=mde, underpowered=bool(underpowered), regression=False,
                      alternative="two-sided", confidence=0.95, method=res.test)


def _diluted(comp: Comparison, outcome: str, p_adjusted: float, family_size: int) -> str:
    """Why an interval above the margin is still INCONCLUSIVE: the family's correction."""
    low = -comp.ci_high if comp.direction == HIGHER else comp.ci_low
    if outcome != "INCONCLUSIVE" or family_size < 2 or not low > comp.margin or comp.p_value > comp.alpha:
        return ""
    return (f" (the interval lies above the margin, but p = {comp.p_value:.3g} is not significant after "
            f"{CORRECTIONS[comp.correction]} over the {family_size} rows of its {comp.family} family: "
            f"p_adj = {p_adjusted:.3g})")


def adjust_comparisons(comparisons: Sequence[Comparison], correction: str = "holm") -> list[Comparison]:
    """Adjust p-values within each family and settle the outcome of gated rows. Order is preserved.

    Families: (candidate, reference, suite, primary|secondary) for gated rows (all gated metrics of
    that level together), plus the metric for descriptive rows. Gated rows take the
    hierarchical three-outcome rule of :mod:`harness.gate.noninferiority` (FAIL on the corrected
    inferiority p, PASS on the non-inferiority p); ``regression`` is ``outcome == "FAIL"``.
    """
    _check_name(correction, CORRECTIONS, "correction")
    families: dict[tuple, list[int]] = {}
    for i, comp in enumerate(comparisons):
        # gated rows: one family per level across the suite's gated metrics; descriptive rows: per metric
        key = (comp.candidate, comp.reference, comp.suite, comp.family, comp.margin is None,
               comp.metric if comp.margin is None else None)
        families.setdefault(key, []).append(i)
    out = list(comparisons)
    for idx in families.values():
        adjusted = adjust_pvalues([comparisons[i].p_value for i in idx], correction)
        for i, p in zip(idx, adjusted):
            comp = comparisons[i]
            if comp.margin is None or comp.outcome is None:
                out[i] = replace(comp, p_adjusted=p, correction=CORRECTIONS[correction])
                continue
            if comp.n_candidate < 2 or comp.n_reference < 2:   # no test ran: stays INCONCLUSIVE
                out[i] = replace(comp, p_adjusted=p, correction=CORRECTIONS[correction])
                continue
            outcome = hierarchical_outcome(p if math.isfinite(p) else 1.0, comp.p_noninferiority, comp.alpha)
            worse = -comp.difference if comp.direction == HIGHER else comp.difference
            need = units_needed(comp.unit_sd, worse, comp.margin, comp.alpha, family_size=len(idx)) \
                if comp.unit_sd is not None else None
            out[i] = replace(comp, p_adjusted=p, correction=CORRECTIONS[correction], outcome=outcome,
                             regression=outcome == "FAIL", underpowered=outcome == "INCONCLUSIVE",
                             units_needed=need if outcome == "INCONCLUSIVE" else None,
                             reason=reason_for(outcome, worse, comp.margin, need, adjusted=len(idx) > 1)
                             + (comp.reason[comp.reason.index(" (the t interval"):]
                                if outcome == "INCONCLUSIVE" and " (the t interval" in comp.reason else "")
                             + _diluted(comp, outcome, p, len(idx)))
    return out
