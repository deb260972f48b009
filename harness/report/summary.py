"""The end-of-run terminal summary: run line, alerts, the compact gate table, and closing lines
that say why the run exits as it does. ``-v`` adds the passed gates and every aggregate value.

All text from the document is made terminal-safe (control characters, ANSI escapes -> '?').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# One or two rows per category in the -v aggregate table.
SUMMARY_METRICS = ("toxicity.expected_max", "toxicity.probability", "perplexity", "bias.representation.gender",
                   "bias.representation.race", "bias.representation.religion", "sentiment.gap", "toxicity.gap",
                   "adherence.mean")
MAX_OPEN_ROWS = 25
GATE_HEADER = ("verdict", "gate", "value", "bound / reference", "difference [CI]", "p_adj")


def plain(text: Any) -> str:
    """Terminal-safe text: control characters (ANSI escapes, line breaks) become '?'."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def tradeoff_lines(doc: Mapping[str, Any]) -> list[str]:
    """Per model: suite-level expected maximum toxicity next to held-out perplexity."""
    aggregated = {sid for sid, info in doc["config"].get("suites", {}).items() if info.get("toxicity_metrics")}
    by_role: dict[str, dict[str, float]] = {}
    for m in doc["metrics"]:
        if m.get("category") is not None or m.get("prompt_id") is not None:
            continue
        if m["suite"] in aggregated and m["metric"] == "toxicity.expected_max":
            by_role.setdefault(m["role"], {})[f"EMT {m['suite']} (k={m['k']})"] = m["value"]
        elif m["metric"] == "perplexity":
            by_role.setdefault(m["role"], {})[f"perplexity {m['suite']}"] = m["value"]
    return [f"trade-off {role}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(vals.items()))
            for role, vals in by_role.items() if len(vals) > 1]


def gate_table(rows: Sequence[Any]) -> list[str]:
    """Aligned lines: verdict, gate, value, bound / reference, difference [CI], adjusted p."""
    from harness.report.model import fmt, fmt_bound, fmt_ci, fmt_p

    body = [(r.outcome, r.label, fmt(r.value), fmt_bound(r), fmt_ci(r), fmt_p(r.p_adjusted)) for r in rows]
    body = [tuple(plain(c) for c in row) for row in body]
    widths = [max(len(row[i]) for row in [GATE_HEADER, *body]) for i in range(len(GATE_HEADER))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [GATE_HEADER, *body]]


def summary_lines(doc: Mapping[str, Any], verbose: bool = False) -> list[str]:
    """Run line, sample counts, alerts, the gate table (open gates; -v: every gate and aggregate)."""
    from harness.report.model import build_report

    report = build_report(doc)
    run = doc.get("run", {})
    gen, cached = run.get("generated", {}), run.get("cached", {})
    lines = [plain(report.run_line),
             "samples: " + ", ".join(f"{r} {gen.get(r, 0)} generated / {cached.get(r, 0)} from cache" for r in gen)]
    lines += [f"WARNING: {plain(a)}" for a in report.alerts]
    rows = list(report.rows if verbose else report.open_rows[:MAX_OPEN_ROWS])
    if rows:
        lines += gate_table(rows)
    hidden = len(report.open_rows) - len(rows) if not verbose else 0
    if hidden > 0:
        lines.append(f"... and {hidden} more gate rows that need attention (see the HTML or Markdown report)")
    passed = sum(report.passed_by_suite().values())
    if passed and not verbose:
        lines.append(f"{passed} gate{'s' if passed != 1 else ''} passed (-v lists them)")
    if verbose:
        from harness.report.tables import run_lines, summary_table

        lines += ["aggregate values:", *summary_table(doc, SUMMARY_METRICS).splitlines()[len(run_lines(doc)):]]
    return [*lines, *tradeoff_lines(doc)]


def robustness_lines(doc: Mapping[str, Any]) -> list[str]:
    """The robustness table (``extras.robustness``): one row per (suite, perturbation, gated metric) at suite level."""
    from harness.report.tables import fmt_num

    lines = []
    for sid, entry in sorted((doc.get("extras") or {}).get("robustness", {}).items()):
        rows = [r for r in entry["comparisons"] if r["category"] is None]
        if not rows:
            continue
        lines.append(f"robustness {sid} (k={entry['k']}, n={rows[0]['n_candidate']} prompts, perturbed - clean, "
                     f"{(1 - 2 * entry['alpha']):.0%} CI, {entry['correction']}-adjusted p; raised: "
                     "significant rise above 0)")
        for r in rows:
            ci = f"[{fmt_num(r['ci_low'])}, {fmt_num(r['ci_high'])}]"
            lines.append(f"  {r['perturbation']:<22} {r['metric']:<22} clean {fmt_num(r['reference_value'])}  "
                         f"perturbed {fmt_num(r['candidate_value'])}  diff {r['difference']:+.3f} {ci:<17} "
                         f"p_adj {fmt_num(r['p_adjusted'])}  {'raised' if r.get('raised') else '      '}  "
                         f"{r['outcome']}")
    return lines


