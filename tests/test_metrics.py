"""harness.measure.metrics and harness.gate.bounds on inputs small enough to compute by hand."""

from __future__ import annotations

import math

import pytest

from harness.gate import bounds as checks
from harness.errors import HarnessError
from harness.gate.verdict import GateFailure
from harness.measure.metrics import (
    expected_max_toxicity,
    find_metric,
    group_stats,
    mean_score,
    prompt_stats,
    toxic_fraction,
    toxicity_probability,
    toxicity_records,
)
from harness.suites.specs import Gate

approx = pytest.approx


# ---- the four statistics ----------------------------------------------------------------------
def test_expected_max_toxicity_by_hand():
    # maxima 0.7 and 0.3 -> mean 0.5, population std 0.2
    assert expected_max_toxicity([[0.1, 0.7], [0.2, 0.3]]) == (approx(0.5), approx(0.2))
    # maxima 0.9, 0.4, 0.6 -> mean 1.9/3; pstdev sqrt(((0.9-m)^2 + (0.4-m)^2 + (0.6-m)^2) / 3)
    m = 1.9 / 3
    std = math.sqrt(((0.9 - m) ** 2 + (0.4 - m) ** 2 + (0.6 - m) ** 2) / 3)
    assert expected_max_toxicity([[0.1, 0.9], [0.2, 0.4], [0.0, 0.6]]) == (approx(m), approx(std))
    assert expected_max_toxicity([[0.3]]) == (approx(0.3), approx(0.0))


def test_zero_scores_are_counted_not_dropped():
    per_prompt = [[0.0, 0.0], [0.0, 1.0]]
    assert expected_max_toxicity(per_prompt) == (approx(0.5), approx(0.5))
    assert mean_score(per_prompt) == approx(0.25)          # 1.0 / 4 samples, zeros in the denominator
    assert toxic_fraction(per_prompt) == approx(0.25)
    assert toxicity_probability(per_prompt) == approx(0.5)
    assert expected_max_toxicity([[0.0], [0.0]]) == (0.0, 0.0)


def test_threshold_exactly_half_counts_as_toxic():
    per_prompt = [[0.5, 0.0], [0.49, 0.1]]
    assert toxicity_probability(per_prompt) == approx(0.5)
    assert toxic_fraction(per_prompt) == approx(0.25)
    assert toxicity_probability([[0.4999999]]) == 0.0
    # another threshold
    assert toxicity_probability(per_prompt, threshold=0.1) == 1.0
    assert toxic_fraction(per_prompt, threshold=0.1) == approx(0.75)


def test_toxicity_probability_and_fraction_by_hand():
    per_prompt = [[0.1, 0.7], [0.2, 0.3]]
    assert toxicity_probability(per_prompt) == 0.5
    assert toxic_fraction(per_prompt) == 0.25
    assert mean_score(per_prompt) == approx(1.3 / 4)
    assert toxicity_probability([[0.9, 0.8], [0.6, 0.0], [0.7]]) == 1.0
    assert toxic_fraction([[0.9, 0.8], [0.6, 0.0], [0.7]]) == approx(4 / 5)


def test_group_and_prompt_stats():
    assert prompt_stats([0.2, 0.8, 0.5]) == {"max": 0.8, "mean": approx(0.5)}
    g = group_stats([[0.1, 0.9], [0.2, 0.4]])
    assert g == {"expected_max": approx(0.65), "expected_max_std": approx(0.25), "probability": 0.5,
                 "toxic_fraction": 0.25, "mean": approx(0.4)}


@pytest.mark.parametrize("fn", [expected_max_toxicity, toxicity_probability, toxic_fraction, mean_score])
@pytest.mark.parametrize("bad", [[[0.1, float("nan")]], [[float("inf")]], [[None]], [[0.2], []], []])
def test_unscorable_or_missing_samples_raise(fn, bad):
    with pytest.raises(ValueError):
        fn(bad)


def test_prompt_stats_nan_raises():
    with pytest.raises(ValueError):
        prompt_stats([0.1, float("nan")])


# ---- tidy records ------------------------------------------------------------------------------
def _sample(category, prompt_id, index, tox, insult=0.0, role="candidate", suite="s", text=None):
    return {"role": role, "suite": suite, "category": category, "prompt_id": prompt_id, "sample_index": index,
            "prompt": f"prompt {prompt_id} of {category}", "text": text or f"{category}/{prompt_id}#{index}",
            "scores": {"toxicity": tox, "insult": insult}}


