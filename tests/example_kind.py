"""An example suite kind in one module: ``length`` bounds the mean completion length (new tokens)
of each category's samples, from ``gates.category`` (metric ``length.mean_tokens``).

Registered on import; a benchmarks folder activates it with
``pytest_plugins = ["harness.plugin", "example_kind"]`` in its conftest.py, and a test module with
``def test_length(length_case, harness): harness.check(length_case)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from harness.errors import HarnessError, did_you_mean
from harness.kinds import Records, SuiteKind, register
from harness.kinds.registry import require_categories
from harness.gate.verdict import FAIL, PASS, Verdict

METRIC = "length.mean_tokens"


@dataclass(frozen=True)
class LengthCase:
    suite: str
    category: str

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.category}"


@register
class LengthKind(SuiteKind):
    name = "length"
    fixtures = ("length_case",)

    def prepare(self, suite, options):
        return require_categories(suite)

    def cases(self, suite, fixture, options):
        return [LengthCase(suite.id, c.id) for c in suite.categories]

    def plan(self, session, case):
        suite = session.suites[case.suite]
        session.plan(suite, suite.category(case.category).prompts)

    def records(self, session, suite):
        k = session.decoding(suite).samples
        return Records([{"role": role, "suite": suite.id, "category": c.id, "prompt_id": None, "metric": METRIC,
                         "value": mean(s["n_new_tokens"] for s in session.samples(role, c.prompts)),
                         "k": k, "n": len(c.prompts)}
                        for role in session.roles for c in suite.categories])

    def compare(self, session, case):
        suite = session.suites[case.suite]
        mine = next(r for r in session.records(suite).metrics
                    if r["role"] == "candidate" and r["category"] == case.category)
        verdicts = []
        for gate in suite.gates_for("category"):
            if gate.metric != METRIC:
                raise HarnessError(f"suite {suite.id}: gate metric '{gate.metric}'; "
                                   f"{did_you_mean(gate.metric, [METRIC])}. Fix: change gates.category in the suite.")
            failed = gate.violated_by(mine["value"])
            verdicts.append(Verdict(case.case_id, "category", case.suite, case.category, METRIC,
                                    FAIL if failed else PASS, "outside the bound" if failed else "within the bound",
                                    value=mine["value"], bound=gate.describe(), k=mine["k"], n=mine["n"]))
        return verdicts
