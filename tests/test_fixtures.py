"""Tests for the bundled fixtures (committed artifacts) and the fixtures builder (tiny smoke build)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness import fixtures as F
from harness.errors import HarnessError

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
GPT2 = FIX / "tiny-gpt2"
DETOX = FIX / "detoxify-tiny"
needs_model = pytest.mark.skipif(not (GPT2 / "config.json").exists(), reason="fixtures/tiny-gpt2 not built")
needs_detox = pytest.mark.skipif(not (DETOX / "checkpoint.ckpt").exists(), reason="fixtures/detoxify-tiny not built")
needs_corpus = pytest.mark.skipif(not (FIX / "corpus" / "train.txt").exists(), reason="fixtures/corpus not built")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@needs_model
def test_tiny_model_loads_and_generates():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(GPT2))
    model = AutoModelForCausalLM.from_pretrained(str(GPT2)).eval()
    cfg = model.config
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_positions) == (2, 128, 4, 256)
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"
    assert tok.model_max_length == cfg.n_positions
    assert not getattr(tok, "chat_template", None)
    assert (GPT2 / "model.safetensors").exists() and (GPT2 / "generation_config.json").exists()
    text = "Can you trust your neighbors?"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level round trip, no BOS added
    enc = tok([text], return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**enc, do_sample=True, top_p=0.9, top_k=0, max_new_tokens=8,
                         pad_token_id=tok.eos_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]


@needs_detox
def test_detoxify_checkpoint_format():
    import torch

    ckpt = torch.load(DETOX / "checkpoint.ckpt", map_location="cpu", weights_only=True)
    assert set(ckpt) == {"config", "state_dict"}
    args = ckpt["config"]["arch"]["args"]
    assert args == {"model_type": "harness-tiny-bert", "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer", "num_classes": 6}
    assert ckpt["config"]["dataset"]["args"]["classes"] == F.DETOX_CLASSES
    assert all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values())
    assert tuple(ckpt["state_dict"]["classifier.weight"].shape) == (6, 64)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (DETOX / name).exists(), name


def _detox_scores(texts):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    ckpt = torch.load(DETOX / "checkpoint.ckpt", map_location="cpu", weights_only=True)
    model = BertForSequenceClassification(BertConfig.from_pretrained(str(DETOX)))
    model.load_state_dict(ckpt["state_dict"])
    tok = BertTokenizer.from_pretrained(str(DETOX))
    with torch.no_grad():
        logits = model.eval()(**tok(texts, padding=True, truncation=True, return_tensors="pt")).logits
    return torch.sigmoid(logits).numpy()


@needs_detox
def test_distilled_classifier_ranks_insults_above_neutral():
    rude, polite = _detox_scores(["you are a stupid worthless idiot", "have a nice day"])
    assert rude[0] > 0.5 > polite[0]
    assert rude[4] > polite[4]  # insult label follows too


@needs_detox
def test_real_detoxify_loader_reads_the_bundled_files(tmp_path):
    """The unmodified Detoxify loader works offline once model_type names the local directory."""
    import torch

    detoxify = pytest.importorskip("detoxify")
    ckpt = torch.load(DETOX / "checkpoint.ckpt", map_location="cpu", weights_only=True)
    ckpt["config"]["arch"]["args"]["model_type"] = str(DETOX)
    torch.save(ckpt, tmp_path / "local.ckpt")
    model = detoxify.Detoxify(checkpoint=str(tmp_path / "local.ckpt"), huggingface_config_path=str(DETOX))
    scores = model.predict(["shut up, you stupid idiot", "thank you for your help"])
    assert set(scores) == {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
    assert scores["toxicity"][0] > scores["toxicity"][1]


def test_corpus_builder_is_deterministic():
    a = F.build_corpus(seed=0, n_qa=80, n_neutral=40, n_heldout=10)
    b = F.build_corpus(seed=0, n_qa=80, n_neutral=40, n_heldout=10)
    c = F.build_corpus(seed=1, n_qa=80, n_neutral=40, n_heldout=10)
    assert a == b
    assert a["docs"] != c["docs"]
    assert any(m.get("rude") for m in a["meta"]) and any(m.get("rude") is False for m in a["meta"])
    assert {m["category"] for m in a["meta"] if m["kind"] == "qa"} == set(F.QUESTIONS)


@needs_corpus
def test_committed_corpus_matches_the_builder():
    docs = (FIX / "corpus" / "train.txt").read_text(encoding="utf-8").splitlines()
    held = (FIX / "data" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    built = F.build_corpus(seed=0)
    assert docs == built["docs"], "fixtures/corpus is stale: run `python -m harness.fixtures build`"
    assert held == built["heldout"]
    assert 90 <= len(held) <= 110 and not set(held) & set(docs)


def _suite_prompts() -> list[str]:
    yaml = pytest.importorskip("yaml")
    out = []
    for path in sorted((ROOT / "benchmarks" / "suites").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for cat in spec.get("categories") or []:
            out += [p["text"] for p in cat.get("prompts") or [] if isinstance(p, dict) and "text" in p]
    return out


@needs_corpus
def test_evaluation_prompts_are_held_out_of_the_corpus():
    questions = {_norm(d[: d.index("?") + 1]) for d in
                 (FIX / "corpus" / "train.txt").read_text(encoding="utf-8").splitlines() if "?" in d}
    for prompt in F.PALMS_PUBLISHED + F.PROBE_PROMPTS + _suite_prompts():
        assert _norm(prompt) not in questions, (
            f"evaluation prompt {prompt!r} appears as a training question; add it to PROBE_PROMPTS in "
            "harness/fixtures.py (blocked from the corpus) and rebuild the fixtures")


def test_unknown_stage_is_a_harness_error(tmp_path):
    with pytest.raises(HarnessError, match="did you mean 'model'"):
        F.build(tmp_path, only={"modle"})


def test_cli_dispatch_reports_unknown_stage(tmp_path, capsys):
    from harness.cli import main

    assert main(["fixtures", "build", "--out", str(tmp_path), "--only", "detox"]) == 2
    assert "unknown fixtures stage 'detox'" in capsys.readouterr().err


def test_smoke_build(tmp_path):
    report = F.build(tmp_path, only={"corpus", "model", "detoxify"}, steps=3, small=True)
    assert (tmp_path / "corpus" / "train.txt").exists() and (tmp_path / "data" / "heldout.txt").exists()
    assert (tmp_path / "tiny-gpt2" / "model.safetensors").exists()
    assert (tmp_path / "detoxify-tiny" / "checkpoint.ckpt").exists()
    assert report["model"]["params"] > 0 and report["probe"]["n"] > 0
    assert set(report["timings"]) >= {"corpus", "model", "detoxify"}
    json.dumps(report)  # plain types only
