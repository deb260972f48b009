"""The HTML report: verdict banner and gate table first, then plots, evidence and aggregates.

Two pieces, each between marker comments so a test can compare them across outputs:
:func:`head_html` (banner, run line, alerts, gate table) and :func:`body_html` (plots, worst
samples per failing gate, the aggregate table by suite, the run configuration). The pytest-html
hooks put the head in the summary's prefix and the body in its postfix; :func:`page_html` wraps
both in a standalone page (``harness report``, ``harness export --html``). Every text from the
document goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

from harness.report.model import (GateRow, Report, build_report, evidence_rows, fmt, fmt_bound, fmt_ci, fmt_p,
                                  run_warnings, worst_samples)
from harness.measure.results import candidate_role
from harness.report.tables import config_html, fmt_num, summary_rows, table_html

CSS = """
.hr{color:#1a1a1a;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px}
.hr h2{font-size:18px;color:#1a1a1a;margin:18px 0 6px}
.hr table{border-collapse:collapse;margin:6px 0}
.hr th,.hr td{border:1px solid #c8c8c8;padding:3px 7px;text-align:left;vertical-align:top}
.hr th{background:#f0f0f0}
.hr td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.hr td.b{white-space:nowrap}.hr table.hr-gates{width:100%}.hr td.g{width:26%}.hr td.r{width:34%}
.hr td.t{white-space:pre-wrap;max-width:620px}
.hr-banner{font-size:22px;font-weight:700;padding:10px 14px;color:#fff;border-radius:4px;margin:4px 0}
.hr-BLOCKED{background:#a33a00}.hr-PASSED{background:#00664d}
.hr-run{color:#444;margin:4px 0 8px}
.hr-alert{border-left:5px solid #D55E00;background:#fff1e6;padding:5px 10px;margin:5px 0;font-weight:600}
.hr-FAIL{color:#a33a00;font-weight:700;white-space:nowrap}.hr-INCONCLUSIVE{color:#7a5000;font-weight:700;white-space:nowrap}
.hr-PASS{color:#00664d;white-space:nowrap}.hr-SKIPPED{color:#555;white-space:nowrap}
.hr details{margin:6px 0}.hr summary{cursor:pointer;font-weight:600}
.hr figure{margin:12px 0}.hr figcaption{font-weight:600;margin-bottom:4px}
.hr img{max-width:100%;height:auto;border:1px solid #e0e0e0}
"""
# inside pytest-html: the summary (and so the verdict) right under the title, above the environment
PYTEST_HTML_CSS = """
body{display:flex;flex-direction:column;align-items:stretch}
body>#title,body>#title+p{order:-2}
body>.summary{order:-1}
.harness-case table{border-collapse:collapse;margin:4px 0}
.harness-case td,.harness-case th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
"""
MARK = "<!-- harness-report:{0} -->{1}<!-- /harness-report:{0} -->"
SYMBOL = {"FAIL": "\u2717 FAIL", "INCONCLUSIVE": "? INCONCLUSIVE", "PASS": "\u2713 PASS", "SKIPPED": "\u2013 SKIPPED"}
GATE_HEADERS = ("verdict", "gate", "value", "bound / reference", "difference [CI]", "p (adj.)", "reason")


def _e(value: Any) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def style_html(pytest_html: bool = False) -> str:
    return f"<style>{CSS}{PYTEST_HTML_CSS if pytest_html else ''}</style>"


# ---------------------------------------------------------------- head: verdict and gates

def _gate_row(row: GateRow) -> str:
    cells = [f'<td class="hr-{_e(row.outcome)}">{_e(SYMBOL.get(row.outcome, row.outcome))}</td>',
             f'<td class="g">{_e(row.label)}</td>', f'<td class="n">{_e(fmt(row.value))}</td>',
             f'<td class="b">{_e(fmt_bound(row))}</td>', f'<td class="n">{_e(fmt_ci(row))}</td>',
             f'<td class="n">{_e(fmt_p(row.p_adjusted))}</td>', f'<td class="r">{_e(row.reason)}</td>']
    return "<tr>" + "".join(cells) + "</tr>"


def gates_table(rows: Sequence[GateRow], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in GATE_HEADERS)
    return (f'<table class="hr-gates"{ident}><thead><tr>{head}</tr></thead><tbody>'
            + "".join(_gate_row(r) for r in rows) + "</tbody></table>")


def head_html(report: Report) -> str:
    """Banner, run line, alerts, run warnings (collapsed) and the gate table, failures first."""
    out = ['<div class="hr hr-head">',
           f'<div class="hr-banner hr-{_e(report.status)}" id="harness-verdict" role="status">{_e(report.line)}</div>',
           f'<p class="hr-run">{_e(report.run_line)}</p>']
    out += [f'<div class="hr-alert">{_e(a)}</div>' for a in report.alerts]
    warnings = run_warnings(report.doc)
    if warnings:
        out.append(f'<details class="hr-warnings"><summary>{len(warnings)} run warning'
                   f'{"s" if len(warnings) != 1 else ""}</summary><ul>'
                   + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></details>")
    if report.open_rows:
        out.append(gates_table(report.open_rows, "harness-gates"))
    elif report.rows:
        out.append('<p id="harness-gates">Every gate passed.</p>')
    else:
        out.append('<p id="harness-gates">No gate was evaluated in this run.</p>')
    if report.passed_rows:
        n = sum(report.passed_by_suite().values())
        out.append(f'<details class="hr-passed"><summary>{n} gate{"s" if n != 1 else ""} passed</summary>'
                   + gates_table(report.passed_rows) + "</details>")
    out.append("</div>")
    return MARK.format("head", "".join(out))


# ---------------------------------------------------------------- body: plots, evidence, aggregates

def _figures(images: Sequence[tuple[str, bytes]]) -> str:
    from harness.report.plots import plot_title

    out = []
    for name, png in images:
        title = plot_title(name)
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<figure class="hr-plot"><figcaption>{_e(title)}</figcaption><img alt="{_e(title)}" '
                   f'title="{_e(name)}" src="data:image/png;base64,{data}"/></figure>')
    return "".join(out)


def _evidence(doc: Mapping[str, Any], row: GateRow) -> str:
    label = row.metric.split(".", 1)[0]
    samples = worst_samples(doc, row)
    summary = f"{SYMBOL.get(row.outcome, row.outcome)} {row.label} = {fmt(row.value)} ({fmt_bound(row)})"
    out = [f'<details class="hr-evidence"><summary>{_e(summary)}</summary><p>{_e(row.reason)}</p>']
    if samples:
        rows = [[f"{s.get('category')}/{s.get('prompt_id')} #{s.get('sample_index')}", s.get("prompt", ""),
                 fmt_num(float(s["scores"][label])), s.get("text", "")] for s in samples]
        out.append(table_html(["case", "prompt", label, "sample text (worst first)"], rows, "hr-samples",
                              text_col=3))
    elif row.evidence:
        out.append(f"<p>{_e(row.evidence)}</p>")
    else:
        out.append("<p>No per-sample evidence for this metric.</p>")
    out.append("</details>")
    return "".join(out)


def _outcomes_by_key(report: Report) -> dict[tuple, str]:
    found: dict[tuple, list[str]] = {}
    for r in report.rows:
        if r.gate != "prompt":
            found.setdefault((r.suite, r.category, r.metric), []).append(
                f"{r.outcome}{' vs reference' if r.gate == 'regression' else ''}")
    return {k: "; ".join(v) for k, v in found.items()}


def _aggregates(report: Report) -> str:
    doc = report.doc
    names = sorted({str(m.get("metric")) for m in doc.get("metrics", []) if m.get("prompt_id") is None})
    rows = summary_rows(doc, names, _outcomes_by_key(report))
    by_suite: dict[str, list[dict]] = {}
    for r in rows:
        by_suite.setdefault(str(r["suite"]), []).append(r)
    out = []
    for suite, suite_rows in by_suite.items():
        body = [[r["case"], r["metric"], fmt_num(r["value"]), fmt_num(r["k"]), fmt_num(r["reference"]),
                 fmt_num(r["p_adjusted"]), r["verdict"]] for r in suite_rows]
        out.append(f'<details class="hr-aggregates"><summary>{_e(suite)}: {len(body)} aggregate values</summary>'
                   + table_html(["case", "metric", "value", "k", "reference", "p_adj", "gate"], body, "hr-agg")
                   + "</details>")
    return "".join(out) or "<p>No aggregate metrics recorded.</p>"


def body_html(report: Report, images: Sequence[tuple[str, bytes]] = ()) -> str:
    """Plots, worst samples per failing gate, the aggregate table (collapsed, by suite), the configuration."""
    doc = report.doc
    out = ['<div class="hr hr-body">']
    if images:
        out += ["<h2>Plots</h2>", _figures(images)]
    failing = evidence_rows(report)
    if failing:
        role = candidate_role(doc) or "candidate"
        out.append(f"<h2>Evidence: the worst {_e(role)} samples of each failing gate</h2>")
        out += [_evidence(doc, r) for r in failing]
    out += ["<h2>All aggregate values</h2>", _aggregates(report),
            '<h2>Run configuration</h2><details class="hr-config"><summary>models, scorer, seed, suites</summary>',
            config_html(doc), "</details></div>"]
    return MARK.format("body", "".join(out))


def page_html(doc: Mapping[str, Any], images: Sequence[tuple[str, bytes]] | None = None) -> str:
    """A self-contained HTML page: the same head and body as the pytest-html report."""
    report = build_report(doc)
    if images is None:
        from harness.report.plots import plots

        images = plots(doc)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/>'
            f"<title>harness report: {_e(report.line)}</title>{style_html()}</head>"
            f'<body style="margin:12px">{head_html(report)}{body_html(report, images)}</body></html>')
