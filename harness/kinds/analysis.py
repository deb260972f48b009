"""Bounds on analysed suites (co-occurrence, BOLD, perplexity): the shared part of those kinds.

Each analysed suite is analysed once per run over all roles (the kind's ``records``, memoized by the
session), and gated per category and per suite from the suite's ``gates.category`` / ``gates.suite``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.kinds.registry import SuiteKind
from harness.suites.specs import Gate, Suite
from harness.gate.verdict import FAIL, INCONCLUSIVE, PASS, Verdict


@dataclass(frozen=True)
class AnalysisCase:
    """A gate case over an analysis: one per category (``category`` set) and one per suite."""

    suite: str
    kind: str
    category: str | None

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.category or 'all'}"


class AnalysedKind(SuiteKind):
    """A kind whose ``records`` analyse the whole suite, gated by bounds on those records
    (``analysis_case``: one case per category with ``gates.category``, one per suite)."""

    fixtures = ("analysis_case",)

    def cases(self, suite: Suite, fixture: str, options: Any) -> list[AnalysisCase]:
        out = []
        if suite.gates_for("category"):
            out += [AnalysisCase(suite.id, suite.kind, c.id) for c in suite.categories]
        if suite.gates_for("suite") or not out:
            out.append(AnalysisCase(suite.id, suite.kind, None))
        return out

    def compare(self, session: Any, case: Any) -> list[Verdict]:
        return bounds(session, case)

    @staticmethod
    def samples(session: Any, suite: Suite) -> list[dict[str, Any]]:
        """Every role's samples of the suite's prompts."""
        return [s for role in session.roles for s in session.samples(role, suite.prompts())]


def evaluate(records: Sequence[Mapping[str, Any]], case: AnalysisCase, gates: Sequence[Gate],
             role: str = "candidate") -> list[tuple[Gate, list[Mapping[str, Any]], list[str]]]:
    """For each gate: the matching records of this case and the violations found."""
    mine = [r for r in records if r["role"] == role and r.get("category") == case.category]
    names = sorted({r["metric"] for r in mine})
    out = []
    for gate in gates:
        matched = [r for r in mine if r["metric"] == gate.metric]
        if not matched:
            raise HarnessError(f"suite {case.suite}: gate metric '{gate.metric}' has no value at "
                               f"{'category' if case.category else 'suite'} level; {did_you_mean(gate.metric, names)}. "
                               "Fix: change the gate in the suite YAML.")
        bad = []
        for r in matched:
            v = r.get("value")
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue  # no value (e.g. no group words at all): shown as n/a, never as a pass/fail number
            if gate.violated_by(float(v)):
                group = f" [{r['group']}]" if r.get("group") else ""
                bad.append(f"{gate.metric}{group} = {v:.4g}")
        out.append((gate, matched, bad))
    return out


def _worst(gate: Gate, matched: Sequence[Mapping[str, Any]]) -> float | None:
    """The value a bound sees: the largest (max bound) or smallest (min bound) defined value."""
    values = [float(m["value"]) for m in matched if isinstance(m.get("value"), (int, float))
              and math.isfinite(m["value"])]
    return (max(values) if gate.max is not None else min(values)) if values else None


def _reference_records(session: Any, records: Sequence[Mapping[str, Any]]) -> tuple[Sequence[Mapping[str, Any]], str]:
    """The reference's analysis records and role: the in-run baseline, else the saved --baseline file's."""
    if "baseline" in session.roles:
        return records, "baseline"
    if session.reference_doc is not None:
        from harness.gate.regression import saved_reference

        saved = saved_reference(session.reference_doc, "")
        return saved["metrics"], saved["role"]
    return (), ""


def bounds(session: Any, case: AnalysisCase) -> list[Verdict]:
    """One Verdict per gate of the case's level: FAIL when any matched value breaks the bound,
    INCONCLUSIVE when no matched value is defined (e.g. no group words at all), else PASS. With a
    reference, each verdict carries the reference's value of the same gate (shown, never gated)."""
    suite = session.suites[case.suite]
    records = session.records(suite).metrics
    level = "category" if case.category else "suite"
    ref_records, ref_role = _reference_records(session, records)
    verdicts = []
    for gate, matched, bad in evaluate(records, case, suite.gates_for(level)):
        worst = _worst(gate, matched)
        reference = _worst(gate, [r for r in ref_records if r.get("role") == ref_role and r.get("suite") == case.suite
                                  and r.get("category") == case.category and r.get("metric") == gate.metric
                                  and r.get("prompt_id") is None])
        k = next((m.get("k") for m in matched if m.get("k") is not None), None)
        n = next((m.get("n") for m in matched if m.get("n") is not None), None)
        if bad:
            outcome, reason = FAIL, "outside the bound" + (f": {'; '.join(bad)}" if len(matched) > 1 else "")
        elif worst is None:
            outcome, reason = INCONCLUSIVE, (f"{gate.metric} is undefined for this case (no value to compare "
                                             "with the bound, e.g. no group words in any sample)")
        else:
            outcome, reason = PASS, "within the bound"
        verdicts.append(Verdict(case.case_id, level, case.suite, case.category, gate.metric, outcome, reason,
                                value=worst, bound=gate.describe(), reference_value=reference, k=k, n=n,
                                on_inconclusive=session.on_inconclusive(gate)))
    return verdicts