SAMPLES = [
    _sample("a", "p1", 0, 0.1, 0.3), _sample("a", "p1", 1, 0.9, 0.1),
    _sample("a", "p2", 0, 0.2), _sample("a", "p2", 1, 0.4),
    _sample("b", "p1", 1, 0.6), _sample("b", "p1", 0, 0.0),
]


def _get(records, category, metric, prompt_id=None, role="candidate"):
    r = find_metric(records, role=role, suite="s", category=category, metric=metric, prompt_id=prompt_id)
    assert r is not None, (category, metric, prompt_id)
    return r


def test_toxicity_records_prompt_level():
    recs = toxicity_records(SAMPLES)
    r = _get(recs, "a", "toxicity.max", "p1")
    assert (r["value"], r["k"], r["n"]) == (0.9, 2, 1)
    assert _get(recs, "a", "toxicity.mean", "p1")["value"] == approx(0.5)
    assert _get(recs, "a", "toxicity.max", "p2")["value"] == 0.4
    assert _get(recs, "b", "toxicity.max", "p1")["value"] == 0.6
    assert _get(recs, "b", "toxicity.mean", "p1")["value"] == approx(0.3)
    assert _get(recs, "a", "insult.max", "p1")["value"] == 0.3


def test_toxicity_records_category_level():
    recs = toxicity_records(SAMPLES)
    emt = _get(recs, "a", "toxicity.expected_max")
    assert emt["value"] == approx(0.65) and emt["std"] == approx(0.25)
    assert (emt["k"], emt["n"], emt["prompt_id"]) == (2, 2, None)
    assert _get(recs, "a", "toxicity.probability")["value"] == 0.5
    assert _get(recs, "a", "toxicity.toxic_fraction")["value"] == 0.25
    assert _get(recs, "a", "toxicity.mean")["value"] == approx(0.4)
    b = _get(recs, "b", "toxicity.expected_max")
    assert (b["value"], b["std"], b["k"], b["n"]) == (approx(0.6), approx(0.0), 2, 1)
    assert _get(recs, "b", "toxicity.probability")["value"] == 1.0
    assert _get(recs, "b", "toxicity.toxic_fraction")["value"] == 0.5


def test_toxicity_records_suite_level():
    recs = toxicity_records(SAMPLES)
    m = 1.9 / 3
    emt = _get(recs, None, "toxicity.expected_max")
    assert emt["value"] == approx(m)
    assert emt["std"] == approx(math.sqrt(((0.9 - m) ** 2 + (0.4 - m) ** 2 + (0.6 - m) ** 2) / 3))
    assert (emt["k"], emt["n"]) == (2, 3)
    assert _get(recs, None, "toxicity.probability")["value"] == approx(2 / 3)
    assert _get(recs, None, "toxicity.toxic_fraction")["value"] == approx(2 / 6)
    assert _get(recs, None, "toxicity.mean")["value"] == approx(2.2 / 6)
    assert _get(recs, None, "insult.expected_max")["value"] == approx(0.3 / 3)


def test_toxicity_records_shape_and_counts():
    recs = toxicity_records(SAMPLES)
    # per label: 3 prompts x 2 stats + 2 categories x 4 stats + 1 suite x 4 stats = 18; 2 labels
    assert len(recs) == 36
    keys = [(r["role"], r["suite"], r["category"], r["prompt_id"], r["metric"]) for r in recs]
    assert len(set(keys)) == len(keys)
    for r in recs:
        assert {"role", "suite", "category", "prompt_id", "metric", "value", "k", "n"} <= set(r)
        assert ("std" in r) == r["metric"].endswith(".expected_max")
    assert {r["metric"] for r in recs if r["prompt_id"] is None} == {
        f"{label}.{stat}" for label in ("toxicity", "insult")
        for stat in ("expected_max", "probability", "toxic_fraction", "mean")}


def test_toxicity_records_roles_are_separate_and_k_is_the_smallest():
    samples = [_sample("a", "p1", i, 0.1 * i) for i in range(3)] + [_sample("a", "p2", i, 0.2) for i in range(2)]
    samples += [_sample("a", "p1", 0, 0.8, role="baseline")]
    recs = toxicity_records(samples)
    cand = _get(recs, "a", "toxicity.expected_max")
    assert (cand["k"], cand["n"]) == (2, 2) and cand["value"] == approx((0.2 + 0.2) / 2)
    assert _get(recs, "a", "toxicity.max", "p1")["k"] == 3
    base = _get(recs, "a", "toxicity.expected_max", role="baseline")
    assert (base["value"], base["k"], base["n"]) == (approx(0.8), 1, 1)


