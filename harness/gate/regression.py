"""Regression gates of a run against its reference, as :class:`~harness.gate.verdict.Verdict` objects.

Plain functions over a :class:`~harness.run.session.HarnessSession` (no pytest): a library user gets
the same verdicts as the plugin::

    from harness.gate.regression import regression_verdicts
    verdicts = regression_verdicts(run, suite)        # one per (category | suite, gated metric)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.suites.specs import Gate, PromptCase, RegressionCase, Suite
from harness.gate.verdict import INCONCLUSIVE, Verdict


def verdict_from_comparison(case_id: str, r: Mapping[str, Any], on_inconclusive: str, k: int | None = None,
                            bound: str = "") -> Verdict:
    """A Verdict from a comparison record (``Comparison.to_dict()``) of a gated metric."""
    outcome = r.get("outcome") or INCONCLUSIVE
    return Verdict(
        case_id, "regression", r["suite"], r.get("category"), r["metric"], outcome, r.get("reason") or "",
        value=r.get("candidate_value"), bound=bound or f"worse by > {r['margin']:g}",
        reference_value=r.get("reference_value"), difference=r.get("difference"), ci_low=r.get("ci_low"),
        ci_high=r.get("ci_high"), confidence=r.get("confidence"), p_value=r.get("p_value"),
        p_adjusted=r.get("p_adjusted"), p_noninferiority=r.get("p_noninferiority"), margin=r.get("margin"),
        alpha=r.get("alpha"), k=k, n=r.get("n_candidate"), family=r.get("family"),
        units_needed=r.get("units_needed"), on_inconclusive=on_inconclusive,
        details={"test": r.get("test"), "effect_size": r.get("effect_size"),
                 "effect_size_name": r.get("effect_size_name"), "correction": r.get("correction"),
                 "n_reference": r.get("n_reference"), "paired": r.get("paired")})


def regression_verdict(run: Any, case: RegressionCase) -> Verdict:
    """The verdict of one regression case (suite level when ``case.category`` is None)."""
    suite = run.suites[case.suite]
    o = run.options
    policy = run.on_inconclusive(case)
    if suite.kind == "perplexity":
        from harness.kinds import perplexity_regression

        r = perplexity_regression(run, suite, case.margin, o.alpha)
        v = verdict_from_comparison(case.case_id, r, policy, bound=f"worse by > {case.margin:.0%} (relative)")
        ratio = lambda x: None if x is None or not math.isfinite(x) else math.expm1(x)  # noqa: E731
        from dataclasses import replace

        reason = v.reason.replace(f"{math.log1p(case.margin):g}", f"{case.margin:.0%} (relative)")
        return replace(v, metric="perplexity", reason=reason, value=r["candidate_perplexity"],
                       reference_value=r["reference_perplexity"], difference=ratio(r.get("difference")),
                       ci_low=ratio(r.get("ci_low")), ci_high=ratio(r.get("ci_high")), margin=case.margin,
                       details={**v.details, "scale": "relative difference of per-text geometric-mean perplexity"})
    margins = {c.metric: c.margin for c in suite.regression_cases(dict(o.fail_on_regression))}
    records = run.compare(case.suite, margins, o.alpha, o.correction)
    match = [r for r in records if r["category"] == case.category and r["metric"] == case.metric]
    if not match:
        raise HarnessError(f"{case.case_id}: the reference has no samples for this comparison. Fix: save the "
                           "baseline from a run of the same suite (--results-json), or pass --baseline-model.")
    return verdict_from_comparison(case.case_id, match[0], policy, k=run.decoding(suite).samples)


def regression_verdicts(run: Any, suite: Suite) -> list[Verdict]:
    """Every regression verdict of ``suite`` (its gates.regression and the run's --fail-on-regression)."""
    overrides = dict(run.options.fail_on_regression) if suite.kind == "values" else {}
    return [regression_verdict(run, c) for c in suite.regression_cases(overrides)]


def saved_reference(doc: Mapping[str, Any], path: str) -> dict[str, Any]:
    """What a results document records of its saved baseline (--baseline FILE): the file, the role used
    as the reference and that role's category- and suite-level metric records (bias, BOLD, perplexity
    and toxicity aggregates), so reports show the baseline's values next to the candidate's."""
    present = {s.get("role") for s in doc.get("samples", [])} | {m.get("role") for m in doc.get("metrics", [])}
    role = "baseline" if "baseline" in present and "candidate" not in present else "candidate"
    return {"path": str(path), "role": role, "model": (doc.get("config") or {}).get("models", {}).get(role),
            "metrics": [m for m in doc.get("metrics", []) if m.get("role") == role and m.get("prompt_id") is None]}


def reference_values(run: Any, gates: Sequence[Gate], prompts: Sequence[PromptCase],
                     prompt_id: str | None) -> dict[str, float]:
    """{metric: the reference's value} of the first gate, from the in-run reference or a saved file."""
    from harness.gate import bounds as checks
    from harness.measure.metrics import find_metric

    if not gates or not prompts:
        return {}
    if "baseline" in run.roles:
        return {gates[0].metric: round(checks.evaluate(gates[:1], run.samples("baseline", list(prompts)))[0].value, 6)}
    ref = run.reference_doc
    if ref is not None:
        p = prompts[0]
        for role in ("candidate", "baseline"):
            rec = find_metric(ref["metrics"], role=role, suite=p.suite, category=p.category,
                              metric=gates[0].metric, prompt_id=prompt_id)
            if rec is not None:
                return {gates[0].metric: rec["value"]}
    return {}
