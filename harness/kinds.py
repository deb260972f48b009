"""Suite kinds beyond ``values``: co-occurrence probes, BOLD subsets and held-out perplexity.

Each kind is prepared once (BOLD's seeded subset becomes ordinary categories), analysed once per
run over all roles (memoized in the session), and gated per category and per suite from the
suite's ``gates.category`` / ``gates.suite``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import GateFailure, HarnessError, did_you_mean
from harness.specs import Category, Gate, PromptCase, Suite

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


def prepare(suite: Suite, bold_per_group: int | None = None) -> Suite:
    """Validate kind-specific options early (collection time); materialise BOLD subsets as categories."""
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
    memo = run.__dict__.setdefault("_analysis_memo", {})
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
                bad.append(f"{case.case_id}: {gate.metric}{group} = {v:.4g} (bound {gate.describe()})")
        out.append((gate, matched, bad))
    return out


def check(run: Any, case: AnalysisCase) -> list[tuple[Gate, list[Mapping[str, Any]], list[str]]]:
    suite = run.suites[case.suite]
    records = analyse(run, suite)
    level = "category" if case.category else "suite"
    results = evaluate(records, case, suite.gates_for(level))
    failures = [line for _, _, bad in results for line in bad]
    if failures:
        first = next(g for g, _, bad in results if bad)
        raise GateFailure("\n".join(failures), metric=first.metric)
    return results


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
    comp["candidate_perplexity"] = math.exp(sum(c) / len(c))
    comp["reference_perplexity"] = math.exp(sum(r) / len(r))
    comp["relative_margin"] = margin
    run.comparisons = [x for x in run.comparisons if not (x["suite"] == suite.id and x["metric"] == comp["metric"])]
    run.comparisons.append(comp)
    return comp
