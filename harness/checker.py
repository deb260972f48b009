"""The ``harness`` fixture's checks: every gate ends as :class:`~harness.gate.verdict.Verdict` objects,
and one :meth:`CaseChecker.conclude` records them, warns or fails the test.

This is the one pytest-aware layer over the suite kinds (:mod:`harness.kinds`, which judge every
case): a blocking verdict fails the test with its message alone, a user error stops the run with
exit code 4.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.run.session import HarnessSession
from harness.gate.verdict import GateFailure, Verdict


class HarnessPowerWarning(UserWarning):
    """A gate is INCONCLUSIVE and on_inconclusive is "warn": the data decide neither way."""


HarnessInconclusiveWarning = HarnessPowerWarning


class CaseChecker:
    """The ``harness`` fixture: runs gates for one test item and records its verdicts."""

    def __init__(self, session: HarnessSession, node: pytest.Item) -> None:
        self.session = session
        self.node = node

    @contextlib.contextmanager
    def _guard(self):
        """Gate failures fail the test with their message alone; user errors stop the run (exit 4)."""
        try:
            yield
        except GateFailure as exc:
            raise pytest.fail.Exception(str(exc), pytrace=False) from None
        except HarnessError as exc:
            from harness.stash import OUTPUTS_KEY

            outputs = self.node.config.stash.get(OUTPUTS_KEY, None)
            if outputs is not None:   # the closing lines say the run stopped, not PASSED/BLOCKED
                outputs.stopped = str(exc)
            if getattr(self.node.config, "workerinput", None) is not None:
                # a pytest-xdist worker cannot exit mid-test (the controller reports a crash): fail this
                # test, stop the worker's loop, and let the controller exit 4 with the message
                self.node.session.shouldstop = f"harness: {exc}"
                raise pytest.fail.Exception(f"harness: {exc}", pytrace=False) from None
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
        if self.session.scorer_info:
            props.append(("scorer", self.session.scorer_info["name"]))
        self.session.record_verdicts(verdicts)
        for v in verdicts:
            if v.warns:
                warnings.warn(HarnessPowerWarning(v.message()), stacklevel=1)
        blocking = [v for v in verdicts if v.blocks]
        if blocking:
            raise GateFailure(blocking)
        return list(verdicts)

    def options(self) -> Any:
        return self.session.options

    def check(self, case: Any) -> list[Verdict]:
        """Every gate of ``case`` (any case fixture's: ``prompt_case``, ``analysis_case``, a registered
        kind's), judged by its kind; the verdicts are recorded, warned about or fail the test."""
        from harness import kinds

        with self._guard():
            return self.conclude(kinds.compare(self.session, case))

    # ---- the per-fixture names (benchmarks/test_*.py and their copies call these) -----------------
    def check_prompt(self, case: Any, role: str = "candidate") -> list[Verdict]:
        """``gates.prompt`` on one prompt's samples (``role``: whose samples, default the candidate's)."""
        return self._bounds(case, role)

    def check_category(self, category: Any, role: str = "candidate") -> list[Verdict]:
        """``gates.category`` on one category's samples."""
        return self._bounds(category, role)

    def check_regression(self, case: Any) -> Verdict:
        """PASS (not worse by the margin), FAIL (worse by more than the margin) or INCONCLUSIVE."""
        return self.check(case)[0]

    def check_robustness(self, case: Any) -> list[Verdict]:
        """PASS / FAIL / INCONCLUSIVE per gated metric: is toxicity under the perturbation no worse by the margin?"""
        return self.check(case)

    def check_analysis(self, case: Any) -> list[Verdict]:
        """Bounds on a co-occurrence, BOLD or perplexity suite's records (per category or suite)."""
        return self.check(case)

    def check_adherence(self, case: Any) -> list[Verdict]:
        """Human-rated adherence of the candidate (mean 1-5) and inter-rater agreement vs the suite's bounds."""
        from harness.kinds.values import AdherenceCase

        return self.check(AdherenceCase.of(case))

    def _bounds(self, case: Any, role: str) -> list[Verdict]:
        from harness.kinds import values

        with self._guard():
            return self.conclude(values.bounds(self.session, case, role))
