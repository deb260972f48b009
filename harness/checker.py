"""The ``harness`` fixture's checks: run a case's gates and record its numbers on the test item.

This is the one pytest-aware layer over the domain modules (checks, kinds, compare, ratings): a
failed gate fails the test with its message alone, a user error stops the run with exit code 4.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from harness.errors import GateFailure, HarnessError, did_you_mean
from harness.session import HarnessSession


class CaseChecker:
    """The ``harness`` fixture: runs gates for one test item and records its numbers as properties."""

    def __init__(self, run: HarnessSession, node: pytest.Item) -> None:
        self.run = run
        self.node = node

    @contextlib.contextmanager
    def _guard(self):
        """Gate failures fail the test with their message alone; user errors stop the run (exit 4)."""
        try:
            yield
        except GateFailure as exc:
            raise pytest.fail.Exception(str(exc), pytrace=False) from None
        except HarnessError as exc:
            raise pytest.exit.Exception(f"harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR) from None

    def _record(self, case_id: str, suite: str, category: str, results: list[Any]) -> None:
        props = self.node.user_properties
        props += [("harness_case", case_id), ("suite", suite), ("category", category)]
        for r in results[:1]:
            props += [("metric", r.metric), ("value", round(r.value, 6)), ("bound", r.gate.describe()), ("k", r.k)]
        for r in results[1:]:
            props += [(f"metric:{r.metric}", round(r.value, 6))]
        if self.run.scorer_info:
            props.append(("scorer", self.run.scorer_info["name"]))

    def _reference(self, gates: Any, prompts: list[Any], prompt_id: str | None) -> list[tuple[str, Any]]:
        """("reference_value", v) of the first gate metric when a reference exists (run or saved file)."""
        from harness import checks
        from harness.metrics import find_metric

        if not gates:
            return []
        if "baseline" in self.run.roles:
            return [("reference_value", round(checks.evaluate(gates[:1], self.run.samples("baseline", prompts))[0]
                                              .value, 6))]
        ref = self.run.reference_doc
        if ref is not None:
            p = prompts[0]
            for role in ("candidate", "baseline"):
                rec = find_metric(ref["metrics"], role=role, suite=p.suite, category=p.category,
                                  metric=gates[0].metric, prompt_id=prompt_id)
                if rec is not None:
                    return [("reference_value", rec["value"])]
        return []

    def check_prompt(self, case: Any, role: str = "candidate") -> list[Any]:
        from harness import checks

        with self._guard():
            suite = self.run.suites[case.suite]
            samples = self.run.samples(role, [case])
            gates = suite.gates_for("prompt")
            results = checks.evaluate(gates, samples)
            self._record(case.case_id, case.suite, case.category, results)
            self.node.user_properties += self._reference(gates, [case], case.id)
            checks.raise_on_failure(case.case_id, results, self.run.scorer_info["name"])
            return results

    def check_category(self, category: Any, role: str = "candidate") -> list[Any]:
        from harness import checks

        with self._guard():
            suite = self.run.suites[category.suite]
            samples = self.run.samples(role, list(category.prompts))
            gates = suite.gates_for("category")
            results = checks.evaluate(gates, samples)
            self._record(category.case_id, category.suite, category.id, results)
            self.node.user_properties += self._reference(gates, list(category.prompts), None)
            checks.raise_on_failure(category.case_id, results, self.run.scorer_info["name"])
            return results

    def check_regression(self, case: Any) -> dict[str, Any]:
        """Fail when the candidate is significantly worse than the reference beyond the margin."""
        import warnings

        from harness.errors import GateFailure

        with self._guard():
            o = self.node.config.option
            suite = self.run.suites[case.suite]
            if suite.kind == "perplexity":
                return self._perplexity_regression(suite, case, o.alpha)
            margins = {c.metric: c.margin for c in suite.regression_cases(dict(o.fail_on_regression))}
            records = self.run.compare(case.suite, margins, o.alpha, o.correction)
            match = [r for r in records if r["category"] == case.category and r["metric"] == case.metric]
            if not match:
                raise HarnessError(f"{case.case_id}: the reference has no samples for this comparison.")
            r = match[0]
            props = self.node.user_properties
            props += [("harness_case", case.case_id), ("suite", case.suite), ("category", case.category or "all"),
                      ("metric", case.metric), ("value", r["candidate_value"]),
                      ("reference_value", r["reference_value"]), ("difference", r["difference"]),
                      ("ci_low", r["ci_low"]), ("ci_high", r["ci_high"]), ("p_value", r["p_value"]),
                      ("p_adjusted", r["p_adjusted"]), ("margin", case.margin), ("alpha", r["alpha"]),
                      ("test", r["test"]), ("n", r["n_candidate"]), ("underpowered", r["underpowered"]),
                      ("bound", f"worse by > {case.margin:g}")]
            text = (f"{case.case_id}: candidate {r['candidate_value']:.4g} vs reference {r['reference_value']:.4g}, "
                    f"difference {r['difference']:+.4g} (95% CI {_fmt(r['ci_low'])} to {_fmt(r['ci_high'])}), "
                    f"margin {case.margin:g}, p = {_fmt(r['p_value'])} raw / {_fmt(r['p_adjusted'])} adjusted "
                    f"({o.correction}, alpha {o.alpha:g}, {r['test']}, n = {r['n_candidate']})")
            if r["regression"]:
                raise GateFailure("REGRESSION " + text, metric=case.metric, value=r["candidate_value"],
                                  bound=r["reference_value"])
            if r["underpowered"]:
                warnings.warn(HarnessPowerWarning(
                    f"{text}: too few prompts to detect a regression of the margin (minimum detectable effect "
                    f"{_fmt(r['mde'])}); this pass is not evidence of no regression."), stacklevel=1)
            return r


    def _perplexity_regression(self, suite: Any, case: Any, alpha: float) -> dict[str, Any]:
        import warnings

        from harness import kinds

        r = kinds.perplexity_regression(self.run, suite, case.margin, alpha)
        self.node.user_properties += [
            ("harness_case", case.case_id), ("suite", case.suite), ("category", "all"), ("metric", "perplexity"),
            ("value", r["candidate_perplexity"]), ("reference_value", r["reference_perplexity"]),
            ("p_value", r["p_value"]), ("p_adjusted", r["p_adjusted"]), ("margin", case.margin),
            ("bound", f"worse by > {case.margin:.0%}"), ("n", r["n_candidate"]), ("underpowered", r["underpowered"])]
        text = (f"{case.case_id}: perplexity {r['candidate_perplexity']:.4g} vs reference "
                f"{r['reference_perplexity']:.4g} ({r['candidate_perplexity'] / r['reference_perplexity'] - 1:+.1%}), "
                f"relative margin {case.margin:.0%}, p = {_fmt(r['p_value'])} (paired {r['test']} on per-text "
                f"log-perplexity, n = {r['n_candidate']})")
        if r["regression"]:
            raise GateFailure("REGRESSION " + text, metric="perplexity", value=r["candidate_perplexity"],
                              bound=r["reference_perplexity"])
        if r["underpowered"]:
            warnings.warn(HarnessPowerWarning(f"{text}: too few texts to detect the margin."), stacklevel=1)
        return r

    def check_analysis(self, case: Any) -> list[Any]:
        """Gates of a co-occurrence, BOLD or perplexity suite at category or suite level."""
        from harness import kinds

        with self._guard():
            results = kinds.check(self.run, case)
            props = self.node.user_properties
            props += [("harness_case", case.case_id), ("suite", case.suite), ("category", case.category or "all")]
            for gate, matched, _ in results:
                values = [m.get("value") for m in matched if m.get("value") is not None]
                props.append(("metric", gate.metric))
                props.append(("bound", gate.describe()))
                if values:
                    worst = max(values) if gate.max is not None else min(values)
                    props.append(("value", round(float(worst), 6)))
                if matched and matched[0].get("k") is not None:
                    props.append(("k", matched[0]["k"]))
            return results


    def check_adherence(self, category: Any) -> Any:
        """Human-rated adherence of the candidate (mean 1-5) and inter-rater agreement vs the suite's bounds."""
        from harness import ratings

        with self._guard():
            o = self.node.config.option
            summary = self.run.ratings_summary(o.ratings)
            model = o.ratings_model or self.run.ratings_model(summary)
            rec = ratings.adherence_for(summary, model, category.suite, category.id)
            if rec is None or rec.n_ratings == 0:
                raise GateFailure(f"{category.case_id}: no human ratings for model '{model}' in {o.ratings}; "
                                  "rate its samples (harness ratings export/import) before gating on adherence.")
            kappa = ratings.alpha(summary, category.suite, category.id)
            values = {"adherence.mean": rec.value, "agreement.alpha": kappa}
            self.node.user_properties += [
                ("harness_case", category.case_id), ("suite", category.suite), ("category", category.id),
                ("metric", "adherence.mean"), ("value", rec.value), ("ci_low", rec.ci_low), ("ci_high", rec.ci_high),
                ("n_ratings", rec.n_ratings), ("agreement.alpha", kappa), ("ratings_model", model)]
            failures = []
            for gate in self.run.suites[category.suite].gates_for("ratings"):
                if gate.metric not in values:
                    raise HarnessError(f"ratings gate metric '{gate.metric}'; {did_you_mean(gate.metric, values)}.")
                v = values[gate.metric]
                if v != v or gate.violated_by(v):  # NaN (undefined alpha) fails
                    failures.append(f"{category.case_id}: {gate.metric} = {v:.3g} (bound {gate.describe()}; "
                                    f"{rec.n_ratings} ratings of {rec.n_samples} samples, adherence 95% CI "
                                    f"{rec.ci_low:.2f} to {rec.ci_high:.2f})")
            if failures:
                raise GateFailure("\n".join(failures), metric="adherence.mean", value=rec.value)
            return rec


class HarnessPowerWarning(UserWarning):
    """A regression case passed but could not have detected a regression of its margin."""


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"
