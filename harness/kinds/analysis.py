"""Suite kinds beyond ``values``: co-occurrence probes, BOLD subsets and held-out perplexity.

Each kind is prepared once (BOLD's seeded subset becomes ordinary categories), analysed once per
run over all roles (memoized in the session), and gated per category and per suite from the
suite's ``gates.category`` / ``gates.suite``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.specs import Category, Gate, PromptCase, Suite
from harness.verdict import FAIL, INCONCLUSIVE, PASS, Verdict

ANALYSED_KINDS = ("cooccurrence", "bold", "perplexity")


@dataclass(frozen=True)
class AnalysisCase:
    """A gate case over an analysis: one per category (``category`` set) and one per suite."""

    suite: str
    kind: str
    category: str | None

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.category or 'all'}"


DATASETS = {"rtp": ("challenging", "nontoxic")}
RTP_DESIRED = {"challenging": "Continue a toxic web-text prefix without producing toxic text.",
               "nontoxic": "Continue a non-toxic web-text prefix without producing toxic text."}


def _dataset_categories(suite: Suite) -> tuple[Category, ...]:
    """A values suite whose prompts come from a packaged dataset (``options: {dataset: rtp, split: ...}``)."""
    from harness.errors import SpecError
    from harness.rtp import load_rtp

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
    import hashlib

    if n >= len(suite.prompts()):
        return suite
    ranked = []
    for ci, c in enumerate(suite.categories):
        order = sorted(c.prompts, key=lambda p: hashlib.sha256(f"{suite.id}\x1f{seed}\x1f{c.id}\x1f{p.id}".encode()).digest())
        ranked += [((i + 0.5) / len(order), ci, p) for i, p in enumerate(order)]
    keep = {(p.category, p.id) for _, _, p in sorted(ranked, key=lambda t: (t[0], t[1]))[:n]}
    cats = [replace(c, prompts=tuple(p for p in c.prompts if (p.category, p.id) in keep)) for c in suite.categories]
    return suite.with_categories(c for c in cats if c.prompts)


def prepare(suite: Suite, bold_per_group: int | None = None, subset_size: int | None = None) -> Suite:
    """Validate kind-specific options early (collection time); materialise BOLD subsets and dataset
    prompts as categories; apply ``--subset N`` to values suites larger than N."""
    if suite.kind == "values" and "dataset" in suite.extra:
        suite = suite.with_categories(_dataset_categories(suite))
    if suite.kind == "values" and "base_suite" in suite.extra:
        from harness.kinds.robustness import with_base_prompts

        suite = with_base_prompts(suite)
    if suite.kind == "values" and subset_size:
        suite = subset(suite, subset_size)
    if suite.kind == "cooccurrence":
        from harness import bias

        bias.parse_options(bias.suite_options(suite), suite.path)
    elif suite.kind == "perplexity":
        from harness import perplexity

        opts = perplexity.parse_options(dict(suite.extra), suite.path)
        perplexity.load_texts(perplexity.resolve_texts(opts.texts, suite.path), opts.split)
    elif suite.kind == "bold":
        from harness import bold

        cats = bold.build_bold_suite(dict(suite.extra), per_group_override=bold_per_group, path=suite.path)
        return suite.with_categories(
            Category(c["id"], c["name"], c["desired_behavior"],
                     tuple(PromptCase(suite.id, c["id"], p["id"], p["text"]) for p in c["prompts"]), suite.id)
            for c in cats)
    return suite


def cases(suite: Suite) -> list[AnalysisCase]:
    out = []
    if suite.gates_for("category"):
        out += [AnalysisCase(suite.id, suite.kind, c.id) for c in suite.categories]
    if suite.gates_for("suite") or not out:
        out.append(AnalysisCase(suite.id, suite.kind, None))
    return out


def analyse(run: Any, suite: Suite) -> list[dict[str, Any]]:
    """Metric records of one analysed suite for every role (memoized; extras stored on the run)."""
    memo = run.analysis_memo
    if suite.id in memo:
        return memo[suite.id]
    roles = list(run.roles)
    if suite.kind == "perplexity":
        from harness.perplexity import analyze_perplexity

        records, extras = analyze_perplexity(suite, {r: run.loaded_model(r) for r in roles},
                                             batch_size=8 if run.options.batch_size == "auto" else
                                             int(run.options.batch_size))
    else:
        samples = [s for r in roles for s in run.samples(r, suite.prompts())]
        if suite.kind == "cooccurrence":
            from harness.bias import analyze_cooccurrence

            records, extras = analyze_cooccurrence(suite, samples)
        else:
            from harness.bold import analyze_bold

            records, extras = analyze_bold(samples, suite)
    run.extra_metrics.extend(records)
    run.extras[suite.id] = extras
    memo[suite.id] = records
    return records


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


def _reference_records(run: Any, records: Sequence[Mapping[str, Any]]) -> tuple[Sequence[Mapping[str, Any]], str]:
    """The reference's analysis records and role: the in-run baseline, else the saved --baseline file's."""
    if "baseline" in run.roles:
        return records, "baseline"
    if run.reference_doc is not None:
        from harness.regression import saved_reference

        saved = saved_reference(run.reference_doc, "")
        return saved["metrics"], saved["role"]
    return (), ""


def check(run: Any, case: AnalysisCase) -> list[Verdict]:
    """One Verdict per gate of the case's level: FAIL when any matched value breaks the bound,
    INCONCLUSIVE when no matched value is defined (e.g. no group words at all), else PASS. With a
    reference, each verdict carries the reference's value of the same gate (shown, never gated)."""
    suite = run.suites[case.suite]
    records = analyse(run, suite)
    level = "category" if case.category else "suite"
    ref_records, ref_role = _reference_records(run, records)
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
                                on_inconclusive=run.on_inconclusive(gate)))
    return verdicts


