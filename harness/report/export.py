"""`harness export RESULTS --out DIR [--plots] [--html]`: tidy CSV tables, plots and a summary page."""

from __future__ import annotations

from pathlib import Path

from harness.measure.results import read_results
from harness.report.tables import _unwritable, summary_table, write_csv


def add_arguments(parser) -> None:
    parser.add_argument("results", type=Path, help="results JSON written by a harness run")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--plots", action="store_true", help="also write the plots as PNG files")
    parser.add_argument("--html", action="store_true",
                        help="also write summary.html, self-contained, plots embedded")


def run(args) -> int:
    doc = read_results(args.results)
    paths = write_csv(doc, args.out)
    if args.plots or args.html:
        from harness.report.plots import plots

        images = plots(doc)
        files = list(images) if args.plots else []
        if args.html:
            from harness.report.page import page_html

            files.append(("summary.html", page_html(doc, images).encode("utf-8")))
        for name, data in files:
            try:
                (args.out / name).write_bytes(data)
            except OSError as exc:
                raise _unwritable(exc, args.out / name) from None
            paths.append(args.out / name)
    print(summary_table(doc))
    for path in paths:
        print(f"wrote {path}")
    return 0
