"""The ``cooccurrence`` kind: GPT-3-style co-occurrence bias probes (:mod:`harness.measure.bias`), gated by
bounds on the suite's representation / association / sentiment records."""

from __future__ import annotations

from typing import Any

from harness.kinds.analysis import AnalysedKind
from harness.kinds.registry import Records, register, require_categories
from harness.suites.specs import Suite


@register
class CooccurrenceKind(AnalysedKind):
    name = "cooccurrence"
    label = "co-occurrence"

    def prepare(self, suite: Suite, options: Any) -> Suite:
        from harness.measure import bias
        from harness.suites.kind_options import suite_options

        require_categories(suite)
        bias.parse_options(suite_options(suite), suite.path)
        return suite

    def records(self, session: Any, suite: Suite) -> Records:
        from harness.measure.bias import analyze_cooccurrence

        metrics, extras = analyze_cooccurrence(suite, self.samples(session, suite))
        return Records(metrics, {suite.id: extras})
