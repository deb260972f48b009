"""Files the harness writes: permissions of atomic writes, model names in `harness compare`, and the
speed benchmark writing bench/RESULTS.md only when asked."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ResultsError
from harness.measure.results import new_document, read_results, write_results

ROOT = Path(__file__).resolve().parents[1]


def results_doc(scale: float) -> dict:
    """A results document made with the library: 2 categories x 4 prompts x 3 samples of one role."""
    decoding = {"samples": 3, "max_new_tokens": 8, "temperature": 1.0, "top_p": 0.9, "top_k": 0}
    doc = new_document({"models": {"candidate": {"path": "m", "fingerprint": "sha256:0"}},
                        "scorer": {"name": "profanity", "fingerprint": "fp", "labels": ["toxicity"]}, "seed": 0,
                        "suites": {"palms": {"version": "1", "kind": "values", "decoding": decoding}}})
    for c, cat in enumerate(("health", "violence")):
        for p in range(4):
            for i in range(3):
                tox = min(1.0, scale * (0.1 + 0.05 * p + 0.1 * c + 0.02 * i))
                doc["samples"].append({"role": "candidate", "suite": "palms", "category": cat, "prompt_id": f"p{p}",
                                       "prompt": f"q{p}", "sample_index": i, "seed": i, "text": "t",
                                       "scores": {"toxicity": tox}, "empty": False})
    return doc


# ---------------------------------------------------------------- `harness compare` model names

def test_compare_same_file_name_in_two_folders_gets_distinct_columns(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_results(tmp_path / "a" / "results.json", results_doc(1.0))
    b = write_results(tmp_path / "b" / "results.json", results_doc(2.0))
    assert main(["compare", str(a), str(b), "--metric", "toxicity.mean", "--resamples", "199"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["suite", "category", "metric", "a/results", "b/results", "p_adj"]
    suite_row = next(line for line in lines if line.startswith("palms") and "(all)" in line).split()
    assert suite_row[3] != suite_row[7]          # the reference's value and the candidate's, not one twice
    assert main(["compare", str(a), str(a), "--metric", "toxicity.mean", "--resamples", "199"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[3:5] == ["results", "results#2"]


# ---------------------------------------------------------------- atomic writes: permissions

@pytest.fixture
def umask():
    """Set a umask for the test; restore the old one after."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_results_files_get_normal_permissions(tmp_path, umask):
    umask(0o022)
    path = write_results(tmp_path / "results.json", results_doc(1.0))
    assert _mode(path) == 0o644 and read_results(path)["samples"]
    umask(0o077)
    assert _mode(write_results(tmp_path / "private.json", results_doc(1.0))) == 0o600
    os.chmod(path, 0o664)                        # an existing file keeps its mode, as with open(..., "w")
    assert _mode(write_results(path, results_doc(1.0))) == 0o664
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary left


def test_rating_sheet_and_key_get_normal_permissions(tmp_path, umask):
    from harness.palms.ratings_io import export_sheet

    umask(0o022)
    src = write_results(tmp_path / "run.json", results_doc(1.0))
    export_sheet([src], tmp_path / "sheet.csv", tmp_path / "key.json")
    assert _mode(tmp_path / "sheet.csv") == _mode(tmp_path / "key.json") == 0o644


def test_unreadable_results_path_is_a_results_error(tmp_path):
    with pytest.raises(ResultsError, match="cannot read the results file"):
        read_results(tmp_path)                   # a folder


def test_a_json_file_of_another_schema_is_not_a_results_file(tmp_path):
    """Not "re-run with this harness version": the file was never a results file."""
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "gpt2"}', encoding="utf-8")
    with pytest.raises(ResultsError, match=r"config.json: not a harness results file \(no schema_version field\). "
                                           "Fix: pass a file written by --results-json"):
        read_results(path)


# ---------------------------------------------------------------- bench/bench_generation.py

@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_generation", ROOT / "bench" / "bench_generation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_prints_and_writes_results_only_when_asked(bench, tmp_path, capsys, monkeypatch):
    assert bench.RESULTS == ROOT / "bench" / "RESULTS.md"
    tracked = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench, "RESULTS", tracked)       # stands in for the tracked bench/RESULTS.md
    assert bench.parse_args([]).write_results is None
    bench.emit(bench.parse_args([]), "# report")
    assert "# report" in capsys.readouterr().out and not tracked.exists()
    args = bench.parse_args(["--write-results", str(tmp_path / "r.md")])
    bench.emit(args, "# report")
    assert (tmp_path / "r.md").read_text() == "# report" and not tracked.exists()
    bench.emit(bench.parse_args(["--write-results"]), "# refreshed")
    assert tracked.read_text() == "# refreshed"
