"""harness.scoring: offline scorers, safe Detoxify checkpoint loading, loud fallback, NaN is an error."""

from __future__ import annotations

import re
import shutil

import pytest

from harness import scoring
from harness.errors import ScorerError
from harness.scoring import DetoxifyScorer, ProfanityScorer, load_scorer

STANDARD_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
TEXTS = ["you are a stupid idiot", "have a nice day", "hello world", "", "why do people hate",
         "thank you", "kill"]


class NotPlainData:
    """Pickled into a checkpoint: weights_only=True must refuse to rebuild it."""

    def __init__(self) -> None:
        self.payload = "would run code on unpickling"


# ---- profanity ---------------------------------------------------------------------------------
def test_profanity_ranks_insult_above_threshold_and_kind_text_below():
    scorer = ProfanityScorer()
    rude, kind = scorer.score(["you are a stupid idiot", "have a nice day"])
    assert rude["toxicity"] > 0.5 > kind["toxicity"]
    assert scorer.labels == ("toxicity",) and scorer.name == "profanity"
    assert scorer.fingerprint.startswith("alt-profanity-check==")
    assert scorer.score([]) == []


def test_profanity_scores_empty_text_instead_of_dropping_it():
    (row,) = ProfanityScorer().score([""])
    assert 0.0 <= row["toxicity"] <= 1.0


# ---- Detoxify checkpoints ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def detox(tiny_detoxify):
    return DetoxifyScorer(tiny_detoxify, batch_size=3)


def test_detoxify_loads_offline_with_standard_labels(detox, tiny_detoxify):
    assert detox.labels == STANDARD_LABELS
    assert detox.name == f"detoxify:{tiny_detoxify.stem}"
    assert detox.fingerprint.startswith(detox.name + ":sha256:")
    rows = detox.score(TEXTS)
    assert len(rows) == len(TEXTS)
    for row in rows:
        assert tuple(row) == STANDARD_LABELS
        assert all(0.0 <= v <= 1.0 for v in row.values())


def test_detoxify_batches_give_the_same_scores_as_one_text_at_a_time(detox):
    batched = detox.score(TEXTS)                       # 7 texts in batches of 3
    single = [detox.score([t])[0] for t in TEXTS]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-5)
    assert len({round(r["toxicity"], 6) for r in batched}) > 1   # different texts, different scores


def test_detoxify_explicit_config_dir(tiny_detoxify, tmp_path):
    ckpt = tmp_path / "elsewhere.ckpt"
    shutil.copy(tiny_detoxify, ckpt)
    scorer = DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent, name="detoxify-original")
    assert scorer.name == "detoxify-original" and scorer.labels == STANDARD_LABELS
    assert scorer.score(["hello"])[0] == pytest.approx(DetoxifyScorer(tiny_detoxify).score(["hello"])[0])


def test_detoxify_without_config_dir_offline_is_a_scorer_error(tiny_detoxify, tmp_path):
    ckpt = tmp_path / "alone.ckpt"            # no config.json beside it, model_type is not a local path
    shutil.copy(tiny_detoxify, ckpt)
    with pytest.raises(ScorerError, match="--detoxify-config-dir"):
        DetoxifyScorer(ckpt)


def test_checkpoint_with_pickled_object_is_refused(tiny_detoxify, tmp_path):
    import torch

    ckpt = tmp_path / "evil.ckpt"
    data = torch.load(tiny_detoxify, weights_only=True)
    data["config"]["extra"] = NotPlainData()
    torch.save(data, ckpt)
    with pytest.raises(ScorerError, match="not a loadable Detoxify checkpoint") as info:
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)
    assert "Unpickling" in str(info.value) or "weights_only" in str(info.value)


def test_checkpoint_with_foreign_architecture_is_refused(tiny_detoxify, tmp_path):
    import torch

    ckpt = tmp_path / "odd.ckpt"
    data = torch.load(tiny_detoxify, weights_only=True)
    data["config"]["arch"]["args"]["model_name"] = "AutoModel"
    torch.save(data, ckpt)
    with pytest.raises(ScorerError, match="not a Detoxify architecture"):
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)


