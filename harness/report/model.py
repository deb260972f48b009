"""The report model every format shares: the run's verdict, alerts and gate rows, from a results document.

Terminal, Markdown and HTML reports are views of one :class:`Report`, built only from the results
document (``build_report(doc)``), so ``harness report results.json`` and the plugin render the same
thing. A gate row is one (gate level, suite, category, metric): prompt-level verdicts of a category
are folded into one row ("2 of 5 prompts above the bound"); rows are ordered failures first.

    >>> r = build_report({"verdicts": [{"case_id": "s/c", "gate": "category", "suite": "s", "category": "c",
    ...     "metric": "toxicity.expected_max", "outcome": "FAIL", "blocks": True, "reason": "outside the bound",
    ...     "value": 0.7, "bound": "<= 0.5"}]})
    >>> r.line, r.rows[0].where, fmt_bound(r.rows[0])
    ('BLOCKED: 1 gate failed', 's / c', '<= 0.5')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.gate.verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED, run_verdict

OUTCOME_ORDER = {FAIL: 0, INCONCLUSIVE: 1, SKIPPED: 2, PASS: 3}
LEVEL_ORDER = {"regression": 0, "robustness": 1, "suite": 2, "category": 3, "prompt": 4, "ratings": 5}
WORST_PER_GATE = 5
FALLBACK = "TOXICITY SCORER FALLBACK"


@dataclass(frozen=True)
class GateRow:
    """One gate of the report: a verdict, or a category's prompt-level verdicts folded together."""

    gate: str                       # prompt | category | suite | regression | ratings
    suite: str
    category: str | None
    metric: str
    outcome: str
    blocks: bool
    reason: str
    value: float | None = None
    bound: str = ""
    reference_value: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    p_adjusted: float | None = None
    margin: float | None = None
    case_ids: tuple[str, ...] = ()  # the verdicts behind the row
    focus: tuple[str, ...] = ()     # the cases the evidence is about (the failing prompts of a prompt row)
    evidence: str = ""
    scale: str = ""                 # e.g. "relative" for perplexity regressions

    @property
    def where(self) -> str:
        return f"{self.suite} / {self.category}" if self.category else f"{self.suite} (suite)"

    @property
    def label(self) -> str:
        """What the row gates, in words: ``palms / health: toxicity.max per prompt``."""
        kind = {"prompt": " per prompt", "regression": " vs reference", "robustness": " vs clean prompts",
                "ratings": " (ratings)"}.get(self.gate, "")
        return f"{self.where}: {self.metric}{kind}"


@dataclass(frozen=True)
class Report:
    """Everything a report shows, in order: verdict, run line, alerts, gate rows."""

    status: str                     # BLOCKED | PASSED
    line: str                       # "BLOCKED: 3 gates failed, 2 inconclusive, 40 passed"
    counts: Mapping[str, int]
    run_line: str
    alerts: tuple[str, ...]
    rows: tuple[GateRow, ...]
    doc: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def open_rows(self) -> tuple[GateRow, ...]:
        """Rows that need attention: everything but PASS."""
        return tuple(r for r in self.rows if r.outcome != PASS)

    @property
    def passed_rows(self) -> tuple[GateRow, ...]:
        return tuple(r for r in self.rows if r.outcome == PASS)

    def passed_by_suite(self) -> dict[str, int]:
        """Passed gates (verdicts, as counted in the verdict line) per suite."""
        out: dict[str, int] = {}
        for v in self.doc.get("verdicts", []):
            if v.get("outcome") == PASS:
                out[str(v.get("suite"))] = out.get(str(v.get("suite")), 0) + 1
        return out


# ---------------------------------------------------------------- numbers in words

def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: Any, sign: bool = False) -> str:
    """3 significant digits (4 above 1000), '' for missing values."""
    if not _finite(x):
        return ""
    if isinstance(x, int):
        return f"{x:+d}" if sign else str(x)
    return f"{x:+.3g}" if sign else f"{x:.3g}"


def fmt_bound(row: GateRow) -> str:
    """The bound, and the reference's value when there is one (regression rows: the margin)."""
    parts = [row.bound] if row.bound else []
    if row.reference_value is not None and _finite(row.reference_value):
        parts.append(f"ref {fmt(row.reference_value)}")
    return "; ".join(parts)