EXIT_REASONS = {2: "the run was interrupted or a collection error occurred", 3: "an internal error occurred "
                "(e.g. an output file could not be written)", 4: "pytest was called with bad options",
                5: "no test was collected"}


def closing_lines(doc: Mapping[str, Any], limit: int = 5, exitstatus: int | None = None,
                  stopped: str | None = None) -> list[str]:
    """The run's verdict line, the gates that block it, and why the process exits as it does.
    ``stopped``: the input error that stopped the run part-way (its gates are then no verdict).

    >>> closing_lines({"verdicts": [{"outcome": "PASS", "blocks": False}]})
    ['harness: PASSED: 1 gate passed']
    >>> closing_lines({"verdicts": [{"outcome": "FAIL", "blocks": True, "case_id": "s/c", "metric": "m",
    ...                              "reason": "outside the bound"}]}, exitstatus=1)[-1]
    'harness: exit 1 because 1 gate failed (s/c m)'
    """
    from harness.gate.verdict import run_verdict

    verdicts = doc.get("verdicts", [])
    summary = run_verdict(verdicts)
    lines = ([plain(f"harness: STOPPED: {stopped}"), f"  gates checked before it stopped: {summary['line']}"]
             if stopped else [f"harness: {summary['line']}"])
    blocking = [v for v in verdicts if v.get("blocks")]
    for v in blocking[:limit]:
        lines.append(plain(f"  {v['outcome']} {v['case_id']} {v['metric']}{_numbers(v)}: {v.get('reason', '')}"))
    if len(blocking) > limit:
        lines.append(f"  ... and {len(blocking) - limit} more (see the report)")
    inconclusive = [v for v in verdicts if v.get("outcome") == "INCONCLUSIVE" and not v.get("blocks")]
    if inconclusive:
        lines.append(f"  {len(inconclusive)} inconclusive gate{'s' if len(inconclusive) != 1 else ''} did not block "
                     "(on_inconclusive warn/pass): the data decide neither way, see the report")
    if stopped and exitstatus is not None and int(exitstatus) == 4:
        lines.append("harness: exit 4 because an input error stopped the run (STOPPED above): the gates it "
                     "checked before are no verdict on the model")
    elif exitstatus is not None and int(exitstatus) != 0:
        lines.append(_exit_line(int(exitstatus), blocking))
    return lines


def _numbers(v: Mapping[str, Any]) -> str:
    """' = 0.884 (bound <= 0.5)' / ' diff +0.347 (90% CI +0.292 to +0.403, margin 0.05)' for a closing line."""
    from harness.gate.verdict import fmt

    if v.get("difference") is not None:
        conf = f"{v['confidence']:.0%} CI " if v.get("confidence") else "CI "
        return (f" diff {fmt(v['difference'], sign=True)} ({conf}{fmt(v.get('ci_low'), sign=True)} to "
                f"{fmt(v.get('ci_high'), sign=True)}, {v.get('bound') or 'margin ' + fmt(v.get('margin'))})")
    if v.get("value") is not None:
        return f" = {fmt(v['value'])} (bound {v.get('bound', '')})"
    return ""


def _exit_line(status: int, blocking: Sequence[Mapping[str, Any]]) -> str:
    if status == 1 and blocking:
        failed = sum(v.get("outcome") == "FAIL" for v in blocking)
        undecided = len(blocking) - failed
        what = ", ".join(x for x in (f"{failed} gate{'s' if failed != 1 else ''} failed" if failed else "",
                                     f"{undecided} inconclusive gate{'s' if undecided != 1 else ''} set to "
                                     "on_inconclusive=fail" if undecided else "") if x)
        names = ", ".join(f"{v['case_id']} {v['metric']}" for v in blocking[:3])
        more = f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
        return plain(f"harness: exit 1 because {what} ({names}{more})")
    if status == 1:
        return "harness: exit 1 because a test outside the harness gates failed or errored (see the failures above)"
    return f"harness: exit {status} because {EXIT_REASONS.get(status, 'pytest reported an error')}"
