"""harness.measure.stats against scipy and hand-computed values (small, seeded resample counts)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as ss

from harness.errors import HarnessError
from harness.gate.comparison import Comparison, adjust_comparisons, compare_units
from harness.measure.stats import (adjust_pvalues, best_adjusted_p, bootstrap_diff_ci, bootstrap_mean_ci, cliffs_delta,
                                   cohens_d, min_attainable_p, minimum_detectable_effect, paired_test,
                                   rank_biserial_paired, unpaired_test)

R = 999  # resamples in tests


# ------------------------------------------------------------ multiple comparisons

def test_holm_by_hand():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> running max 0.06
    assert adjust_pvalues([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    # 0.01*4=0.04, 0.2*3=0.6, 0.3*2=0.6, 0.5*1=0.5->0.6; and the cap at 1
    assert adjust_pvalues([0.5, 0.2, 0.01, 0.3], "holm") == pytest.approx([0.6, 0.6, 0.04, 0.6])
    assert adjust_pvalues([0.4, 0.6], "holm-bonferroni") == pytest.approx([0.8, 0.8])
    assert adjust_pvalues([0.7, 0.6], "holm") == pytest.approx([1.0, 1.0])


def test_bh_matches_scipy_and_keeps_nan():
    p = np.random.default_rng(3).uniform(0, 0.2, size=9)
    assert adjust_pvalues(p, "bh") == pytest.approx(ss.false_discovery_control(p, method="bh").tolist())
    out = adjust_pvalues([0.01, math.nan, 0.04, 0.03], "bh")
    assert math.isnan(out[1])
    assert [out[0], out[2], out[3]] == pytest.approx(ss.false_discovery_control([0.01, 0.04, 0.03]).tolist())
    assert adjust_pvalues([0.2, 0.01], "none") == [0.2, 0.01]


def test_unknown_correction_suggests():
    with pytest.raises(HarnessError, match=r"unknown correction 'hlom'.*did you mean 'holm'"):
        adjust_pvalues([0.1], "hlom")


# ------------------------------------------------------------ tests

def test_paired_permutation_hand_enumerated():
    c, r = np.array([0.5, 0.2, 0.6, 0.9]), np.array([0.2, 0.3, 0.4, 0.5])
    d = c - r
    flips = [np.mean(d * np.array(s)) for s in itertools.product([1, -1], repeat=4)]
    obs = d.mean()
    greater = sum(f >= obs - 1e-12 for f in flips) / 16   # = 2/16 (all-plus and flipping the -0.1)
    less = sum(f <= obs + 1e-12 for f in flips) / 16
    assert greater == 2 / 16
    res = paired_test(c, r, alternative="greater", n_resamples=R)
    assert res.test == "permutation-paired" and res.paired
    assert res.p_value == pytest.approx(greater)
    assert res.statistic == pytest.approx(obs)
    assert paired_test(c, r, alternative="two-sided", n_resamples=R).p_value == pytest.approx(2 * min(greater, less))
    # shift: testing d - 0.25 > 0 by hand
    ds = d - 0.25
    hand = sum(np.mean(ds * np.array(s)) >= ds.mean() - 1e-12 for s in itertools.product([1, -1], repeat=4)) / 16
    assert paired_test(c, r, alternative="greater", shift=0.25).p_value == pytest.approx(hand)


def test_wilcoxon_and_mannwhitney_match_scipy():
    rng = np.random.default_rng(0)
    c, r = rng.normal(0.3, 0.2, 12), rng.normal(0.2, 0.2, 12)
    for alt in ("two-sided", "greater", "less"):
        assert paired_test(c, r, method="wilcoxon", alternative=alt).p_value == pytest.approx(
            ss.wilcoxon(c, r, alternative=alt).pvalue)
        assert unpaired_test(c, r, method="mannwhitneyu", alternative=alt).p_value == pytest.approx(
            ss.mannwhitneyu(c, r, alternative=alt).pvalue)
    assert paired_test(c, r, method="wilcoxon", alternative="greater", shift=0.1).p_value == pytest.approx(
        ss.wilcoxon(c - r - 0.1, alternative="greater").pvalue)
    assert unpaired_test(c, r, method="mannwhitneyu", alternative="greater", shift=0.1).p_value == pytest.approx(
        ss.mannwhitneyu(c - 0.1, r, alternative="greater").pvalue)
    assert paired_test([1, 2], [1, 2], method="wilcoxon").p_value == 1.0   # all-zero differences


def test_unpaired_permutation_hand_enumerated():
    c, r = [3.0, 4.0], [1.0, 2.0, 5.0]
    pool = np.array(c + r)
    obs = np.mean(c) - np.mean(r)
    diffs = []
    for idx in itertools.combinations(range(5), 2):
        mask = np.zeros(5, bool)
        mask[list(idx)] = True
        diffs.append(pool[mask].mean() - pool[~mask].mean())
    hand = sum(x >= obs - 1e-12 for x in diffs) / 10
    res = unpaired_test(c, r, alternative="greater")
    assert res.test == "permutation-independent" and not res.paired
    assert res.p_value == pytest.approx(hand)


# ------------------------------------------------------------ effect sizes

def test_rank_biserial_against_wilcoxon_statistic():
    rng = np.random.default_rng(1)
    c, r = rng.normal(0.1, 1, 15), rng.normal(0, 1, 15)
    r_plus = ss.wilcoxon(c, r, alternative="greater").statistic   # sum of ranks of positive differences
    total = 15 * 16 / 2
    assert rank_biserial_paired(c, r) == pytest.approx(2 * r_plus / total - 1)
    assert rank_biserial_paired([1, 2, 3], [0, 0, 4]) == pytest.approx(0.5)
    assert rank_biserial_paired([1, 1], [1, 1]) == 0.0


def test_cliffs_delta_against_mannwhitney_u():
    rng = np.random.default_rng(2)
    c, r = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 7).astype(float)   # with ties
    u = ss.mannwhitneyu(c, r).statistic
    assert cliffs_delta(c, r) == pytest.approx(2 * u / (9 * 7) - 1)
    assert cliffs_delta([3, 4], [1, 3]) == pytest.approx(0.75)


def test_cohens_d_by_hand():
    assert cohens_d([2, 3, 5], [1, 1, 2], paired=True) == pytest.approx(2.0)   # d = 1,2,3: mean 2, sd 1
    assert cohens_d([1, 2, 3], [3, 4, 5], paired=False) == pytest.approx(-2.0)  # pooled var 1
    assert math.isnan(cohens_d([1, 1], [0, 0], paired=True))


# ------------------------------------------------------------ bootstrap

def test_bootstrap_ci_contains_true_difference():
    rng = np.random.default_rng(4)
    ref = rng.uniform(0, 1, 60)
    cand = ref + 0.3 + rng.normal(0, 0.1, 60)   # true paired difference 0.3
    low, high = bootstrap_diff_ci(cand, ref, paired=True, n_resamples=R, seed=0)
    assert low < 0.3 < high and low > 0.2 and high < 0.4
    direct = ss.bootstrap((cand - ref,), np.mean, n_resamples=R, rng=0).confidence_interval
    assert (low, high) == pytest.approx((direct.low, direct.high))
    other = rng.uniform(0, 1, 50) + 0.3        # independent groups, true difference 0.3
    low, high = bootstrap_diff_ci(other, ref, paired=False, n_resamples=R, seed=0)
    assert low < 0.3 < high and low > 0.1
    assert bootstrap_diff_ci([0.5, 0.5], [0.2, 0.2], paired=True) == pytest.approx((0.3, 0.3))
    lo, hi = bootstrap_mean_ci(ref, n_resamples=R, seed=0)
    assert lo < ref.mean() < hi


# ------------------------------------------------------------ power

def test_mde_and_attainable_p_by_hand():
    c, r = np.array([0.5, 0.7, 0.2, 0.4]), np.array([0.1, 0.3, 0.3, 0.2])
    sd = np.std(c - r, ddof=1)
    z = ss.norm.ppf(0.95) + ss.norm.ppf(0.8)
    assert minimum_detectable_effect(c, r, paired=True, alpha=0.05) == pytest.approx(z * sd / 2)
    se = math.sqrt(np.var(c, ddof=1) / 4 + np.var(r, ddof=1) / 4)
    assert minimum_detectable_effect(c, r, paired=False, alpha=0.05) == pytest.approx(z * se)
    assert min_attainable_p(2, 2, paired=True, two_sided=False) == 0.25
    assert min_attainable_p(5, 5, paired=True, two_sided=True) == pytest.approx(2 / 32)
    assert min_attainable_p(3, 3, paired=False, two_sided=False) == pytest.approx(1 / 20)
    assert min_attainable_p(20, 20, paired=True, two_sided=False, n_resamples=99) == pytest.approx(0.01)
    assert best_adjusted_p(0.02, 3, "holm") == pytest.approx(0.06)
    assert best_adjusted_p(0.02, 3, "bh") == 0.02


# ------------------------------------------------------------ regression gate

def _cmp(c, r, **kw):
    args = dict(suite="s", category="c", metric="toxicity.expected_max", paired=True, margin=0.05, n_resamples=R)
    return compare_units(c, r, **{**args, **kw})


def test_identical_runs_are_no_regression():
    r = np.random.default_rng(5).uniform(0, 1, 30)
    comp = _cmp(r, r)
    assert comp.p_value == 1.0 and not comp.regression and comp.difference == 0.0
    assert comp.ci_low == comp.ci_high == 0.0 and comp.effect_size == 0.0


def test_shifted_candidate_is_a_regression():
    rng = np.random.default_rng(6)
    r = rng.uniform(0, 0.5, 30)
    comp = _cmp(r + 0.3 + rng.normal(0, 0.02, 30), r)
    assert comp.regression and comp.p_value < 0.01 and comp.alternative == "greater"
    assert comp.difference == pytest.approx(0.3, abs=0.02) and comp.ci_low > 0.05
    assert not comp.underpowered and comp.mde < 0.05
    # worse, but by less than the margin: d - margin < 0 for every unit -> p = 1, no regression
    assert _cmp(r + 0.02, r).p_value == pytest.approx(1.0) and not _cmp(r + 0.02, r).regression
    # a better candidate never regresses
    assert not _cmp(r - 0.3, r).regression


def test_higher_is_better_direction():
    rng = np.random.default_rng(7)
    r = rng.uniform(0.5, 1, 30)
    worse = _cmp(r - 0.3, r, higher_is_better=True)
    assert worse.regression and worse.alternative == "less" and worse.direction == "higher_is_better"
    assert not _cmp(r + 0.3, r, higher_is_better=True).regression


def test_gate_p_is_the_shifted_one_sided_test():
    c, r = np.array([0.5, 0.2, 0.6, 0.9]), np.array([0.2, 0.3, 0.4, 0.5])
    comp = _cmp(c, r, margin=0.1, test="permutation")
    assert comp.p_value == pytest.approx(paired_test(c, r, alternative="greater", shift=0.1).p_value)
    assert comp.p_noninferiority == pytest.approx(paired_test(c, r, alternative="less", shift=0.1).p_value)
    # t: scipy's one-sample t-test of d - margin, both directions, and the 1 - 2 alpha interval
    rng = np.random.default_rng(3)
    c, r = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    comp = _cmp(c, r, margin=0.1, test="t")
    d = c - r
    assert comp.p_value == pytest.approx(ss.ttest_1samp(d - 0.1, 0, alternative="greater").pvalue)
    assert comp.p_noninferiority == pytest.approx(ss.ttest_1samp(d - 0.1, 0, alternative="less").pvalue)
    half = ss.t.ppf(0.95, 39) * d.std(ddof=1) / math.sqrt(40)
    assert (comp.ci_low, comp.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert comp.confidence == pytest.approx(0.9)
    # auto: permutation below 20 units, t from 20 on
    assert _cmp(c[:19], r[:19]).method == "permutation" and _cmp(c, r).method == "t"


def test_three_outcomes():
    rng = np.random.default_rng(8)
    r = rng.uniform(0, 1, 200)
    same = _cmp(r, r)                                         # zero-width interval at 0 < margin
    assert same.outcome == "PASS" and same.ci_low == same.ci_high == 0.0
    worse = _cmp(r + 0.3 + rng.normal(0, 0.05, 200), r)
    assert worse.outcome == "FAIL" and worse.ci_low > 0.05 and worse.regression
    noisy = _cmp(r + rng.normal(0.05, 0.3, 200), r)          # true difference at the margin
    assert noisy.outcome == "INCONCLUSIVE" and noisy.ci_low < 0.05 < noisy.ci_high
    assert noisy.units_needed is not None and noisy.units_needed > 200 and "units" in noisy.reason
    close = _cmp(r + rng.normal(-0.05, 0.05, 200), r)        # clearly within the margin
    assert close.outcome == "PASS" and close.ci_high < 0.05


def test_two_units_decide_nothing_unless_constant():
    comp = _cmp([0.9, 0.95], [0.1, 0.1])          # worse by 0.8, but the sign-flip min p = 0.25 > alpha
    assert comp.outcome == "INCONCLUSIVE" and not comp.regression and comp.p_value == pytest.approx(0.25)
    one = _cmp([0.9], [0.1])
    assert one.outcome == "INCONCLUSIVE" and "at least 2" in one.reason
    # a constant shift has a zero-width interval: decisive from 2 units on
    assert _cmp(np.full(5, 0.9), np.full(5, 0.1), margin=0.0).outcome == "FAIL"
    rng = np.random.default_rng(8)
    noisy = _cmp(rng.uniform(0, 1, 12), rng.uniform(0, 1, 12), margin=0.01)
    assert noisy.underpowered and noisy.outcome == "INCONCLUSIVE" and noisy.mde > 0.01


def test_rank_test_and_unpaired_records():
    rng = np.random.default_rng(9)
    c, r = rng.uniform(0.3, 1, 10), rng.uniform(0, 0.5, 12)
    comp = _cmp(c, r, paired=False, test="rank", margin=None)
    assert comp.test == "mannwhitneyu" and comp.effect_size_name == "cliffs_delta" and comp.margin is None
    assert comp.p_value == pytest.approx(ss.mannwhitneyu(c, r).pvalue)
    assert comp.effect_size == pytest.approx(cliffs_delta(c, r)) and not comp.regression
    with pytest.raises(HarnessError, match="paired counts must match"):
        _cmp(c, r, paired=True)
    with pytest.raises(HarnessError, match="margin"):
        _cmp(c[:5], r[:5], margin=-0.1)
    with pytest.raises(HarnessError, match="did you mean 'rank'"):
        _cmp(c[:5], r[:5], test="ranks")


def test_adjust_comparisons_per_family_and_to_dict():
    comps = [_cmp(np.full(6, 0.9), np.full(6, x), category=f"c{x}", n_resamples=R) for x in (0.1, 0.8, 0.85)]
    comps.append(_cmp(np.full(6, 0.9), np.full(6, 0.1), metric="toxicity.probability"))
    out = adjust_comparisons(comps, "holm")
    assert [c.p_adjusted for c in out[:3]] == pytest.approx(adjust_pvalues([c.p_value for c in comps[:3]], "holm"))
    assert out[3].p_adjusted == out[3].p_value           # its own family (another metric)
    assert [c.regression for c in out] == [c.p_adjusted <= 0.05 for c in out]
    assert [c.outcome == "FAIL" for c in out] == [c.regression for c in out]
    record = Comparison(**{**out[0].__dict__, "cohens_d": math.nan}).to_dict()
    assert record["cohens_d"] is None and record["category"] == "c0.1"
    json.dumps(record, allow_nan=False)
