"""``harness report RESULTS.json [--html OUT] [--md OUT]``: the run's reports from a saved results file.

The same builders as the pytest plugin (one code path), so a CI artefact or an old run re-renders
exactly as the run's own report. Without ``--html`` or ``--md`` the Markdown goes to stdout
(e.g. ``harness report results.json >> "$GITHUB_STEP_SUMMARY"``).
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("results", type=Path, help="results JSON written by --results-json")
    parser.add_argument("--html", type=Path, metavar="OUT", help="write the self-contained HTML report here")
    parser.add_argument("--md", type=Path, metavar="OUT", help="write the Markdown report here")


def run(args) -> int:
    from harness.report import write_html, write_markdown
    from harness.measure.results import read_results

    doc = read_results(args.results)
    if args.html is None and args.md is None:
        from harness.report.markdown import markdown_report

        sys.stdout.write(markdown_report(doc))
        return 0
    for flag, path, write in (("--md", args.md, write_markdown), ("--html", args.html, write_html)):
        if path is not None:
            print(f"wrote {write(path, doc, flag)}")
    return 0
