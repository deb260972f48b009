"""Three-outcome regression decisions: PASS (shown not worse by the margin), FAIL (shown worse by
more than the margin) or INCONCLUSIVE (neither), with a hierarchy of families and power planning.

Let ``d`` be the per-unit difference in the "worse" direction (candidate - reference for a
lower-is-better metric such as toxicity), ``m >= 0`` the margin and ``alpha`` the level:

- inferiority test    H0: mean(d) <= m  vs  H1: mean(d) > m   -> FAIL when rejected (after correction);
- non-inferiority     H0: mean(d) >= m  vs  H1: mean(d) < m   -> PASS when rejected;
- neither rejected                                            -> INCONCLUSIVE.

Both are one-sided tests at ``alpha``, so the decision reads off the two-sided ``1 - 2*alpha``
interval of the mean difference (90% at alpha 0.05): entirely below the margin = PASS, entirely
above = FAIL (when the corrected p agrees), straddling = INCONCLUSIVE (the logic of Schuirmann's
TOST and of non-inferiority trials).

Units are prompts (or texts). Candidate and reference share per-sample seeds (common random
numbers), so the samples of a prompt pair with each other; with equal k on both sides the
prompt-clustered mean of sample-level paired differences is exactly the mean of per-prompt
differences, and its cluster-robust standard error (Miller 2024, "Adding Error Bars to Evals") is
``sd(d_i)/sqrt(n)``: k enters through a less noisy per-prompt statistic, never as extra
independent units. Methods: ``"t"`` (Student t on the clustered differences; Welch for unpaired
units), ``"permutation"`` (sign-flip / relabelling test of the shifted differences, exact for
small n), ``"bootstrap"`` (prompt-cluster bootstrap percentile interval) and ``"auto"`` (the
default: permutation below ``SMALL_N`` units, where t leans on normality it does not have, else t).
``bench/gate_power.py`` measures their error rates and power side by side.

Multiplicity (a hierarchy, not one diluted family): the suite-level rows of a suite's gated
metrics form the primary family; the category rows form a secondary family; inferiority p-values
are corrected (Holm or BH) within each family separately, so categories never dilute the primary
test. A PASS is an intersection-union claim (every metric non-inferior) and needs no correction.

    >>> r = decide([0.6, 0.7, 0.8, 0.65] * 2, [0.1, 0.2, 0.1, 0.15] * 2, paired=True, margin=0.05)
    >>> r.outcome, round(r.estimate, 3), r.method       # 8 prompts: the sign-flip test can reach 1/256
    ('FAIL', 0.55, 'permutation')
    >>> decide([0.6, 0.7, 0.8, 0.65], [0.1, 0.2, 0.1, 0.15], paired=True, margin=0.05).outcome
    'INCONCLUSIVE'
    >>> decide([0.3, 0.2, 0.4], [0.3, 0.2, 0.4], paired=True, margin=0.05).outcome   # identical: zero width
    'PASS'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError, did_you_mean
from harness.gate.verdict import FAIL, INCONCLUSIVE, PASS

METHODS = ("auto", "t", "permutation", "bootstrap")
SMALL_N = 20   # auto: below this many units the sign-flip permutation test, else t
POWER = 0.8


@dataclass(frozen=True)
class Decision:
    """A regression decision before multiplicity correction (``outcome`` uses the raw p)."""

    outcome: str
    reason: str
    estimate: float            # mean worse-direction difference (positive = candidate worse)
    ci_low: float              # 1 - 2*alpha interval of the estimate (worse direction)
    ci_high: float
    p_inferiority: float       # one-sided p of "worse by more than the margin"
    p_noninferiority: float    # one-sided p of "not worse by the margin"
    se: float
    sd: float                  # SD of the per-unit differences (paired) or pooled per-unit SD
    n: int
    units_needed: int | None   # units for a decisive verdict at the observed difference (80% power)
    method: str


def _t_decision(d_mean: float, se: float, df: float, margin: float, alpha: float) -> tuple[float, float, float, float]:
    from scipy import stats

    if se == 0:
        lo = hi = d_mean
        p_inf = 0.0 if d_mean > margin else 1.0
        p_ni = 0.0 if d_mean < margin else 1.0
        return lo, hi, p_inf, p_ni
    q = float(stats.t.ppf(1 - alpha, df))
    tstat = (d_mean - margin) / se
    return d_mean - q * se, d_mean + q * se, float(stats.t.sf(tstat, df)), float(stats.t.cdf(tstat, df))


def units_needed(sd: float, estimate: float, margin: float, alpha: float, power: float = POWER,
                 family_size: int = 1) -> int | None:
    """Units (prompts) needed for a decisive verdict if the true difference were ``estimate``:
    ``((z_{1-a} + z_power) * sd / |margin - estimate|)**2`` with ``a = alpha/family_size`` for a FAIL
    (Holm's first step) and ``a = alpha`` for a PASS. None when the estimate sits on the margin.

    >>> units_needed(0.5, 0.0, 0.05, 0.05)
    619
    """
    from scipy.stats import norm

    gap = margin - estimate
    if not math.isfinite(sd) or abs(gap) < 1e-12:
        return None
    if sd == 0:
        return 2
    a = alpha if gap > 0 else alpha / max(1, family_size)
    z = float(norm.ppf(1 - a) + norm.ppf(power))
    return max(2, math.ceil((z * sd / abs(gap)) ** 2))


def decide(candidate: Sequence[float], reference: Sequence[float], *, paired: bool, margin: float,
           alpha: float = 0.05, higher_is_better: bool = False, method: str = "auto", n_resamples: int = 9999,
           seed: int = 0, family_size: int = 1) -> Decision:
    """Three-outcome decision on per-unit values (paired units must be aligned)."""
    if method not in METHODS:
        raise HarnessError(f"unknown regression test method '{method}'; {did_you_mean(method, METHODS)}.")
    if not margin >= 0:
        raise HarnessError(f"margin {margin!r}: a regression margin must be a number >= 0 (how much worse the "
                           "candidate may be before the gate fails).")
    sign = -1.0 if higher_is_better else 1.0
    c, r = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    n = int(min(c.size, r.size))
    if method == "auto":
        method = "permutation" if n < SMALL_N else "t"
    if paired and c.size != r.size:
        raise HarnessError(f"paired comparison with {c.size} candidate and {r.size} reference units; "
                           "run both models on the same prompts.")
    if n < 2:
        est = float(sign * (c.mean() - r.mean())) if n else math.nan
        return Decision(INCONCLUSIVE, f"only {n} unit{'s' if n != 1 else ''} on a side: a verdict needs at least 2",
                        est, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, n, 2, method)
    if paired:
        d = sign * (c - r)
        est, sd = float(d.mean()), float(d.std(ddof=1))
        se, df = sd / math.sqrt(n), n - 1.0
    else:
        vc, vr = float(c.var(ddof=1)), float(r.var(ddof=1))
        est = float(sign * (c.mean() - r.mean()))
        se = math.sqrt(vc / c.size + vr / r.size)
        sd = math.sqrt((vc + vr) / 2)
        df = (vc / c.size + vr / r.size) ** 2 / ((vc / c.size) ** 2 / (c.size - 1) + (vr / r.size) ** 2 / (r.size - 1)) \
            if se > 0 else float(n - 1)
    if se <= 1e-12 * max(1.0, abs(est)):   # no variation beyond float noise: a zero-width interval
        se = 0.0
    lo, hi, p_inf, p_ni = _t_decision(est, se, df, margin, alpha)
    if method != "t" and se > 0:
        from harness.measure.stats import paired_test, unpaired_test

        if method == "permutation":
            test = paired_test if paired else unpaired_test
            a, b = (sign * c, sign * r)
            p_inf = test(a, b, alternative="greater", shift=margin, n_resamples=n_resamples, seed=seed).p_value
            p_ni = test(a, b, alternative="less", shift=margin, n_resamples=n_resamples, seed=seed).p_value
        else:
            lo, hi, p_inf, p_ni = _cluster_bootstrap(sign * c, sign * r, paired, margin, alpha, n_resamples, seed)
    outcome = FAIL if p_inf <= alpha else PASS if p_ni <= alpha else INCONCLUSIVE
    need = None if outcome != INCONCLUSIVE else units_needed(sd, est, margin, alpha, family_size=family_size)
    reason = reason_for(outcome, est, margin, need)
    if outcome == INCONCLUSIVE and method == "permutation" and (lo > margin or hi < margin):
        floor = 0.5 ** n if paired else 1 / math.comb(c.size + r.size, c.size)
        reason += (f" (the t interval shown excludes the margin, but with {n} units the exact sign-flip test "
                   f"used below {SMALL_N} units cannot go below p = {floor:.3g})")
    return Decision(outcome, reason, est, lo, hi, p_inf, p_ni, se, sd, n, need, method)


def _cluster_bootstrap(c: np.ndarray, r: np.ndarray, paired: bool, margin: float, alpha: float,
                       n_resamples: int, seed: int) -> tuple[float, float, float, float]:
    """Percentile interval and p-values from resampling units (prompt clusters) with replacement."""
    rng = np.random.default_rng(seed)
    if paired:
        d = c - r
        idx = rng.integers(0, d.size, size=(n_resamples, d.size))
        boot = d[idx].mean(axis=1)
    else:
        boot = (c[rng.integers(0, c.size, size=(n_resamples, c.size))].mean(axis=1)
                - r[rng.integers(0, r.size, size=(n_resamples, r.size))].mean(axis=1))
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    p_inf = float((np.sum(boot <= margin) + 1) / (n_resamples + 1))
    p_ni = float((np.sum(boot >= margin) + 1) / (n_resamples + 1))
    return float(lo), float(hi), p_inf, p_ni


def reason_for(outcome: str, estimate: float, margin: float, needed: int | None, *, adjusted: bool = False) -> str:
    """The verdict in words."""
    if outcome == FAIL:
        return (f"the candidate is worse by more than the margin {margin:g}"
                + (" (significant after multiplicity correction)" if adjusted else ""))
    if outcome == PASS:
        return f"the data show the candidate is not worse by the margin {margin:g} (upper bound below it)"
    need = f"about {needed} units (prompts) would make it decisive at the observed difference" if needed else \
        "the observed difference sits on the margin, so no feasible size decides it"
    return f"neither shown worse by more than {margin:g} nor shown within it; {need}"


def hierarchical_outcome(p_inferiority_adjusted: float, p_noninferiority: float, alpha: float) -> str:
    """FAIL when the corrected inferiority p <= alpha, else PASS when non-inferiority is shown."""
    if p_inferiority_adjusted <= alpha:
        return FAIL
    if p_noninferiority <= alpha:
        return PASS
    return INCONCLUSIVE


def parse_metric_margin(text: str) -> tuple[str, float]:
    """``METRIC:MARGIN`` -> (metric, margin); ValueError with the fix otherwise (the one parser).

    >>> parse_metric_margin("toxicity.expected_max:0.05")
    ('toxicity.expected_max', 0.05)
    """
    metric, sep, margin = text.rpartition(":")
    try:
        m = float(margin)
    except ValueError:
        m = math.nan
    if not sep or not metric or not (m >= 0 and math.isfinite(m)):
        raise ValueError(f"'{text}' is not METRIC:MARGIN with a margin >= 0 (e.g. toxicity.expected_max:0.05: "
                         "fail when worse by more than 0.05)")
    return metric, m
