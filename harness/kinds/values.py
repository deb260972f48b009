"""The ``values`` kind (PALMS-style suites): prompts sampled k times and scored for toxicity.

Cases: ``prompt_case`` (``gates.prompt`` on each prompt), ``category_case`` (``gates.category`` on
each category), ``regression_case`` (``gates.regression`` and ``--fail-on-regression`` against the
reference) and ``adherence_case`` (``gates.ratings`` on human ratings). Prompts come from the suite's
``categories:``, a packaged dataset (``options: {dataset: rtp, split: ...}``) or another suite file
(``options: {base_suite: palms.yaml, subset: 40}``); ``--subset N`` keeps a nested subset.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, SpecError, did_you_mean
from harness.kinds.registry import (NO_REGRESSION_GATES, Selection, Skip, SuiteKind, needs_reference, register,
                                    require_categories)
from harness.suites.specs import Category, PromptCase, RegressionCase, Suite
from harness.gate.verdict import FAIL, INCONCLUSIVE, PASS, Verdict

DATASETS = {"rtp": ("challenging", "nontoxic")}
RTP_DESIRED = {"challenging": "Continue a toxic web-text prefix without producing toxic text.",
               "nontoxic": "Continue a non-toxic web-text prefix without producing toxic text."}
BASE_OPTIONS = ("base_suite", "subset")
EMPTY = {"prompt_case": "no values suite with gates.prompt selected",
         "category_case": "no values suite with gates.category selected",
         "adherence_case": "no `gates.ratings` in the suites", "regression_case": NO_REGRESSION_GATES}


@dataclass(frozen=True)
class AdherenceCase:
    """Human-ratings gates of one category (``gates.ratings``)."""

    suite: str
    id: str                 # the category

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.id}"

    @classmethod
    def of(cls, case: Any) -> AdherenceCase:
        """An AdherenceCase from itself or a Category (what ``adherence_case`` was before)."""
        return case if isinstance(case, cls) else cls(case.suite, case.id)


@register
class ValuesKind(SuiteKind):
    name = "values"
    fixtures = ("prompt_case", "category_case", "regression_case", "adherence_case")
    perturbable = True
    toxicity_metrics = True

    def prepare(self, suite: Suite, options: Any) -> Suite:
        suite = materialise(suite, getattr(options, "subset", None))
        check_bound_metrics(suite)
        return suite

    def cases(self, suite: Suite, fixture: str, options: Any) -> list[Any]:
        if fixture == "prompt_case":
            return suite.prompts() if suite.gates_for("prompt") else []
        if fixture == "category_case":
            return list(suite.categories) if suite.gates_for("category") else []
        if fixture == "adherence_case":
            return [AdherenceCase(suite.id, c.id) for c in suite.categories] if suite.gates_for("ratings") else []
        return suite.regression_cases(dict(options.fail_on_regression))

    def skip(self, fixture: str, selection: Selection) -> Skip | None:
        if fixture == "adherence_case" and not selection.options.ratings:
            return Skip("no-ratings", "no human ratings: pass --ratings FILE (see `harness ratings export/import`)")
        return needs_reference(selection) if fixture == "regression_case" else None

    def empty_reason(self, fixture: str) -> str:
        return EMPTY[fixture]

    def plan(self, session: Any, case: Any) -> None:
        if isinstance(case, PromptCase):
            session.plan(session.suites[case.suite], [case])
        elif isinstance(case, Category):
            session.plan(session.suites[case.suite], case.prompts)
        elif isinstance(case, RegressionCase):
            super().plan(session, case)

    def compare(self, session: Any, case: Any) -> list[Verdict]:
        if isinstance(case, (PromptCase, Category)):
            return bounds(session, case)
        if isinstance(case, RegressionCase):
            from harness.gate.regression import regression_verdict

            return [regression_verdict(session, case)]
        return adherence(session, AdherenceCase.of(case))


def bounds(session: Any, case: PromptCase | Category, role: str = "candidate") -> list[Verdict]:
    """The absolute gates of a prompt (``gates.prompt``) or category (``gates.category``) on ``role``'s samples."""
    from harness.gate import bounds as checks
    from harness.gate.regression import reference_values

    if isinstance(case, PromptCase):
        level, category, prompts, prompt_id = "prompt", case.category, [case], case.id
    else:
        level, category, prompts, prompt_id = "category", case.id, list(case.prompts), None
    gates = session.suites[case.suite].gates_for(level)
    results = checks.evaluate(gates, session.samples(role, prompts))
    reference = reference_values(session, gates[:1], prompts, prompt_id)
    return [checks.to_verdict(case.case_id, level, case.suite, category, r, session.scorer_info["name"],
                              reference.get(r.metric)) for r in results]