def fmt_ci(row: GateRow) -> str:
    """``+0.098 [-0.11, +0.37] 90% CI``; '' without a difference."""
    if not _finite(row.difference):
        return ""
    text = fmt(row.difference, sign=True) + (" (rel.)" if row.scale == "relative" else "")
    if _finite(row.ci_low) and _finite(row.ci_high):
        conf = f" {row.confidence:.0%}" if _finite(row.confidence) else ""
        text += f" [{fmt(row.ci_low, sign=True)}, {fmt(row.ci_high, sign=True)}]{conf}"
    return text


def fmt_p(x: Any) -> str:
    if not _finite(x):
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}"


# ---------------------------------------------------------------- rows

def _row(v: Mapping[str, Any]) -> GateRow:
    details = v.get("details") or {}
    return GateRow(
        gate=str(v.get("gate") or ""), suite=str(v.get("suite") or ""), category=v.get("category"),
        metric=str(v.get("metric") or ""), outcome=str(v.get("outcome") or INCONCLUSIVE),
        blocks=bool(v.get("blocks")), reason=str(v.get("reason") or ""), value=v.get("value"),
        bound=str(v.get("bound") or ""), reference_value=v.get("reference_value"),
        difference=v.get("difference"), ci_low=v.get("ci_low"), ci_high=v.get("ci_high"),
        confidence=v.get("confidence"), p_adjusted=v.get("p_adjusted"), margin=v.get("margin"),
        case_ids=(str(v.get("case_id") or ""),), evidence=str(details.get("evidence") or ""),
        scale="relative" if "relative" in str(details.get("scale") or "") else "")


def _fold_prompts(verdicts: Sequence[Mapping[str, Any]]) -> GateRow:
    """One row for a category's prompt-level verdicts of one metric: the worst prompt's value."""
    rows = sorted((_row(v) for v in verdicts), key=lambda r: (OUTCOME_ORDER.get(r.outcome, 9),
                                                              -(r.value if _finite(r.value) else -math.inf)))
    first = rows[0]
    failed = [r for r in rows if r.outcome == FAIL]
    worst = first.case_ids[0].rsplit("/", 1)[-1]
    if failed:
        reason = (f"{len(failed)} of {len(rows)} prompts outside the bound; worst {worst} "
                  f"({fmt(first.value)})")
    elif first.outcome == PASS:
        reason = f"all {len(rows)} prompts within the bound; highest {worst} ({fmt(first.value)})"
    else:
        reason = f"{sum(r.outcome == first.outcome for r in rows)} of {len(rows)} prompts {first.outcome}: {first.reason}"
    return GateRow(gate="prompt", suite=first.suite, category=first.category, metric=first.metric,
                   outcome=first.outcome, blocks=any(r.blocks for r in rows), reason=reason, value=first.value,
                   bound=first.bound, reference_value=first.reference_value,
                   case_ids=tuple(c for r in rows for c in r.case_ids), evidence=first.evidence,
                   focus=tuple(c for r in (failed or rows) for c in r.case_ids))


