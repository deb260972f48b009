"""Verdict-first reports of a results document: one model, three views.

- :func:`~harness.report.model.build_report`: the run's verdict, alerts and gate rows;
- :func:`~harness.report.markdown.markdown_report`: Markdown for CI job summaries and merge requests;
- :func:`~harness.report.page.page_html`: the standalone HTML page (the pytest-html report shows the
  same head and body pieces);
- the terminal view is :mod:`harness.report.summary`; ``harness report`` is :mod:`harness.report.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.errors import ResultsError


def as_saved(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as a results file holds it (NaN -> null, tuples -> lists, string keys), so a report
    built in the run and one built from the saved file see the same values."""
    import json

    from harness.gate.verdict import json_safe

    return json.loads(json.dumps(json_safe(doc), allow_nan=False))


def write_report(path: str | Path, text: str, flag: str) -> Path:
    """Write one report file atomically; an unwritable path is a one-paragraph ResultsError."""
    from harness.measure.results import write_text_atomic

    if Path(path).expanduser().is_dir():
        name = "report.html" if "html" in flag else "report.md"
        raise ResultsError(f"{flag} {path} is a folder. Fix: pass a file path, e.g. {Path(path) / name}.")
    try:
        return write_text_atomic(Path(path).expanduser(), text)
    except OSError as exc:
        raise ResultsError(f"{flag} {path}: cannot write there ({exc.strerror or exc}). Fix: pass a file path in a "
                           "folder you can write to.") from None


def write_markdown(path: str | Path, doc: Mapping[str, Any], flag: str = "--report-md") -> Path:
    from harness.report.markdown import markdown_report

    return write_report(path, markdown_report(doc), flag)


def write_html(path: str | Path, doc: Mapping[str, Any], flag: str = "--html") -> Path:
    from harness.report.page import page_html

    return write_report(path, page_html(doc), flag)
