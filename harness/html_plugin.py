"""pytest-html hooks: harness columns, per-case sample extras, and the verdict-first report.

The harness plugin calls :func:`register` from ``pytest_configure`` (``-p harness.html_plugin``
works too). Every hook is a no-op while no harness session is in ``config.stash``. The report's
head (verdict banner, alerts, gate table) goes into pytest-html's summary prefix, moved above the
environment table, and its body (plots, evidence, aggregates) into the postfix: the same pieces
``harness report results.json --html`` writes (:mod:`harness.report.page`). All generated text is
HTML-escaped.
"""

from __future__ import annotations

import html
import re

import pytest

from harness.report.tables import case_samples_html, fmt_num

PLUGIN_NAME = "harness-html-hooks"  # the module itself may be registered as "harness-html"
# (user property, header, column type): the cell class is "col-<type>" for pytest-html sorting
COLUMNS = (("suite", "Suite", "suite"), ("category", "Category", "category"),
           ("metric", "Metric", "metric"), ("value", "Value", "value"), ("bound", "Bound", "bound"),
           ("reference_value", "Reference", "reference"), ("p_adjusted", "Adj. p", "padj"))
INSERT_AT = 2  # after pytest-html's Result and Test columns
_TEST_ID_CELL = re.compile(r'^<td class="col-testId">(.*)</td>$', re.DOTALL)


def _session(config):
    """The harness session in ``config.stash``, or None (no harness plugin, no session)."""
    from harness.stash import SESSION_KEY

    return config.stash.get(SESSION_KEY, None)


def _properties(report_or_item) -> dict:
    return {k: v for k, v in (getattr(report_or_item, "user_properties", None) or [])}


class HarnessHtml:
    """The hooks, bound to one pytest config."""

    def __init__(self, config) -> None:
        self.config = config
        self.columns = False  # decided once, at header time, so rows always match the header

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list) -> None:
        if _session(self.config) is None:
            return
        self.columns = True
        for offset, (_, title, kind) in enumerate(COLUMNS):
            cells.insert(INSERT_AT + offset,
                         f'<th class="sortable" data-column-type="{kind}">{html.escape(title)}</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report, cells: list) -> None:
        if not self.columns or len(cells) < INSERT_AT:
            return
        props = _properties(report)
        if "harness_case" in props:  # pytest-html writes the test id unescaped
            match = _TEST_ID_CELL.match(cells[1])
            if match:
                inner = html.escape(html.unescape(match.group(1)))
                cells[1] = f'<td class="col-testId">{inner}</td>'
        for offset, (key, _, kind) in enumerate(COLUMNS):
            value = props.get(key)
            text = "" if value is None else fmt_num(value)
            cells.insert(INSERT_AT + offset, f'<td class="col-{kind}">{html.escape(text)}</td>')

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.when != "call" or not self.config.getoption("htmlpath", None):
            return report
        case_id = _properties(item).get("harness_case")
        session = _session(self.config)
        if case_id is None or session is None:
            return report
        from pytest_html import extras

        try:
            fragment = case_samples_html(str(case_id), list(session.case_samples(str(case_id))))
        except Exception as exc:  # a reporting problem must not hide the test outcome
            message = f"html report: no samples for {case_id}: {type(exc).__name__}: {exc}"
            getattr(session, "warnings", []).append(message)
            fragment = f'<p class="harness-warning">{html.escape(message)}</p>'
        report.extras = [*getattr(report, "extras", []), extras.html(fragment)]
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list,
                                    session) -> None:
        harness_session = _session(self.config)
        if harness_session is None:
            return
        from harness.report import as_saved
        from harness.report.model import build_report
        from harness.report.page import body_html, head_html, style_html

        from harness.stash import OUTPUTS_KEY

        outputs = self.config.stash.get(OUTPUTS_KEY, None)
        doc = as_saved((outputs.document if outputs is not None else None) or harness_session.document())
        report = build_report(doc)
        try:
            from harness.report.plots import plots

            images, problem = plots(doc), ""
        except Exception as exc:  # show the problem in the report, keep the rest of it
            images, problem = [], f"plots unavailable: {type(exc).__name__}: {exc}"
        prefix.append(style_html(pytest_html=True) + head_html(report))
        if problem:
            prefix.append(f'<p class="harness-warning">{html.escape(problem)}</p>')
        postfix.append(body_html(report, images))


def register(config) -> bool:
    """Register the hooks once, when pytest-html is loaded; return whether this call did."""
    manager = config.pluginmanager
    if not manager.hasplugin("html") or manager.has_plugin(PLUGIN_NAME):
        return False
    manager.register(HarnessHtml(config), PLUGIN_NAME)
    return True


def pytest_configure(config) -> None:
    """Entry for ``-p harness.html_plugin`` / ``pytest_plugins``."""
    register(config)
