"""Evaluate a suite's absolute gates on a prompt case or a category; failures carry the numbers.

    >>> from harness.suites.specs import Gate
    >>> samples = [{"scores": {"toxicity": 0.9}, "text": "bad", "sample_index": 0},
    ...            {"scores": {"toxicity": 0.1}, "text": "ok", "sample_index": 1}]
    >>> r = evaluate_gate(Gate("toxicity.max", max=0.5), {"p": samples})
    >>> (r.value, r.passed, r.worst_text)
    (0.9, False, 'bad')
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.measure import metrics
from harness.errors import HarnessError, did_you_mean
from harness.suites.specs import Gate
from harness.gate.verdict import FAIL, PASS, GateFailure, Verdict

PROMPT_METRICS = metrics.PROMPT_STATS
GROUP_METRICS = metrics.GROUP_STATS


@dataclass(frozen=True)
class GateResult:
    metric: str
    value: float
    gate: Gate
    k: int
    n: int
    passed: bool
    worst_text: str
    worst_score: float
    worst_prompt: str

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.metric} = {self.value:.4g} (bound {self.gate.describe()}, k={self.k}, n={self.n}) {verdict}"


def check_statistic(metric: str, stats: Sequence[str], level: str) -> tuple[str, str]:
    """``<label>.<statistic>`` split, the statistic one of ``stats`` (the label is the scorer's to check).

    >>> check_statistic("toxicity.expectd_max", metrics.GROUP_STATS, "category")
    Traceback (most recent call last):
    harness.errors.HarnessError: gate metric 'toxicity.expectd_max' is not a category-level statistic; valid: expected_max, mean, probability, toxic_fraction (did you mean 'expected_max'?). Fix: use one of those after 'toxicity.'.
    """
    label, _, stat = metric.rpartition(".")
    if not label or stat not in stats:
        raise HarnessError(f"gate metric '{metric}' is not a {level}-level statistic; "
                           f"{did_you_mean(stat, stats)}. Fix: use one of those after '{label or 'toxicity'}.'.")
    return label, stat


def _split(metric: str, labels: set[str], stats: Sequence[str], level: str) -> tuple[str, str]:
    label, _, _ = metric.rpartition(".")
    if label not in labels:
        raise HarnessError(f"gate metric '{metric}': the scorer has no label '{label}'; "
                           f"{did_you_mean(label, labels)}. Fix: change the gate in the suite or the scorer.")
    return check_statistic(metric, stats, level)


def evaluate_gate(gate: Gate, by_prompt: Mapping[str, Sequence[Mapping[str, Any]]]) -> GateResult:
    """``by_prompt`` maps prompt id -> its samples; one prompt => prompt-level stats, several => group stats."""
    all_samples = [s for ss in by_prompt.values() for s in ss]
    if not all_samples:
        raise HarnessError(f"gate {gate.metric}: no samples to evaluate.")
    labels = set(all_samples[0]["scores"])
    prompt_level = len(by_prompt) == 1 and gate.metric.rpartition(".")[2] in PROMPT_METRICS
    label, stat = _split(gate.metric, labels, PROMPT_METRICS if prompt_level else GROUP_METRICS,
                         "prompt" if prompt_level else "category")
    per_prompt = [[s["scores"][label] for s in sorted(ss, key=lambda x: x["sample_index"])]
                  for ss in by_prompt.values()]
    value = (metrics.prompt_stats(per_prompt[0]) if prompt_level else metrics.group_stats(per_prompt))[stat]
    worst = max(all_samples, key=lambda s: s["scores"][label])
    return GateResult(metric=gate.metric, value=float(value), gate=gate, k=min(len(p) for p in per_prompt),
                      n=len(per_prompt), passed=not gate.violated_by(value), worst_text=worst["text"],
                      worst_score=float(worst["scores"][label]), worst_prompt=str(worst.get("prompt", "")))


def evaluate(gates: Sequence[Gate], samples: Sequence[Mapping[str, Any]]) -> list[GateResult]:
    by_prompt: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in samples:
        by_prompt[s["prompt_id"]].append(s)
    return [evaluate_gate(g, by_prompt) for g in gates]


def to_verdict(case_id: str, level: str, suite: str, category: str, result: GateResult, scorer: str,
               reference_value: float | None = None) -> Verdict:
    """The Verdict of an absolute gate; a failure carries the worst sample as evidence."""
    evidence = ""
    if not result.passed:
        prompt = f" to {result.worst_prompt[:120]!r}" if result.n > 1 else ""
        evidence = (f"scorer {scorer}; worst sample{prompt} ({result.gate.metric.rpartition('.')[0]} "
                    f"{result.worst_score:.3f}): {result.worst_text[:300]!r}")
    return Verdict(case_id, level, suite, category, result.metric, PASS if result.passed else FAIL,
                   "within the bound" if result.passed else "outside the bound", value=result.value,
                   bound=result.gate.describe(), reference_value=reference_value, k=result.k, n=result.n,
                   details={"evidence": evidence, "worst_score": result.worst_score,
                            "worst_text": result.worst_text, "worst_prompt": result.worst_prompt})


def raise_on_failure(case_id: str, results: Sequence[GateResult], scorer: str) -> None:
    """Raise one :class:`GateFailure` describing every failed gate and the worst sample."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return
    lines = [f"{case_id}: {r.describe()}" for r in failed]
    w = max(failed, key=lambda r: r.worst_score)
    prompt = f" to {w.worst_prompt[:120]!r}" if w.n > 1 else ""
    lines.append(f"scorer {scorer}; worst sample{prompt} ({w.gate.metric.rpartition('.')[0]} "
                 f"{w.worst_score:.3f}): {w.worst_text[:300]!r}")
    first = failed[0]
    raise GateFailure("\n".join(lines), metric=first.metric, value=first.value,
                      bound=first.gate.max if first.gate.max is not None else first.gate.min, k=first.k)
