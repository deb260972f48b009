"""The Markdown report (harness.report.markdown): a table in a real Markdown parser, escaped, short.

The parser is markdown-it-py (a CommonMark parser with the GFM table rule), installed with the
package's dependencies (transformers -> typer -> rich -> markdown-it-py).
"""

from __future__ import annotations

import copy
import os
import json
from pathlib import Path

import pytest

from harness.report.markdown import MAX_ROWS, escape, markdown_report
from harness.report.model import build_report

markdown_it = pytest.importorskip("markdown_it")

GOLDEN = Path(__file__).parent / "golden"
# config, verdicts and run of a real run of every default suite (benchmarks/suites) with
# a reference: `pytest benchmarks/ --subset 16 --samples 2 --toxicity-scorer profanity
# --baseline-model fixtures/tiny-gpt2 --baseline-adapter fixtures/tiny-values` (samples, metrics and
# comparisons dropped: the Markdown report reads none of them; prompt gates fold into one row per category,
# so the row count does not depend on --subset).
DEFAULT_SUITES = GOLDEN / "default_suites_verdicts.json"
PAYLOAD = '<script>alert(1)</script><img src=x onerror="document.title=1">'


def _parse(text: str):
    md = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
    return md.parse(text), md.render(text)


def _table_rows(tokens) -> list[list[str]]:
    rows, row, cell = [], None, None
    for tok in tokens:
        if tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open"):
            cell = ""
        elif tok.type == "inline" and cell is not None:
            cell = "".join(c.content for c in tok.children or [] if c.type in ("text", "softbreak")) or tok.content
            row.append(cell)
            cell = None
        elif tok.type == "tr_close":
            rows.append(row)
    return rows


@pytest.fixture
def doc() -> dict:
    return json.loads((GOLDEN / "report_doc.json").read_text(encoding="utf-8"))


@pytest.fixture
def default_doc() -> dict:
    return json.loads(DEFAULT_SUITES.read_text(encoding="utf-8"))


def test_golden_doc_renders_verdict_line_and_gate_table(doc):
    text = markdown_report(doc)
    tokens, rendered = _parse(text)
    assert text.startswith("## \u274c harness: BLOCKED: 2 gates failed, 1 inconclusive, 9 passed\n")
    rows = _table_rows(tokens)
    assert rows[0] == ["verdict", "gate", "value", "bound / reference", "difference [CI]", "p (adj.)", "reason"]
    assert [r[0] for r in rows[1:]] == ["\u274c FAIL", "\u274c FAIL", "\u26a0\ufe0f INCONCLUSIVE"]
    assert rows[2][1:4] == ["palms / abuse-violence: toxicity.max per prompt", "0.91", "\u2264 0.5; ref 0.83"]
    assert rows[3][4:6] == ["-0.085 [-0.51, +0.14] 90%", "1.000"]  # difference with its CI and its confidence
    assert "<table>" in rendered and rendered.count("<tr>") == 4
    assert "UNDERPOWERED" in text.split("| verdict")[0]  # alerts sit above the table
    assert "\u2705 9 gates passed (palms 8, bold 1)." in text


def test_golden_markdown_matches_file(doc):
    golden = GOLDEN / "report.md"
    text = markdown_report(doc)
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_untrusted_text_cannot_inject_markup_or_break_the_table(doc):
    for v in doc["verdicts"]:
        v["reason"] = f"{PAYLOAD} | extra | cell\nnext line [link](http://evil.example) *bold* `code`"
    doc["config"]["models"]["candidate"]["path"] = "![img](http://evil.example/x.png) <b>m</b>"
    doc["run"]["warnings"] = ["<iframe src=x>"]
    text = markdown_report(doc)
    tokens, rendered = _parse(text)
    rows = _table_rows(tokens)
    assert all(len(r) == 7 for r in rows)  # pipes and line breaks stayed inside their cells
    assert len(rows) == 1 + len(build_report(doc).open_rows)
    for bad in ("<script", "<img", "<iframe", "<b>", "<a ", "<em>", "<code>"):
        assert bad not in rendered, bad
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert PAYLOAD.replace("|", "") in rows[1][6].replace("|", "")  # the text itself is kept, as text


def test_escape_is_one_line_and_bounded():
    assert escape("a\nb\r\nc\td") == "a b c d"
    assert escape("x" * 300, limit=10) == "x" * 9 + "\u2026"
    assert escape("<= 0.5 and >= 1") == "\u2264 0.5 and \u2265 1"


def test_default_suites_report_is_a_table_under_60_lines(default_doc):
    text = markdown_report(default_doc)
    lines = text.splitlines()
    assert len(lines) < 60, len(lines)
    tokens, rendered = _parse(text)
    rows = _table_rows(tokens)
    report = build_report(default_doc)
    assert report.status == "BLOCKED" and len(rows) == 1 + min(len(report.open_rows), MAX_ROWS)
    assert "<table>" in rendered and lines[0].startswith("## \u274c harness: BLOCKED:")


def test_everything_failing_still_fits(default_doc):
    """Worst case for length: every gate of the default suites fails; the table is capped, the rest counted."""
    for v in default_doc["verdicts"]:
        v.update(outcome="FAIL", blocks=True, reason="outside the bound")
    text = markdown_report(default_doc)
    assert len(text.splitlines()) < 60
    report = build_report(default_doc)
    assert len(report.open_rows) > MAX_ROWS
    assert f"\u2026 and {len(report.open_rows) - MAX_ROWS} more gate rows in the HTML report." in text
    assert len(_table_rows(_parse(text)[0])) == 1 + MAX_ROWS


def test_passing_and_empty_runs():
    passed = {"verdicts": [{"case_id": "s/c", "gate": "category", "suite": "s", "category": "c", "metric": "m",
                            "outcome": "PASS", "blocks": False, "reason": "within the bound", "value": 0.1,
                            "bound": "<= 0.5"}]}
    text = markdown_report(passed)
    assert text.startswith("## \u2705 harness: PASSED: 1 gate passed") and "| verdict" not in text
    assert "\u2705 1 gate passed (s 1)." in text
    assert "No gate was evaluated in this run." in markdown_report({"verdicts": []})


def test_report_md_matches_the_plugin_and_cli_outputs(doc, tmp_path, capsys):
    """`harness report --md` and stdout give the same page as markdown_report; the input is not touched."""
    from harness.cli import main

    src = tmp_path / "results.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    before = src.read_bytes()
    assert main(["report", str(src), "--md", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == markdown_report(doc)
    capsys.readouterr()
    assert main(["report", str(src)]) == 0
    assert capsys.readouterr().out == markdown_report(doc)
    assert src.read_bytes() == before


def test_report_from_a_deep_copy_is_identical(doc):
    """Building the report never mutates the document (the plugin reuses it for other outputs)."""
    before = copy.deepcopy(doc)
    markdown_report(doc)
    assert doc == before
