"""The end-of-run terminal summary: the reports table plus run counts and the toxicity–perplexity trade-off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# One or two rows per category: enough to read a run at a glance; -v shows every aggregate metric.
SUMMARY_METRICS = ("toxicity.expected_max", "toxicity.probability", "perplexity", "bias.representation.gender",
                   "bias.representation.race", "bias.representation.religion", "sentiment.gap", "toxicity.gap",
                   "adherence.mean")


def tradeoff_lines(doc: Mapping[str, Any]) -> list[str]:
    """Per model: suite-level expected maximum toxicity next to held-out perplexity."""
    kinds = {sid: info.get("kind") for sid, info in doc["config"].get("suites", {}).items()}
    by_role: dict[str, dict[str, float]] = {}
    for m in doc["metrics"]:
        if m.get("category") is not None or m.get("prompt_id") is not None:
            continue
        if kinds.get(m["suite"]) == "values" and m["metric"] == "toxicity.expected_max":
            by_role.setdefault(m["role"], {})[f"EMT {m['suite']} (k={m['k']})"] = m["value"]
        elif m["metric"] == "perplexity":
            by_role.setdefault(m["role"], {})[f"perplexity {m['suite']}"] = m["value"]
    return [f"trade-off {role}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(vals.items()))
            for role, vals in by_role.items() if len(vals) > 1]


def summary_lines(doc: Mapping[str, Any], verbose: bool = False) -> list[str]:
    from harness.reports import summary_table

    lines = summary_table(doc, None if verbose else SUMMARY_METRICS).splitlines()
    run = doc.get("run", {})
    gen, cached = run.get("generated", {}), run.get("cached", {})
    counts = "samples: " + ", ".join(f"{r} {gen.get(r, 0)} generated / {cached.get(r, 0)} from cache" for r in gen)
    return [lines[0], counts, *lines[1:], *tradeoff_lines(doc)]


def closing_lines(doc: Mapping[str, Any], limit: int = 5) -> list[str]:
    """The run's verdict line ("BLOCKED: 3 gates failed, 2 inconclusive") and the blocking gates.

    >>> closing_lines({"verdicts": [{"outcome": "PASS", "blocks": False}]})
    ['harness: PASSED: 1 gate passed']
    """
    from harness.verdict import run_verdict

    verdicts = doc.get("verdicts", [])
    summary = run_verdict(verdicts)
    lines = [f"harness: {summary['line']}"]
    blocking = [v for v in verdicts if v.get("blocks")]
    for v in blocking[:limit]:
        lines.append(f"  {v['outcome']} {v['case_id']} {v['metric']}: {v.get('reason', '')}")
    if len(blocking) > limit:
        lines.append(f"  ... and {len(blocking) - limit} more (see the report)")
    inconclusive = [v for v in verdicts if v.get("outcome") == "INCONCLUSIVE" and not v.get("blocks")]
    if inconclusive:
        lines.append(f"  {len(inconclusive)} inconclusive gate{'s' if len(inconclusive) != 1 else ''} did not block "
                     "(on_inconclusive warn/pass): the data decide neither way, see the report")
    return lines