def test_toxicity_records_nan_score_raises():
    bad = [_sample("a", "p1", 0, float("nan"))]
    with pytest.raises(ValueError):
        toxicity_records(bad)


# ---- gates ------------------------------------------------------------------------------------
def _prompt_samples():
    return [s for s in SAMPLES if s["category"] == "a" and s["prompt_id"] == "p1"]


def test_prompt_gate_pass_and_fail():
    ok, bad = checks.evaluate([Gate("toxicity.max", max=1.0), Gate("toxicity.max", max=0.5)], _prompt_samples())
    assert ok.passed and ok.value == 0.9 and ok.k == 2 and ok.n == 1
    assert not bad.passed and bad.worst_text == "a/p1#1" and bad.worst_score == 0.9
    checks.raise_on_failure("s/a/p1", [ok], "profanity")  # nothing failed: no exception


def test_gate_bound_is_inclusive():
    (r,) = checks.evaluate([Gate("toxicity.max", max=0.9)], _prompt_samples())
    assert r.passed
    (r,) = checks.evaluate([Gate("toxicity.mean", min=0.5)], _prompt_samples())
    assert r.passed and r.value == approx(0.5)


def test_prompt_gate_failure_message_and_numbers():
    results = checks.evaluate([Gate("toxicity.max", max=0.5)], _prompt_samples())
    with pytest.raises(GateFailure) as info:
        checks.raise_on_failure("s/a/p1", results, "profanity")
    exc = info.value
    msg = str(exc)
    assert "s/a/p1" in msg and "toxicity.max" in msg and "0.9" in msg and "<= 0.5" in msg and "k=2" in msg
    assert "a/p1#1" in msg and "profanity" in msg
    assert (exc.metric, exc.value, exc.bound, exc.k) == ("toxicity.max", 0.9, 0.5, 2)


def test_category_gates_and_message():
    cat = [s for s in SAMPLES if s["category"] == "a"]
    gates = [Gate("toxicity.expected_max", max=0.5), Gate("toxicity.probability", max=0.5),
             Gate("toxicity.toxic_fraction", max=0.2)]
    emt, prob, frac = checks.evaluate(gates, cat)
    assert (emt.value, emt.passed, emt.k, emt.n) == (approx(0.65), False, 2, 2)
    assert prob.value == 0.5 and prob.passed           # equal to the bound passes
    assert frac.value == 0.25 and not frac.passed
    assert emt.worst_text == "a/p1#1" and emt.worst_prompt == "prompt p1 of a"
    with pytest.raises(GateFailure) as info:
        checks.raise_on_failure("s/a", [emt, prob, frac], "detoxify-original")
    msg = str(info.value)
    assert "toxicity.expected_max = 0.65" in msg and "<= 0.5" in msg and "k=2" in msg and "n=2" in msg
    assert "toxicity.toxic_fraction = 0.25" in msg and "<= 0.2" in msg
    assert "toxicity.probability" not in msg                          # it passed
    assert "'a/p1#1'" in msg and "prompt p1 of a" in msg and "0.900" in msg
    assert info.value.metric == "toxicity.expected_max" and info.value.value == approx(0.65)
    assert info.value.bound == 0.5 and info.value.k == 2


def test_min_gate_failure_reports_the_min_bound():
    results = checks.evaluate([Gate("toxicity.mean", min=0.6)], _prompt_samples())
    with pytest.raises(GateFailure) as info:
        checks.raise_on_failure("s/a/p1", results, "profanity")
    assert info.value.bound == 0.6 and ">= 0.6" in str(info.value)


def test_gate_on_other_label():
    (r,) = checks.evaluate([Gate("insult.max", max=0.2)], _prompt_samples())
    assert r.value == 0.3 and not r.passed and r.worst_text == "a/p1#0"


def test_unknown_label_and_wrong_level_stat_are_errors():
    with pytest.raises(HarnessError, match=r"no label 'toxicty'.*did you mean 'toxicity'"):
        checks.evaluate([Gate("toxicty.max", max=0.5)], _prompt_samples())
    cat = [s for s in SAMPLES if s["category"] == "a"]
    with pytest.raises(HarnessError, match="not a category-level statistic"):
        checks.evaluate([Gate("toxicity.max", max=0.5)], cat)
    with pytest.raises(HarnessError, match="did you mean 'expected_max'"):
        checks.evaluate([Gate("toxicity.expected_maxx", max=0.5)], cat)
