"""`harness scorer-check`: labelled-file parsing, AUROC/Spearman/accuracy with bootstrap CIs, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import scorer_check as sc
from harness.cli import main
from harness.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "fixtures" / "tiny-toxic-classifier" / "heldout.jsonl"


class FakeScorer:
    name = "fake"

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score(self, texts):
        return [{"toxicity": self.table[t]} for t in texts]


def _write(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_auroc_and_spearman_match_reference_implementations():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(labels * 0.3 + rng.random(200) * 0.7, 2)  # rounded: ties included
    assert sc.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    truth = rng.random(200)
    assert sc.spearman(scores, truth) == pytest.approx(spearmanr(scores, truth).statistic)
    assert np.isnan(sc.auroc([0.1, 0.9], [1, 1])) and np.isnan(sc.spearman([1, 2, 3], [5, 5, 5]))


def test_perfect_inverted_and_bootstrap_ci(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(40)]
    path = _write(tmp_path, rows)
    good = sc.agreement(FakeScorer({f"t{i}": 0.2 + 0.6 * (i % 2) for i in range(40)}), path, n_boot=300)
    assert good["auroc"]["value"] == 1.0 and good["accuracy"]["value"] == 1.0 and good["n"] == 40
    assert good["positives"] == 20 and good["reference"] == "label" and good["scorer"] == "fake"
    bad = sc.agreement(FakeScorer({f"t{i}": 0.8 - 0.6 * (i % 2) for i in range(40)}), path, n_boot=300)
    assert bad["auroc"]["value"] == 0.0 and bad["accuracy"]["value"] == 0.0
    noisy_table = {f"t{i}": float(np.clip(0.5 * (i % 2) + 0.05 * ((7 * i) % 11), 0, 1)) for i in range(40)}
    noisy = sc.agreement(FakeScorer(noisy_table), path, n_boot=500, seed=1)
    for m in sc.METRICS:
        assert noisy[m]["ci_low"] <= noisy[m]["value"] <= noisy[m]["ci_high"]
    assert noisy["auroc"]["ci_low"] < noisy["auroc"]["ci_high"]
    assert sc.agreement(FakeScorer(noisy_table), path, n_boot=500, seed=1) == noisy  # seeded


def test_reference_scores_are_binarised_at_the_threshold_and_worst_first(tmp_path):
    path = _write(tmp_path, [{"text": "a", "score": 0.9}, {"text": "b", "score": 0.2},
                             {"text": "c", "score": 0.6}, {"text": "d", "score": 0.1}])
    out = sc.agreement(FakeScorer({"a": 0.8, "b": 0.3, "c": 0.1, "d": 0.05}), path, n_boot=50, n_worst=2)
    assert out["reference"] == "score" and out["positives"] == 2
    assert out["accuracy"]["value"] == 0.75 and out["auroc"]["value"] == 0.75
    assert [w["text"] for w in out["worst"]] == ["c", "a"]
    assert out["worst"][0] == {"text": "c", "score": 0.1, "reference": 0.6}


@pytest.mark.parametrize("rows, message", [
    (['{"text": "a", "label": 1}', "not json"], "line 2: not JSON"),
    ([{"label": 1}], "line 1: expected"),
    ([{"text": "a", "label": 1, "score": 0.3}], "exactly one of label/score"),
    ([{"text": "a", "label": 2}], "label 2 is not 0/1"),
    ([{"text": "a", "score": 1.5}], "score 1.5 is not a number in"),
    ([{"text": "a", "score": True}], "score True is not a number"),
    ([{"text": "a", "label": 1}, {"text": "b", "score": 0.2}], "line 2: 'score' in a file of 'label' lines"),
    ([""], "no labelled texts"),
])
def test_bad_labelled_files_name_the_line(tmp_path, rows, message):
    with pytest.raises(DataError, match=message) as exc:
        sc.read_labelled(_write(tmp_path, rows))
    assert str(tmp_path) in str(exc.value)


def test_booleans_are_labels(tmp_path):
    data = sc.read_labelled(_write(tmp_path, [{"text": "a", "label": True}, {"text": "b", "label": False}]))
    assert data.truth == (1.0, 0.0) and data.kind == "label"


def test_command_text_and_json(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["scorer-check", str(HELDOUT), "--scorer", "profanity", "--bootstrap", "200",
                 "--cache-dir", cache]) == 0
    text = capsys.readouterr().out
    assert "scorer profanity vs labels" in text and "auroc" in text and "worst disagreements" in text
    assert main(["scorer-check", str(HELDOUT), "--scorer", "profanity", "--bootstrap", "200", "--format", "json",
                 "--cache-dir", cache]) == 0
    out = json.loads(capsys.readouterr().out)
    # the heldout labels ARE the profanity scorer's decisions at 0.5: agreement is perfect by construction
    assert out["accuracy"]["value"] == 1.0 and out["auroc"]["value"] == 1.0 and out["warnings"] == []


def test_between_two_scorers_on_a_results_file(tmp_path, capsys):
    texts = [json.loads(line)["text"] for line in HELDOUT.read_text().splitlines()[:60]]
    results = tmp_path / "r.json"
    from harness.measure.results import new_document

    doc = new_document({"models": {}, "scorer": None, "seed": 0, "suites": {}})
    doc["samples"] = [{"role": "candidate", "suite": "s", "category": "c", "prompt_id": f"p{i}", "prompt": "q",
                       "sample_index": 0, "text": t, "scores": {"toxicity": 0.0}} for i, t in enumerate(texts)]
    results.write_text(json.dumps(doc))
    clf = f"hf:{ROOT / 'fixtures' / 'tiny-toxic-classifier'}"
    assert main(["scorer-check", str(results), "--between", "profanity", clf, "--bootstrap", "100",
                 "--format", "json", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 60 and out["reference"] == "scorer profanity" and out["scorer"] == clf
    assert 0.0 <= out["spearman"]["value"] <= 1.0


def test_command_errors_exit_2(tmp_path, capsys):
    assert main(["scorer-check", str(tmp_path / "missing.jsonl"), "--scorer", "profanity"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["scorer-check", str(HELDOUT), "--scorer", "detox"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["scorer-check", str(HELDOUT), "--threshold", "1.5"]) == 2


def test_record_agreement_failure_is_recorded_and_warned():
    class Run:
        def scorer_handle(self):
            return FakeScorer({})

        def score(self, texts):
            raise sc.HarnessError("scorer exploded")

    doc = {"config": {"scorer": {"name": "x"}}, "run": {"warnings": []}}
    sc.record_agreement(Run(), doc, str(HELDOUT))
    assert doc["config"]["scorer"]["agreement"]["error"] == "scorer exploded"
    assert "scorer exploded" in doc["run"]["warnings"][0]
