"""The ``harness`` fixture's checks: every gate ends as :class:`~harness.verdict.Verdict` objects,
and one :meth:`CaseChecker.conclude` records them, warns or fails the test.

This is the one pytest-aware layer over the domain modules (checks, kinds, compare, ratings): a
blocking verdict fails the test with its message alone, a user error stops the run with exit code 4.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import pytest

from harness.errors import HarnessError, did_you_mean
from harness.session import HarnessSession
from harness.verdict import FAIL, INCONCLUSIVE, PASS, GateFailure, Verdict


class HarnessPowerWarning(UserWarning):
    """A gate is INCONCLUSIVE and on_inconclusive is "warn": the data decide neither way."""


HarnessInconclusiveWarning = HarnessPowerWarning


class CaseChecker:
    """The ``harness`` fixture: runs gates for one test item and records its verdicts."""

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

    def conclude(self, verdicts: Sequence[Verdict]) -> list[Verdict]:
        """Record verdicts (JUnit properties, the session's list); warn on INCONCLUSIVE, fail on blocking ones."""
        props = self.node.user_properties
        for i, v in enumerate(verdicts):
            if i == 0:
                props += [("harness_case", v.case_id), ("suite", v.suite), ("category", v.category or "all")]
            pre = "" if i == 0 else f"{v.metric}:"
            props += [(f"{pre}metric", v.metric), (f"{pre}outcome", v.outcome)]
            for key in ("value", "bound", "reference_value", "difference", "ci_low", "ci_high", "p_value",
                        "p_adjusted", "margin", "k", "n", "units_needed"):
                x = getattr(v, key)
                if x is not None and not (isinstance(x, float) and not math.isfinite(x)):
                    props.append((f"{pre}{key}", round(x, 6) if isinstance(x, float) else x))
        if self.run.scorer_info:
            props.append(("scorer", self.run.scorer_info["name"]))
        self.run.record_verdicts(verdicts)
        for v in verdicts:
            if v.warns:
                warnings.warn(HarnessPowerWarning(v.message()), stacklevel=1)
        blocking = [v for v in verdicts if v.blocks]
        if blocking:
            raise GateFailure(blocking)
        return list(verdicts)

    def options(self) -> Any:
        return self.run.options

    # ---- absolute gates on the candidate's own samples -------------------------------------
    def _absolute(self, case_id: str, level: str, suite_id: str, category: str, prompts: list[Any],
                  prompt_id: str | None, role: str) -> list[Verdict]:
        from harness import checks

        with self._guard():
            suite = self.run.suites[suite_id]
            gates = suite.gates_for(level)
            results = checks.evaluate(gates, self.run.samples(role, prompts))
            reference = self.run.reference_values(gates[:1], prompts, prompt_id)
            verdicts = [checks.to_verdict(case_id, level, suite_id, category, r, self.run.scorer_info["name"],
                                          reference.get(r.metric)) for r in results]
            return self.conclude(verdicts)

    def check_prompt(self, case: Any, role: str = "candidate") -> list[Verdict]:
        return self._absolute(case.case_id, "prompt", case.suite, case.category, [case], case.id, role)

    def check_category(self, category: Any, role: str = "candidate") -> list[Verdict]:
        return self._absolute(category.case_id, "category", category.suite, category.id, list(category.prompts),
                              None, role)

    # ---- regression against the reference ----------------------------------------------------
    def check_regression(self, case: Any) -> Verdict:
        """PASS (not worse by the margin), FAIL (worse by more than the margin) or INCONCLUSIVE."""
        with self._guard():
            verdict = self.run.regression_verdict(case)
            self.conclude([verdict])
            return verdict

    # ---- robustness: the candidate under perturbed prompts vs the clean prompts -----------------------
    def check_robustness(self, case: Any) -> list[Verdict]:
        """PASS / FAIL / INCONCLUSIVE per gated metric: is toxicity under the perturbation no worse by the margin?"""
        from harness.kinds import robustness

        with self._guard():
            return self.conclude(robustness.verdicts(self.run, case))

    # ---- bias / BOLD / perplexity bounds --------------------------------------------------------
    def check_analysis(self, case: Any) -> list[Verdict]:
        from harness import kinds

        with self._guard():
            return self.conclude(kinds.check(self.run, case))

    # ---- human ratings ---------------------------------------------------------------------------
    def check_adherence(self, category: Any) -> list[Verdict]:
        """Human-rated adherence of the candidate (mean 1-5) and inter-rater agreement vs the suite's bounds."""
        from harness import ratings

        with self._guard():
            o = self.run.options
            summary = self.run.ratings_summary(o.ratings)
            model = o.ratings_model or self.run.ratings_model(summary)
            rec = ratings.adherence_for(summary, model, category.suite, category.id)
            kappa = ratings.alpha(summary, category.suite, category.id) if rec is not None else math.nan
            values = {"adherence.mean": rec.value if rec is not None and rec.n_ratings else math.nan,
                      "agreement.alpha": kappa}
            n = rec.n_samples if rec is not None else 0
            out = []
            for gate in self.run.suites[category.suite].gates_for("ratings"):
                if gate.metric not in values:
                    raise HarnessError(f"ratings gate metric '{gate.metric}' in suite {category.suite}; "
                                       f"{did_you_mean(gate.metric, values)}. Fix: change gates.ratings in the suite.")
                v = values[gate.metric]
                if not math.isfinite(v) or n < 2:
                    outcome = INCONCLUSIVE
                    reason = (f"no human ratings for model '{model}' in {o.ratings}: rate its samples (harness "
                              "ratings export/import)" if rec is None or not rec.n_ratings else
                              f"{gate.metric} is undefined with these ratings ({n} rated samples; agreement needs "
                              "at least 2 raters on 2 samples with some variation)")
                else:
                    outcome = FAIL if gate.violated_by(v) else PASS
                    reason = (f"outside the bound ({rec.n_ratings} ratings of {n} samples, adherence 95% CI "
                              f"{rec.ci_low:.2f} to {rec.ci_high:.2f})") if outcome == FAIL else "within the bound"
                out.append(Verdict(category.case_id, "ratings", category.suite, category.id, gate.metric, outcome,
                                   reason, value=v if math.isfinite(v) else None, bound=gate.describe(), n=n,
                                   on_inconclusive=self.run.on_inconclusive(gate),
                                   details={"ratings_model": model,
                                            "ci": [rec.ci_low, rec.ci_high] if rec is not None else None}))
            return self.conclude(out)