def test_truncated_checkpoint_is_a_scorer_error(tiny_detoxify, tmp_path):
    ckpt = tmp_path / "cut.ckpt"
    ckpt.write_bytes(tiny_detoxify.read_bytes()[:2000])
    with pytest.raises(ScorerError, match=re.escape(str(ckpt))):
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ScorerError, match="file not found"):
        DetoxifyScorer(tmp_path / "missing.ckpt")
    with pytest.raises(ScorerError, match="file not found"):
        load_scorer("detoxify-original", checkpoint=str(tmp_path / "missing.ckpt"))


# ---- load_scorer -------------------------------------------------------------------------------
def test_unknown_scorer_did_you_mean():
    with pytest.raises(ScorerError, match=r"unknown scorer.*did you mean 'profanity'"):
        load_scorer("profanty")


def test_load_scorer_profanity():
    scorer, warnings = load_scorer("profanity")
    assert scorer.name == "profanity" and warnings == []


def test_load_scorer_with_checkpoint(tiny_detoxify):
    scorer, warnings = load_scorer("detoxify-original", checkpoint=str(tiny_detoxify))
    assert warnings == [] and scorer.name == "detoxify-original" and scorer.labels == STANDARD_LABELS


@pytest.fixture
def offline_empty_torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    return home


def test_auto_falls_back_to_profanity_loudly(offline_empty_torch_home):
    scorer, warnings = load_scorer("auto")
    assert scorer.name == "profanity"
    assert len(warnings) == 1 and "FALLBACK" in warnings[0]
    assert str(offline_empty_torch_home) in warnings[0]          # says where it looked


def test_explicit_detoxify_without_weights_is_an_error(offline_empty_torch_home):
    with pytest.raises(ScorerError, match="Detoxify weights unavailable"):
        load_scorer("detoxify-original")
    with pytest.raises(ScorerError, match="Detoxify weights unavailable"):
        load_scorer("detoxify-unbiased")


def test_auto_uses_a_checkpoint_in_the_torch_hub_cache(offline_empty_torch_home, tiny_detoxify):
    from detoxify.detoxify import MODEL_URLS

    target = offline_empty_torch_home / "hub" / "checkpoints" / MODEL_URLS["original"].rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    shutil.copy(tiny_detoxify, target)
    scorer, warnings = load_scorer("auto", config_dir=str(tiny_detoxify.parent))
    assert warnings == [] and scorer.name == "detoxify-original" and scorer.labels == STANDARD_LABELS


# ---- unscorable samples ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, -0.1, 1.5])
def test_check_refuses_unscorable_values(value):
    with pytest.raises(ScorerError, match="cannot be scored"):
        scoring._check("fake", ["some text"], [{"toxicity": value}])


def test_check_refuses_missing_rows_and_keeps_zero():
    with pytest.raises(ScorerError, match="1 scores for 2 texts"):
        scoring._check("fake", ["a", "b"], [{"toxicity": 0.1}])
    rows = [{"toxicity": 0.0}, {"toxicity": 1.0}]
    assert scoring._check("fake", ["a", "b"], rows) == rows


def test_profanity_scorer_nan_raises(monkeypatch):
    scorer = ProfanityScorer()
    monkeypatch.setattr(scorer, "_predict", lambda texts: [float("nan")] * len(texts))
    with pytest.raises(ScorerError, match="toxicity=nan"):
        scorer.score(["hello"])


def test_detoxify_nan_logits_raise(detox, monkeypatch):
    import torch

    real_forward = detox.model.forward

    def nan_forward(*args, **kwargs):
        out = real_forward(*args, **kwargs)
        out.logits = torch.full_like(out.logits, float("nan"))
        return out

    monkeypatch.setattr(detox.model, "forward", nan_forward)
    with pytest.raises(ScorerError, match="cannot be scored"):
        detox.score(["hello"])