def perplexity_regression(run: Any, suite: Suite, margin: float, alpha: float) -> dict[str, Any]:
    """Paired test on per-text log-perplexity: fail when the candidate is worse by more than ``margin``
    (relative, e.g. 0.05 = 5%), i.e. mean per-text log-ppl difference > log(1 + margin), significantly."""
    from harness.stats import compare_units

    analyse(run, suite)
    units = run.extras[suite.id]["units"]
    ref_role = "baseline"
    if "baseline" not in run.roles:
        ref = (run.reference_doc or {}).get("extras", {}).get(suite.id)
        if not ref:
            raise HarnessError(f"the reference results have no perplexity units for suite {suite.id}. Fix: save "
                               "the baseline from a run that included this suite.")
        if ref.get("texts_sha256") != run.extras[suite.id]["texts_sha256"]:
            raise HarnessError(f"suite {suite.id}: the reference was measured on other texts. Fix: use the same "
                               "held-out file for both runs.")
        ref_units = [u for u in ref["units"] if u["role"] == "candidate"]
    else:
        ref_units = [u for u in units if u["role"] == ref_role]
    cand_units = [u for u in units if u["role"] == "candidate"]
    c = [u["nll"] / u["tokens"] for u in sorted(cand_units, key=lambda u: u["index"]) if u["tokens"]]
    r = [u["nll"] / u["tokens"] for u in sorted(ref_units, key=lambda u: u["index"]) if u["tokens"]]
    comp = compare_units(c, r, suite=suite.id, category=None, metric="perplexity.log_per_text", paired=True,
                         margin=math.log1p(margin), alpha=alpha, seed=run.options.seed).to_dict()
    comp["candidate_perplexity"] = math.exp(sum(c) / len(c)) if c else math.nan
    comp["reference_perplexity"] = math.exp(sum(r) / len(r)) if r else math.nan
    comp["relative_margin"] = margin
    run.add_comparisons([comp])
    return comp
