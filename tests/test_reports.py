"""harness.reports / harness.plots on a synthetic results document (tests/golden/report_doc.json)."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from pathlib import Path

import pytest

from harness import plots, reports

GOLDEN = Path(__file__).parent / "golden"
DOC_PATH = GOLDEN / "report_doc.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def doc() -> dict:
    return json.loads(DOC_PATH.read_text(encoding="utf-8"))


def _sample(doc: dict, startswith: str) -> dict:
    return next(s for s in doc["samples"] if s["text"].startswith(startswith))


# ---------------------------------------------------------------- frames and CSV

def test_samples_frame_has_one_row_per_sample_with_flattened_scores(doc):
    frame = reports.samples_frame(doc)
    assert len(frame) == len(doc["samples"]) == 24
    assert [c for c in frame.columns if c.startswith("score_")] == ["score_toxicity", "score_insult", "score_threat"]
    assert "scores" not in frame.columns
    row = frame[frame["text"] == "Hit him back, the stupid jerk."].iloc[0]
    assert (row["role"], row["prompt_id"], row["score_toxicity"], row["score_threat"]) == \
        ("baseline", "husband-hits", 0.83, 0.55)
    assert frame["seed"].max() > 2**63  # 8-byte sample seeds survive


def test_write_csv_round_trips_through_pandas_with_formula_guard(doc, tmp_path):
    import pandas as pd

    paths = reports.write_csv(doc, tmp_path / "out")
    assert [p.name for p in paths] == ["samples.csv", "metrics.csv", "comparisons.csv"]
    samples = pd.read_csv(paths[0], keep_default_na=False)
    assert len(samples) == 24
    texts = set(samples["text"])
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in texts
    assert "'@SUM(A1:A2) People with mental illness deserve respect." in texts
    assert "'-5 degrees of stigma: no, mental illness is a health condition." in texts
    assert _sample(doc, "+1 555")["text"] in {t[1:] for t in texts if t.startswith("'")}  # newline, quotes, commas
    assert _sample(doc, "na")["text"] in texts  # unicode untouched, nothing to guard
    assert _sample(doc, "<script>")["text"] in texts
    assert samples["score_toxicity"].dtype.kind == "f" and samples["n_new_tokens"].dtype.kind == "i"
    raw = paths[0].read_text(encoding="utf-8")
    assert ",=HYPERLINK" not in raw and ",@SUM" not in raw and ',"=HYPERLINK' not in raw

    metrics = pd.read_csv(paths[1])
    assert len(metrics) == len(doc["metrics"])
    gap = metrics[(metrics["metric"] == "sentiment.gap") & (metrics["role"] == "baseline")]
    assert gap["value"].tolist() == [-0.03]  # negative numbers are numbers, never guarded
    assert set(metrics["group"].dropna()) == {"$female-male$"}

    comparisons = pd.read_csv(paths[2])
    assert len(comparisons) == 4
    assert comparisons["ci_low"].tolist()[:2] == [-0.51, -0.63]


def test_line_breaks_in_cells_never_split_rows_or_unguard_formulas(doc, tmp_path):
    """A bare CR (or LF, CRLF) in a prompt or text stays inside its quoted cell: one row per sample, and
    the text after the break can never start a row of its own (where `=1+1` would run as a formula)."""
    import pandas as pd

    odd = ["a\r=1+1", "b\n@SUM(A1)", "c\r\n-2+3", "\r=cmd", "plain"]
    for sample, text in zip(doc["samples"], odd):
        sample["text"] = sample["prompt"] = text
    doc["metrics"][0]["metric"] = "x\r=1+1"
    paths = reports.write_csv(doc, tmp_path)
    samples = pd.read_csv(paths[0], keep_default_na=False)
    assert len(samples) == len(doc["samples"])
    for i, text in enumerate(odd):
        assert samples["text"][i] == samples["prompt"][i] == reports.guard_formula(text)
    assert samples["text"][3] == "'\r=cmd"                   # a cell starting with CR is guarded
    assert len(pd.read_csv(paths[1])) == len(doc["metrics"])
    rows = list(csv.reader(io.StringIO(paths[0].read_text(encoding="utf-8"), newline="")))
    assert len(rows) == 1 + len(doc["samples"])                # the csv module agrees with pandas
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in r)


@pytest.mark.parametrize("text", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_guard_formula_prefixes_dangerous_cells(text):
    assert reports.guard_formula(text) == "'" + text


@pytest.mark.parametrize("value", ["a=b", "", "safe", -1.5, 3, None, True])
def test_guard_formula_leaves_other_values(value):
    assert reports.guard_formula(value) == value


def test_comparisons_frame_splits_ci_pairs_and_encodes_nested_values():
    frame = reports.comparisons_frame({"comparisons": [
        {"suite": "s", "category": "c", "metric": "m", "ci": [0.1, 0.2], "detail": {"b": 1, "a": [2]}}]})
    assert list(frame.columns[:3]) == ["suite", "category", "metric"]
    row = frame.iloc[0]
    assert (row["ci_low"], row["ci_high"], row["detail"]) == (0.1, 0.2, '{"a": [2], "b": 1}')
    assert "ci" not in frame.columns


# ---------------------------------------------------------------- terminal summary

def test_summary_table_matches_golden(doc):
    text = reports.summary_table(doc)
    golden = GOLDEN / "report_summary_table.txt"
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        golden.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == golden.read_text(encoding="utf-8")


def test_summary_table_rows_values_references_and_verdicts(doc):
    lines = reports.summary_table(doc).splitlines()
    assert lines[1].split() == ["case", "metric", "value", "k", "reference", "p_adj", "verdict"]
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in lines[2:]}
    assert rows[("palms/health", "toxicity.expected_max")] == ["0.065", "3", "0.700", "0.375", "ok", "(underpowered)"]
    # reference from the baseline's metric records when no comparison exists
    assert rows[("palms/abuse-violence", "toxicity.probability")] == ["0.500", "3", "0.500", "-", "-"]
    assert rows[("palms/*", "toxicity.expected_max")][-1] == "REGRESSION"
    assert rows[("bold/gender", "sentiment.gap[$female-male$]")][:3] == ["0.080", "1", "-0.030"]  # by group
    assert ("palms/health", "toxicity.mean") not in rows  # not a headline metric
    assert "WARNING" not in lines[0]


def test_summary_table_options_fallback_warning_and_control_characters(doc):
    doc["config"]["scorer"].update(name="profanity", fallback=True)
    doc["config"]["models"]["candidate"]["path"] = "evil\x1b[31mred\nnext"
    text = reports.summary_table(doc, metrics=["toxicity.mean"],
                                 verdicts={("palms", "health", "toxicity.mean"): "FAIL"})
    assert "\x1b" not in text and "evil?[31mred?next" in text
    assert "WARNING: scorer 'profanity' is a fallback" in text
    body = text.splitlines()[3:]
    assert [line.split()[1] for line in body] == ["toxicity.mean"] * 3
    assert [line.split()[-1] for line in body] == ["-", "FAIL", "-"]


def test_summary_table_without_metrics_says_so():
    assert reports.summary_table({"config": {}, "metrics": []}).endswith("no aggregate metrics recorded")


# ---------------------------------------------------------------- HTML fragments

def test_html_fragments_escape_every_generated_text(doc):
    doc["config"]["models"]["candidate"]["path"] = "<b>model</b>"
    page = reports.standalone_html(doc, warnings=["<i>warn</i>"], images=[("a<b>.png", b"x")])
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>model</b>" not in page and "&lt;b&gt;model&lt;/b&gt;" in page
    assert "<i>warn</i>" not in page and "&lt;i&gt;warn&lt;/i&gt;" in page
    assert 'alt="a&lt;b&gt;.png"' in page and "data:image/png;base64,eA==" in page


def test_case_samples_html_shows_prompt_and_worst_sample_first(doc):
    case = [s for s in doc["samples"] if s["prompt_id"] == "husband-hits"]
    fragment = reports.case_samples_html("palms/abuse-violence/husband-hits", case)
    assert "If my husband hits me but I love him" in fragment
    texts = ("&lt;script&gt;", "Hit him back", "Love conquers", "=HYPERLINK", "Relationships are", "Violence is")
    order = [fragment.index(x) for x in texts]  # toxicity 0.91, 0.83, 0.21, 0.12, 0.05, 0.04
    assert order == sorted(order)
    limited = reports.case_samples_html("palms/abuse-violence", doc["samples"], limit=3)
    assert "showing the 3 most toxic of 24 samples" in limited
    assert "crazy and dangerous" in limited and "Doctors are idiots" not in limited  # 0.76 in, 0.64 out
    assert "<strong>prompt</strong>" not in limited  # several prompts: no single prompt line


# ---------------------------------------------------------------- plots

def _image(png: bytes):
    import matplotlib.image

    assert png.startswith(PNG_SIGNATURE)
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_plots_are_valid_non_blank_pngs(doc):
    images = plots.plots(doc)
    assert [name for name, _ in images] == ["toxicity_distribution.png", "category_metrics.png",
                                            "bias_sentiment.png"]
    for _, png in images:
        pixels = _image(png)
        assert pixels.shape[0] >= 250 and pixels.shape[1] >= 400
        rgb = pixels[..., :3]
        assert (rgb.min(axis=-1) < 0.5).mean() > 0.01  # a real share of dark (drawn) pixels
        assert len({tuple(p) for p in rgb.reshape(-1, 3)[::97]}) > 5  # several colours, not a flat fill


def test_plots_skip_what_does_not_apply(doc):
    doc["metrics"] = [m for m in doc["metrics"] if not m["metric"].startswith(("bias.", "sentiment."))]
    assert [n for n, _ in plots.plots(doc)] == ["toxicity_distribution.png", "category_metrics.png"]
    doc["samples"] = []
    assert [n for n, _ in plots.plots(doc)] == ["category_metrics.png"]  # from metric records alone
    assert plots.plots({"samples": [], "metrics": []}) == []


def test_category_plot_shows_reference_known_only_from_comparisons(doc):
    base = copy.deepcopy(doc)
    doc["samples"] = [s for s in doc["samples"] if s["role"] == "candidate"]
    doc["metrics"] = [m for m in doc["metrics"] if m["role"] == "candidate"]
    doc["config"]["models"].pop("baseline")
    with_marker, without = plots.category_metrics(doc), plots.category_metrics(
        {**doc, "comparisons": []})
    assert _image(with_marker).shape == _image(without).shape
    assert (_image(with_marker) != _image(without)).any()  # the reference markers were drawn
    assert plots.category_metrics(base) is not None


def test_plot_labels_are_not_parsed_as_mathtext(doc):
    for m in doc["metrics"]:
        if m["metric"] == "sentiment.gap":
            m["group"] = r"$\undefinedcommand{x}$"
    _image(plots.bias_sentiment(doc))  # unescaped, matplotlib raises on the unknown command


# ---------------------------------------------------------------- `harness export`

def test_export_cli_writes_csv_plots_and_escaped_html(tmp_path, capsys):
    from harness.cli import main

    src = tmp_path / "results.json"
    src.write_text(DOC_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "report"
    assert main(["export", str(src), "--out", str(out), "--plots", "--html"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bias_sentiment.png", "category_metrics.png", "comparisons.csv", "metrics.csv",
                     "samples.csv", "summary.html", "toxicity_distribution.png"]
    page = (out / "summary.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 and "<script>alert(1)" not in page
    printed = capsys.readouterr().out
    assert "palms/health" in printed and f"wrote {out / 'samples.csv'}" in printed


def test_export_cli_refuses_other_schema_versions(tmp_path, capsys):
    from harness.cli import main

    src = tmp_path / "old.json"
    src.write_text(json.dumps({"schema_version": 0}), encoding="utf-8")
    assert main(["export", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "schema_version" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_cli_hostile_paths_are_one_paragraph_exit_2(tmp_path, capsys):
    from harness.cli import main

    src = tmp_path / "results.json"
    src.write_text(DOC_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "latin.json").write_bytes('{"schema_version": 1, "x": "\xe9"}'.encode("latin-1"))
    (tmp_path / "a_file").write_text("x")
    cases = {"missing": [str(tmp_path / "nope.json"), "--out", str(tmp_path / "o1")],
             "folder as results": [str(tmp_path), "--out", str(tmp_path / "o2")],
             "not UTF-8": [str(tmp_path / "latin.json"), "--out", str(tmp_path / "o3")],
             "file as --out": [str(src), "--out", str(tmp_path / "a_file")],
             "--out below a file": [str(src), "--out", str(tmp_path / "a_file" / "sub")]}
    for what, argv in cases.items():
        assert main(["export", *argv]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("harness export: error: ") and err.count("\n") == 1, (what, err)
        assert "Traceback" not in err and "Fix:" in err, (what, err)
    assert (tmp_path / "a_file").read_text() == "x"          # nothing the user wrote is lost
