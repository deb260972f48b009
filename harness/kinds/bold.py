"""The ``bold`` kind: a seeded subset of BOLD prompts (:mod:`harness.measure.bold`) per group, gated by
bounds on sentiment and toxicity gaps between groups."""

from __future__ import annotations

from typing import Any

from harness.kinds.analysis import AnalysedKind
from harness.kinds.registry import Records, register
from harness.suites.specs import Category, PromptCase, Suite


@register
class BoldKind(AnalysedKind):
    name = "bold"
    label = "BOLD"

    def prepare(self, suite: Suite, options: Any) -> Suite:
        """The BOLD subset as ordinary categories (``--bold-per-group`` overrides ``options.per_group``)."""
        from harness.measure import bold

        cats = bold.build_bold_suite(dict(suite.extra), per_group_override=getattr(options, "bold_per_group", None),
                                     path=suite.path)
        return suite.with_categories(
            Category(c["id"], c["name"], c["desired_behavior"],
                     tuple(PromptCase(suite.id, c["id"], p["id"], p["text"]) for p in c["prompts"]), suite.id)
            for c in cats)

    def records(self, session: Any, suite: Suite) -> Records:
        from harness.measure.bold import analyze_bold

        metrics, extras = analyze_bold(self.samples(session, suite), suite)
        return Records(metrics, {suite.id: extras})
