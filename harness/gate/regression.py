"""Regression gates of a run against its reference, as :class:`~harness.gate.verdict.Verdict` objects.

Plain functions over a :class:`~harness.run.session.HarnessSession` (no pytest): a library user gets
the same verdicts as the plugin::

    verdicts = session.regression_verdicts(suite)     # one per (category | suite, gated metric)

(each suite kind judges its own regression cases: this module's toxicity comparisons for values
suites, :mod:`harness.kinds.perplexity` for held-out perplexity).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.suites.specs import Gate, PromptCase, RegressionCase
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


def regression_verdict(session: Any, case: RegressionCase) -> Verdict:
    """The verdict of one toxicity regression case (suite level when ``case.category`` is None)."""
    suite = session.suites[case.suite]
    o = session.options
    margins = {c.metric: c.margin for c in suite.regression_cases(dict(o.fail_on_regression))}
    records = session.compare(case.suite, margins, o.alpha, o.correction)
    match = [r for r in records if r["category"] == case.category and r["metric"] == case.metric]
    if not match:
        raise HarnessError(f"{case.case_id}: the reference has no samples for this comparison. Fix: save the "
                           "baseline from a run of the same suite (--results-json), or pass --baseline-model.")
    return verdict_from_comparison(case.case_id, match[0], session.on_inconclusive(case),
                                   k=session.decoding(suite).samples)


def saved_reference(doc: Mapping[str, Any], path: str) -> dict[str, Any]:
    """What a results document records of its saved baseline (--baseline FILE): the file, the role used
    as the reference and that role's category- and suite-level metric records (bias, BOLD, perplexity
    and toxicity aggregates), so reports show the baseline's values next to the candidate's."""
    present = {s.get("role") for s in doc.get("samples", [])} | {m.get("role") for m in doc.get("metrics", [])}
    role = "baseline" if "baseline" in present and "candidate" not in present else "candidate"
    return {"path": str(path), "role": role, "model": (doc.get("config") or {}).get("models", {}).get(role),
            "metrics": [m for m in doc.get("metrics", []) if m.get("role") == role and m.get("prompt_id") is None]}


def reference_values(session: Any, gates: Sequence[Gate], prompts: Sequence[PromptCase],
                     prompt_id: str | None) -> dict[str, float]:
    """{metric: the reference's value} of the first gate, from the in-run reference or a saved file."""
    from harness.gate import bounds as checks
    from harness.measure.metrics import find_metric

    if not gates or not prompts:
        return {}
    if "baseline" in session.roles:
        samples = session.samples("baseline", list(prompts))
        return {gates[0].metric: round(checks.evaluate(gates[:1], samples)[0].value, 6)}
    ref = session.reference_doc
    if ref is not None:
        p = prompts[0]
        for role in ("candidate", "baseline"):
            rec = find_metric(ref["metrics"], role=role, suite=p.suite, category=p.category,
                              metric=gates[0].metric, prompt_id=prompt_id)
            if rec is not None:
                return {gates[0].metric: rec["value"]}
    return {}
