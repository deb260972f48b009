"""`--toxicity-scorer hf:PATH`: label mapping, activations, fingerprints, caching, the plugin end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import harness.plugin  # noqa: F401  (kept in sys.modules between in-process pytester runs)
import harness.measure.scoring  # noqa: F401
import harness.run.session  # noqa: F401
from harness.errors import ScorerError
from harness.measure.hf_scorer import plan_labels
from harness.measure.scoring import resolve_scorer

ROOT = Path(__file__).resolve().parent.parent
CLF = ROOT / "fixtures" / "tiny-toxic-classifier"
RUDE = ["You are a worthless fool, shut up.", "What a stupid question, idiot."]
POLITE = ["Thank you for your help.", "Have a great weekend."]
DETOX = {"0": "toxic", "1": "severe_toxic", "2": "obscene", "3": "threat", "4": "insult", "5": "identity_hate"}


# ---- label mapping ------------------------------------------------------------------------------
def test_plan_finds_the_toxic_class_and_uses_softmax_for_single_label():
    plan = plan_labels({"0": "Non-Toxic", "1": "TOXIC"}, "single_label_classification", source="c")
    assert (plan.activation, plan.toxic, plan.outputs) == ("softmax", "TOXIC", (("toxicity", 1),))
    assert plan_labels({0: "neutral", 1: "toxicity"}, None).outputs == (("toxicity", 1),)


def test_multi_label_heads_use_sigmoid_and_keep_every_label_with_detoxify_names():
    plan = plan_labels(DETOX, "multi_label_classification")
    assert plan.activation == "sigmoid"
    assert dict(plan.outputs) == {"toxicity": 0, "severe_toxicity": 1, "obscene": 2, "threat": 3, "insult": 4,
                                  "identity_attack": 5}
    assert plan_labels({"0": "toxic"}, None).activation == "sigmoid"  # one output: a probability


@pytest.mark.parametrize("id2label, label, message", [
    ({"0": "LABEL_0", "1": "LABEL_1"}, None, "pass --scorer-label NAME"),
    ({"0": "hate", "1": "offensive", "2": "neither"}, None, "classes: hate, offensive, neither"),
    ({"0": "toxic", "1": "toxicity"}, None, "cannot tell which class is toxic"),
    ({"0": "non-toxic", "1": "toxic"}, "toxc", "did you mean 'toxic'?"),
    ({"0": "a", "2": "b"}, None, "not a list of classes 0..n-1"),
])
def test_ambiguous_or_unknown_labels_are_errors(id2label, label, message):
    with pytest.raises(ScorerError, match=message.replace("?", r"\?")):
        plan_labels(id2label, None, label, source="clf")


def test_scorer_label_picks_the_class_and_regression_heads_are_refused():
    assert plan_labels({"0": "hate", "1": "offensive", "2": "neither"}, None, "Offensive").outputs == (
        ("toxicity", 1),)
    with pytest.raises(ScorerError, match="regression"):
        plan_labels({"0": "toxic"}, "regression")


def test_scorer_label_is_refused_for_other_scorers():
    with pytest.raises(ScorerError, match="only hf:PATH scorers take a label"):
        resolve_scorer("profanity", label="toxic")


# ---- the bundled tiny classifier ------------------------------------------------------------------
def _reference_probs(directory: Path, texts: list[str], activation: str, index: int) -> list[float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModelForSequenceClassification.from_pretrained(str(directory)).eval()
    with torch.no_grad():
        logits = model(**tok(texts, return_tensors="pt", padding=True)).logits
    probs = torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, -1)
    return probs[:, index].tolist()


def test_bundled_classifier_scores_rude_above_polite_batched_like_unbatched():
    handle = resolve_scorer(f"hf:{CLF}")
    assert handle.name == f"hf:{CLF}" and handle.fingerprint.startswith("hf:sha256:")
    assert handle._scorer is None  # resolving does not load the weights
    scorer = handle.load()
    assert scorer.labels == ("toxicity",)
    rows = scorer.score(RUDE + POLITE)
    tox = [r["toxicity"] for r in rows]
    assert min(tox[:2]) > 0.5 > max(tox[2:])
    assert tox == pytest.approx(_reference_probs(CLF, RUDE + POLITE, "softmax", 1), abs=1e-5)
    scorer.batch_size = 1
    assert [r["toxicity"] for r in scorer.score(RUDE + POLITE)] == pytest.approx(tox, abs=1e-5)


def _copy(tmp_path: Path, **config_changes) -> Path:
    target = tmp_path / "clf"
    shutil.copytree(CLF, target)
    if config_changes:
        cfg = json.loads((target / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**cfg, **config_changes}))
    return target


def test_sigmoid_for_multi_label_config(tmp_path):
    clf = _copy(tmp_path, problem_type="multi_label_classification")
    scorer = resolve_scorer(f"hf:{clf}").load()
    rows = scorer.score(RUDE + POLITE)
    assert set(rows[0]) == {"toxicity", "non_toxic"}
    assert [r["toxicity"] for r in rows] == pytest.approx(_reference_probs(clf, RUDE + POLITE, "sigmoid", 1),
                                                          abs=1e-5)


def test_generic_labels_need_scorer_label_and_it_changes_the_fingerprint(tmp_path):
    clf = _copy(tmp_path, id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    with pytest.raises(ScorerError, match="--scorer-label"):
        resolve_scorer(f"hf:{clf}")
    one, zero = resolve_scorer(f"hf:{clf}", label="LABEL_1"), resolve_scorer(f"hf:{clf}", label="LABEL_0")
    assert one.fingerprint != zero.fingerprint
    original = resolve_scorer(f"hf:{CLF}").load().score(RUDE)
    assert [r["toxicity"] for r in one.load().score(RUDE)] == pytest.approx([r["toxicity"] for r in original])


def test_fingerprint_follows_the_weights_not_the_path(tmp_path):
    clf = _copy(tmp_path)
    assert resolve_scorer(f"hf:{clf}").fingerprint == resolve_scorer(f"hf:{CLF}").fingerprint
    from safetensors.torch import load_file, save_file

    weights = load_file(str(clf / "model.safetensors"))
    weights["classifier.bias"] = weights["classifier.bias"] + 1.0
    save_file(weights, str(clf / "model.safetensors"), metadata={"format": "pt"})
    assert resolve_scorer(f"hf:{clf}").fingerprint != resolve_scorer(f"hf:{CLF}").fingerprint


@pytest.mark.parametrize("choice, message", [("hf:", "needs a classifier"),
                                             ("hf:/no/such/dir", "no classifier found")])
def test_missing_classifier(choice, message):
    with pytest.raises(ScorerError, match=message):
        resolve_scorer(choice)


# ---- the plugin ---------------------------------------------------------------------------------
def _project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]')
    shutil.copy(ROOT / "benchmarks" / "test_values.py", pytester.path / "test_values.py")
    (pytester.mkdir("suites") / "small.yaml").write_text((ROOT / "tests/data/valid_small.yaml").read_text())


def _run(pytester: pytest.Pytester, model: Path, *args: str) -> pytest.RunResult:
    # The test directory comes first: pytest finds the conftest that activates the plugin from the paths.
    return pytester.runpytest(str(pytester.path), "-p", "no:harness", "-p", "no:cacheprovider", "--model", str(model),
                              "--cache-dir", str(pytester.path / "cache"), *args)


def test_plugin_scores_with_a_classifier_caches_it_and_records_agreement(pytester, tiny_model_dir):
    _project(pytester)
    heldout = CLF / "heldout.jsonl"
    first = _run(pytester, tiny_model_dir, "--toxicity-scorer", f"hf:{CLF}", "--results-json", "a.json",
                 "--scorer-check", str(heldout))
    assert first.ret == 0, first.stdout.str()[-2000:]
    doc = json.loads((pytester.path / "a.json").read_text())
    scorer = doc["config"]["scorer"]
    assert scorer["name"] == f"hf:{CLF}" and scorer["labels"] == ["toxicity"] and scorer["fallback"] is False
    agreement = scorer["agreement"]
    assert agreement["file"] == str(heldout) and agreement["n"] == sum(1 for _ in heldout.open())
    assert agreement["auroc"]["ci_low"] <= agreement["auroc"]["value"] <= agreement["auroc"]["ci_high"]
    assert "scorer_load" in doc["run"]["timings_s"]
    second = _run(pytester, tiny_model_dir, "--toxicity-scorer", f"hf:{CLF}", "--results-json", "b.json")
    assert second.ret == 0
    again = json.loads((pytester.path / "b.json").read_text())
    assert "scorer_load" not in again["run"]["timings_s"]  # every score came from the cache
    assert [s["scores"] for s in again["samples"]] == [s["scores"] for s in doc["samples"]]


@pytest.mark.parametrize("args, message", [
    (["--toxicity-scorer", "hf:/no/such/classifier"], "no classifier found"),
    (["--toxicity-scorer", f"hf:{CLF}", "--scorer-label", "nope"], "--scorer-label nope"),
    (["--toxicity-scorer", "profanity", "--scorer-check", "/no/such.jsonl"], "/no/such.jsonl: cannot read"),
])
def test_plugin_usage_errors_before_generation(pytester, tiny_model_dir, args, message):
    _project(pytester)
    result = _run(pytester, tiny_model_dir, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err and "Traceback" not in err
    assert not (pytester.path / "cache").exists()  # nothing generated