def gate_rows(verdicts: Sequence[Mapping[str, Any]]) -> list[GateRow]:
    """Verdict dicts -> report rows, failures first, then by suite order of appearance and level."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for v in verdicts:
        key = (v.get("gate"), v.get("suite"), v.get("category"), v.get("metric"))
        if v.get("gate") != "prompt":
            key = (*key, len(groups))  # every non-prompt verdict is its own row
        groups.setdefault(key, []).append(v)
    suites = list(dict.fromkeys(str(v.get("suite") or "") for v in verdicts))
    rows = [_fold_prompts(vs) if key[0] == "prompt" else _row(vs[0]) for key, vs in groups.items()]
    return sorted(rows, key=lambda r: (not r.blocks, OUTCOME_ORDER.get(r.outcome, 9), suites.index(r.suite),
                                       LEVEL_ORDER.get(r.gate, 9), r.category is not None))


# ---------------------------------------------------------------- run line and alerts

def _model(role: str, m: Mapping[str, Any]) -> str:
    path = str(m.get("path") or "?") + (f" + {m['adapter']}" if m.get("adapter") else "")
    fp = str(m.get("fingerprint") or "")
    return f"{role} {path}" + (f" [{fp[:19]}]" if fp else "")


def run_line(doc: Mapping[str, Any]) -> str:
    """Models, scorer, seed and k in one line."""
    config = doc.get("config", {})
    models = "; ".join(_model(r, m) for r, m in (config.get("models") or {}).items()) or "no model"
    ks = sorted({(s.get("decoding") or {}).get("samples") for s in (config.get("suites") or {}).values()} - {None})
    scorer = (config.get("scorer") or {}).get("name", "?")
    k = f" | k={','.join(map(str, ks))}" if ks else ""
    return f"{models} | scorer {scorer} | seed {config.get('seed', '-')}{k}"


def alerts(doc: Mapping[str, Any], rows: Sequence[GateRow]) -> list[str]:
    """What a reader must know before trusting the table: scorer fallback, underpowered comparisons."""
    out = []
    scorer = (doc.get("config") or {}).get("scorer") or {}
    if scorer.get("fallback"):
        said = [w for w in _all_warnings(doc) if FALLBACK in w]
        out.append(said[0] if said else f"{FALLBACK}: scorer '{scorer.get('name')}' is a fallback (Detoxify "
                   "unavailable): its numbers are not comparable with Detoxify runs")
    undecided = [v for v in doc.get("verdicts", []) if v.get("outcome") == INCONCLUSIVE and v.get("units_needed")]
    if undecided:
        need = max(int(v["units_needed"]) for v in undecided)
        one = len(undecided) == 1
        out.append(f"UNDERPOWERED: {len(undecided)} paired comparison{'' if one else 's'} (regression or robustness) "
                   f"cannot decide at {'its' if one else 'their'} margin with these data (up to about {need} units would be needed); "
                   "more prompts or samples, or a wider margin, would decide them")
    else:
        weak = [c for c in doc.get("comparisons", []) if c.get("underpowered")]
        if weak:
            out.append(f"UNDERPOWERED: {len(weak)} comparison{'s' if len(weak) != 1 else ''} could not have "
                       "detected a difference of their margin (minimum detectable effect above it)")
    return out


def _all_warnings(doc: Mapping[str, Any]) -> list[str]:
    return [str(w) for w in ((doc.get("run") or {}).get("warnings") or [])]


def run_warnings(doc: Mapping[str, Any]) -> list[str]:
    """The run's own warnings (truncated prompts, missing samples, ...) not already shown as alerts."""
    fallback = ((doc.get("config") or {}).get("scorer") or {}).get("fallback")
    return [w for w in _all_warnings(doc) if not (fallback and FALLBACK in w)]


def build_report(doc: Mapping[str, Any]) -> Report:
    """The report model of a results document (a dict as written by ``--results-json``)."""
    verdicts = list(doc.get("verdicts") or [])
    summary = run_verdict(verdicts)
    rows = gate_rows(verdicts)
    return Report(status=summary["status"], line=summary["line"], counts=summary["counts"],
                  run_line=run_line(doc), alerts=tuple(alerts(doc, rows)), rows=tuple(rows), doc=doc)


# ---------------------------------------------------------------- evidence

def _label_of(metric: str) -> str:
    return metric.split(".", 1)[0]


def worst_samples(doc: Mapping[str, Any], row: GateRow, limit: int = WORST_PER_GATE) -> list[Mapping[str, Any]]:
    """The candidate's samples behind a row, highest score of the row's label first.

    Prompt rows: the samples of the failing prompts; other rows: the category's (or suite's) samples.
    Rows whose metric is no score label (bias, perplexity) get none.
    """
    label = _label_of(row.metric)
    samples = [s for s in doc.get("samples", []) if s.get("role") == "candidate"
               and s.get("suite") == row.suite and isinstance((s.get("scores") or {}).get(label), (int, float))]
    if row.category is not None:
        samples = [s for s in samples if s.get("category") == row.category]
    if row.gate == "prompt":
        failing = {c.rsplit("/", 1)[-1] for c in row.focus or row.case_ids}
        samples = [s for s in samples if str(s.get("prompt_id")) in failing]
    return sorted(samples, key=lambda s: -float(s["scores"][label]))[:limit]


def evidence_rows(report: Report) -> list[GateRow]:
    """Rows that get an evidence block: the failing and blocking ones."""
    return [r for r in report.rows if r.outcome == FAIL or r.blocks]
