"""The Markdown report: for ``$GITHUB_STEP_SUMMARY`` and merge-request comments.

Verdict line, run line, alerts, then one table of the gates that need attention (failures first,
at most :data:`MAX_ROWS`) and one line counting the passed gates per suite: a short page (under 60
lines for the default suites) that renders as a table in GitHub/GitLab Markdown. Every text from
the document is escaped: HTML special characters become entities and Markdown punctuation is
backslash-escaped, so a generated text can neither inject markup nor break the table.

    >>> escape("a|b <x> *y*")
    'a\\\\|b &lt;x&gt; \\\\*y\\\\*'
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from harness.report.model import Report, build_report, fmt, fmt_bound, fmt_ci, fmt_p, run_warnings

MAX_ROWS = 30
MAX_WARNINGS = 3
SYMBOL = {"FAIL": "\u274c FAIL", "INCONCLUSIVE": "\u26a0\ufe0f INCONCLUSIVE", "PASS": "\u2705 PASS",
          "SKIPPED": "\u23ed\ufe0f SKIPPED"}
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links, tables, strikethrough
HEADERS = ("verdict", "gate", "value", "bound / reference", "difference [CI]", "p (adj.)", "reason")


def escape(text: Any, limit: int = 200) -> str:
    """One table-safe line: no line breaks, HTML-escaped, Markdown punctuation backslash-escaped."""
    text = " ".join(str(text).split())
    text = text.replace("<=", "\u2264").replace(">=", "\u2265")
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return _SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_report(doc_or_report: Mapping[str, Any] | Report) -> str:
    """The Markdown page (ends with a newline)."""
    report = doc_or_report if isinstance(doc_or_report, Report) else build_report(doc_or_report)
    icon = "\u274c" if report.status == "BLOCKED" else "\u2705"
    lines = [f"## {icon} harness: {escape(report.line)}", "", escape(report.run_line, 400), ""]
    for alert in report.alerts:
        head, _, rest = alert.partition(": ")
        lines.append(f"> **{escape(head)}**: {escape(rest, 400)}  ")
    warnings = run_warnings(report.doc)
    if warnings:
        lines.append(f"> {len(warnings)} run warning{'s' if len(warnings) != 1 else ''}: "
                     + "; ".join(escape(w, 120) for w in warnings[:MAX_WARNINGS])
                     + ("; \u2026" if len(warnings) > MAX_WARNINGS else ""))
    if report.alerts or warnings:
        lines.append("")
    shown = report.open_rows[:MAX_ROWS]
    if shown:
        lines += [_row(list(HEADERS)), "| --- | --- | ---: | --- | --- | ---: | --- |"]
        for r in shown:
            lines.append(_row([SYMBOL.get(r.outcome, escape(r.outcome)), escape(r.label), escape(fmt(r.value)),
                               escape(fmt_bound(r)), escape(fmt_ci(r)), escape(fmt_p(r.p_adjusted)),
                               escape(r.reason, 160)]))
        rest = len(report.open_rows) - len(shown)
        if rest:
            lines.append(f"\n\u2026 and {rest} more gate row{'s' if rest != 1 else ''} in the HTML report.")
        lines.append("")
    passed = report.passed_by_suite()
    if passed:
        total = sum(passed.values())
        per_suite = ", ".join(f"{escape(s)} {n}" for s, n in passed.items())
        lines.append(f"\u2705 {total} gate{'s' if total != 1 else ''} passed ({per_suite}).")
    elif not report.rows:
        lines.append("No gate was evaluated in this run.")
    return "\n".join(lines).rstrip("\n") + "\n"
