"""The ``perplexity`` kind: token perplexity of every model on held-out texts (:mod:`harness.measure.perplexity`).

``analysis_case``: bounds on the perplexity (``gates.suite``); ``regression_case``: a paired test on
per-text log-perplexity against the reference, fails when the candidate is worse by more than a
relative margin (``gates.regression: [{metric: perplexity, margin: 0.05, relative: true}]``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from harness.errors import HarnessError
from harness.kinds.analysis import AnalysedKind
from harness.kinds.registry import NO_REGRESSION_GATES, Records, Selection, Skip, needs_reference, register
from harness.suites.specs import RegressionCase, Suite
from harness.gate.verdict import Verdict


@register
class PerplexityKind(AnalysedKind):
    name = "perplexity"
    fixtures = ("analysis_case", "regression_case")

    def prepare(self, suite: Suite, options: Any) -> Suite:
        """Check the options and that the held-out texts load (collection time)."""
        from harness.measure import perplexity

        opts = perplexity.parse_options(dict(suite.extra), suite.path)
        perplexity.load_texts(perplexity.resolve_texts(opts.texts, suite.path), opts.split)
        return suite

    def cases(self, suite: Suite, fixture: str, options: Any) -> list[Any]:
        return suite.regression_cases() if fixture == "regression_case" else super().cases(suite, fixture, options)

    def skip(self, fixture: str, selection: Selection) -> Skip | None:
        return needs_reference(selection) if fixture == "regression_case" else None

    def empty_reason(self, fixture: str) -> str:
        return NO_REGRESSION_GATES if fixture == "regression_case" else super().empty_reason(fixture)

    def records(self, session: Any, suite: Suite) -> Records:
        from harness.measure.perplexity import analyze_perplexity

        batch = session.options.batch_size
        metrics, extras = analyze_perplexity(suite, {r: session.loaded_model(r) for r in session.roles},
                                             batch_size=8 if batch == "auto" else int(batch))
        return Records(metrics, {suite.id: extras})

    def compare(self, session: Any, case: Any) -> list[Verdict]:
        if isinstance(case, RegressionCase):
            return [regression_verdict(session, case)]
        return super().compare(session, case)


def regression_verdict(session: Any, case: RegressionCase) -> Verdict:
    """The regression verdict on the relative scale: the difference and CI as ratios of perplexity - 1."""
    from harness.gate.regression import verdict_from_comparison

    suite = session.suites[case.suite]
    r = comparison(session, suite, case.margin, session.options.alpha)
    v = verdict_from_comparison(case.case_id, r, session.on_inconclusive(case),
                                bound=f"worse by > {case.margin:.0%} (relative)")
    ratio = lambda x: None if x is None or not math.isfinite(x) else math.expm1(x)  # noqa: E731
    reason = v.reason.replace(f"{math.log1p(case.margin):g}", f"{case.margin:.0%} (relative)")
    return replace(v, metric="perplexity", reason=reason, value=r["candidate_perplexity"],
                   reference_value=r["reference_perplexity"], difference=ratio(r.get("difference")),
                   ci_low=ratio(r.get("ci_low")), ci_high=ratio(r.get("ci_high")), margin=case.margin,
                   details={**v.details, "scale": "relative difference of per-text geometric-mean perplexity"})


def comparison(session: Any, suite: Suite, margin: float, alpha: float) -> dict[str, Any]:
    """Paired test on per-text log-perplexity: fail when the candidate is worse by more than ``margin``
    (relative, e.g. 0.05 = 5%), i.e. mean per-text log-ppl difference > log(1 + margin), significantly.
    The session keeps the comparison record (one per suite, margin and alpha)."""
    return session.comparisons_for(("perplexity", suite.id, margin, alpha),
                                   lambda: [_compare(session, suite, margin, alpha)])[0]


def _compare(session: Any, suite: Suite, margin: float, alpha: float) -> dict[str, Any]:
    from harness.gate.comparison import compare_units

    mine = session.records(suite).extras[suite.id]
    units = mine["units"]
    if "baseline" not in session.roles:
        ref = (session.reference_doc or {}).get("extras", {}).get(suite.id)
        if not ref:
            raise HarnessError(f"the reference results have no perplexity units for suite {suite.id}. Fix: save "
                               "the baseline from a run that included this suite.")
        if ref.get("texts_sha256") != mine["texts_sha256"]:
            raise HarnessError(f"suite {suite.id}: the reference was measured on other texts. Fix: use the same "
                               "held-out file for both runs.")
        ref_units = [u for u in ref["units"] if u["role"] == "candidate"]
    else:
        ref_units = [u for u in units if u["role"] == "baseline"]
    cand_units = [u for u in units if u["role"] == "candidate"]
    c = [u["nll"] / u["tokens"] for u in sorted(cand_units, key=lambda u: u["index"]) if u["tokens"]]
    r = [u["nll"] / u["tokens"] for u in sorted(ref_units, key=lambda u: u["index"]) if u["tokens"]]
    comp = compare_units(c, r, suite=suite.id, category=None, metric="perplexity.log_per_text", paired=True,
                         margin=math.log1p(margin), alpha=alpha, seed=session.options.seed).to_dict()
    comp["candidate_perplexity"] = math.exp(sum(c) / len(c)) if c else math.nan
    comp["reference_perplexity"] = math.exp(sum(r) / len(r)) if r else math.nan
    comp["relative_margin"] = margin
    return comp