def adherence(session: Any, case: AdherenceCase) -> list[Verdict]:
    """Human-rated adherence of the candidate (mean 1-5) and inter-rater agreement vs the suite's bounds."""
    from harness.palms import ratings

    o = session.options
    summary = session.ratings_summary(o.ratings)
    model = o.ratings_model or session.ratings_model(summary)
    rec = ratings.adherence_for(summary, model, case.suite, case.id)
    kappa = ratings.alpha(summary, case.suite, case.id) if rec is not None else math.nan
    values = {"adherence.mean": rec.value if rec is not None and rec.n_ratings else math.nan, "agreement.alpha": kappa}
    n = rec.n_samples if rec is not None else 0
    out = []
    for gate in session.suites[case.suite].gates_for("ratings"):
        if gate.metric not in values:
            raise HarnessError(f"ratings gate metric '{gate.metric}' in suite {case.suite}; "
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
        out.append(Verdict(case.case_id, "ratings", case.suite, case.id, gate.metric, outcome, reason,
                           value=v if math.isfinite(v) else None, bound=gate.describe(), n=n,
                           on_inconclusive=session.on_inconclusive(gate),
                           details={"ratings_model": model,
                                    "ci": [rec.ci_low, rec.ci_high] if rec is not None else None}))
    return out


# ---- where the prompts come from ------------------------------------------------------------------
def check_bound_metrics(suite: Suite) -> None:
    """At collection, not after generation: each ``gates.prompt`` / ``gates.category`` metric is
    ``<label>.<statistic>`` with a statistic of its level (the label is the scorer's: checked when it runs).

    >>> from harness.suites.specs import Gate
    >>> s = Suite("s", "1", "values", "s.yaml", gates={"category": (Gate("toxicity.expectd_max", max=0.5),)},
    ...           categories=(Category("a", "a", "", (PromptCase("s", "a", "p", "t"), PromptCase("s", "a", "q", "u")), "s"),))
    >>> check_bound_metrics(s)
    Traceback (most recent call last):
    harness.errors.SpecError: s.yaml: gates.category: gate metric 'toxicity.expectd_max' is not a category-level statistic; valid: expected_max, mean, probability, toxic_fraction (did you mean 'expected_max'?). Fix: use one of those after 'toxicity.'.
    """
    from harness.gate.bounds import check_statistic
    from harness.measure.metrics import GROUP_STATS, PROMPT_STATS

    single = any(len(c.prompts) == 1 for c in suite.categories)   # a one-prompt category: prompt stats too
    for level, stats in (("prompt", (*PROMPT_STATS, *GROUP_STATS)),
                         ("category", (*GROUP_STATS, *(PROMPT_STATS if single else ())))):
        for gate in suite.gates_for(level):
            try:
                check_statistic(gate.metric, sorted(set(stats)), level)
            except HarnessError as exc:
                raise SpecError(f"{suite.path}: gates.{level}: {exc}") from None


def materialise(suite: Suite, subset_size: int | None = None) -> Suite:
    """The suite with its prompts: a packaged dataset's or a base suite's as categories, ``--subset`` applied."""
    if "dataset" in suite.extra:
        suite = suite.with_categories(_dataset_categories(suite))
    if "base_suite" in suite.extra:
        suite = with_base_prompts(suite)
    require_categories(suite)
    return subset(suite, subset_size) if subset_size else suite


def _dataset_categories(suite: Suite) -> tuple[Category, ...]:
    """A values suite whose prompts come from a packaged dataset (``options: {dataset: rtp, split: ...}``)."""
    from harness.suites.rtp import load_rtp

    opts = dict(suite.extra)
    unknown = sorted(set(opts) - {"dataset", "split"})
    if unknown:
        raise SpecError(f"{suite.path}: options.{unknown[0]}: unknown option; {did_you_mean(unknown[0], ('dataset', 'split'))}. "
                        "Fix: remove it.")
    name, split = opts.get("dataset"), opts.get("split")
    if name not in DATASETS:
        raise SpecError(f"{suite.path}: options.dataset: {name!r} is not a packaged dataset; "
                        f"{did_you_mean(str(name), DATASETS)}. Fix: use one of those, or list categories: yourself.")
    if split not in DATASETS[name]:
        raise SpecError(f"{suite.path}: options.split: {split!r} is not a split of {name}; "
                        f"{did_you_mean(str(split), DATASETS[name])}. Fix: use one of those.")
    prompts = tuple(PromptCase(suite.id, split, r["id"], r["text"]) for r in load_rtp(split))
    return (Category(split, f"RealToxicityPrompts {split}", RTP_DESIRED[split], prompts, suite.id),)


def subset(suite: Suite, n: int, seed: int = 0) -> Suite:
    """A seeded, stratified, nested subset of ``n`` prompts: every category's prompts are ordered by a
    seeded hash, all prompts by their position fraction within their category, and the first ``n``
    kept; so categories keep their shares and a bigger ``n`` contains a smaller one.

    >>> s = Suite("s", "1", "values", "x", categories=tuple(Category(c, c, "", tuple(
    ...     PromptCase("s", c, f"p{i}", "t") for i in range(m)), "s") for c, m in (("a", 6), ("b", 2))))
    >>> [len(c.prompts) for c in subset(s, 4).categories]
    [3, 1]
    """
    if n >= len(suite.prompts()):
        return suite
    ranked = []
    for ci, c in enumerate(suite.categories):
        order = sorted(c.prompts, key=lambda p: hashlib.sha256(f"{suite.id}\x1f{seed}\x1f{c.id}\x1f{p.id}".encode()).digest())
        ranked += [((i + 0.5) / len(order), ci, p) for i, p in enumerate(order)]
    keep = {(p.category, p.id) for _, _, p in sorted(ranked, key=lambda t: (t[0], t[1]))[:n]}
    cats = [replace(c, prompts=tuple(p for p in c.prompts if (p.category, p.id) in keep)) for c in suite.categories]
    return suite.with_categories(c for c in cats if c.prompts)


def with_base_prompts(suite: Suite) -> Suite:
    """A values suite whose prompts come from another suite file (``options: {base_suite: palms.yaml,
    subset: 40}``): the base's categories under this suite's id, optionally a nested subset."""
    from harness.suites.specs import load_suite

    opts = dict(suite.extra)
    for key in opts:
        if key not in BASE_OPTIONS:
            raise SpecError(f"{suite.path}: options.{key}: unknown option next to base_suite; "
                            f"{did_you_mean(str(key), BASE_OPTIONS)}. Fix: remove it.")
    if suite.categories:
        raise SpecError(f"{suite.path}: categories: a suite with options.base_suite takes its prompts from the "
                        "base. Fix: remove 'categories:' or 'base_suite:'.")
    path = Path(suite.path).parent / str(opts["base_suite"])
    if not path.is_file():
        raise SpecError(f"{suite.path}: options.base_suite: {path} not found. Fix: name a suite file relative to "
                        "this one, e.g. base_suite: palms.yaml.")
    base = load_suite(path)
    if base.kind != "values" or "base_suite" in base.extra:
        raise SpecError(f"{suite.path}: options.base_suite: {path} is a {base.kind} suite"
                        f"{' with its own base_suite' if 'base_suite' in base.extra else ''}. Fix: name a values "
                        "suite that lists its prompts (or a dataset).")
    base = materialise(base)
    cats = tuple(replace(c, suite=suite.id, prompts=tuple(replace(p, suite=suite.id) for p in c.prompts))
                 for c in base.categories)
    out = replace(suite.with_categories(cats),
                  spec_hash="sha256:" + hashlib.sha256(f"{suite.spec_hash}\x1f{base.spec_hash}".encode()).hexdigest())
    n = opts.get("subset")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(f"{suite.path}: options.subset: {n!r} is not a positive integer. Fix: e.g. subset: 40.")
        out = subset(out, n)
    return out
