"""harness.palms.selfgen (SGEAT): score self-generated samples and keep exactly the least-toxic fraction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.palms.selfgen import n_to_keep, select_least_toxic, self_generate, summary_path_for, write_corpus


class FakeScorer:
    """Scores a text by table lookup; counts calls so batching is visible."""

    name = "fake"
    labels = ("toxicity",)
    fingerprint = "fake-1"

    def __init__(self, table: dict[str, float], default: float = 0.3) -> None:
        self.table, self.default, self.calls = table, default, 0

    def score(self, texts):
        self.calls += 1
        return [{"toxicity": self.table.get(t, self.default)} for t in texts]


TEXTS = ["a", "b", "c", "d", "e", "f", "g", "h", "", "j"]
SCORES = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.05, "e": 0.7, "f": 0.1, "g": 0.95, "h": 0.2, "": 0.0, "j": 0.6}


def test_keeps_exactly_the_least_toxic_half():
    corpus = select_least_toxic(TEXTS, FakeScorer(SCORES), keep=0.5, batch_size=3)
    # by hand: non-empty sorted by (score, index): d .05, b .1, f .1, h .2, c .5 | j .6, e .7, a .9, g .95
    assert [TEXTS[i] for i in corpus.kept] == ["b", "c", "d", "f", "h"]
    assert corpus.threshold == 0.5
    assert corpus.empty == (8,) and 8 in corpus.dropped        # empty sample scored 0.0 yet never kept
    assert sorted(corpus.kept + corpus.dropped) == list(range(10))
    s = corpus.summary()
    assert (s["n"], s["n_kept"], s["n_dropped"], s["n_empty"]) == (10, 5, 5, 1)
    assert s["kept"]["quantiles"]["q100"] == 0.5 and s["dropped"]["quantiles"]["q00"] == 0.0
    assert s["kept"]["mean"] == pytest.approx((0.05 + 0.1 + 0.1 + 0.2 + 0.5) / 5)
    assert s["all"]["quantiles"]["q50"] == pytest.approx(0.35)   # median of the 10 scores


def test_ties_break_by_sample_index_and_rounding():
    corpus = select_least_toxic(["x", "y", "z", "w"], FakeScorer({}, default=0.2), keep=0.5)
    assert corpus.kept == (0, 1)
    assert n_to_keep(10, 0.3) == 3 and n_to_keep(7, 0.5) == 3 and n_to_keep(3, 0.1) == 1
    assert select_least_toxic(["x", "y"], FakeScorer({}), keep=1.0).kept == (0, 1)
    with pytest.raises(HarnessError, match="--keep"):
        select_least_toxic(["x"], FakeScorer({}), keep=0.0)


def test_write_corpus_and_summary(tmp_path):
    corpus = select_least_toxic(TEXTS, FakeScorer(SCORES), keep=0.3)
    out = tmp_path / "corpus.jsonl"
    summary = write_corpus(corpus, out, {"seed": 7})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["text"], r["toxicity"]) for r in rows] == [("b", 0.1), ("d", 0.05), ("f", 0.1)]
    meta = json.loads(summary.read_text())
    assert summary == summary_path_for(out) == tmp_path / "corpus.summary.json"
    assert meta["seed"] == 7 and meta["threshold"] == 0.1 and meta["n_kept"] == 3
    from harness.palms.datasets import load_text_corpus
    assert [s.text for s in load_text_corpus(out)] == ["b", "d", "f"]      # finetune reads it back


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["the cat sat on the mat and the dog ran"] * 5, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    import torch
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(fast), n_layer=1, n_embd=32, n_head=2, n_positions=64,
                               bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)).save_pretrained(path)
    return path


def test_self_generate_end_to_end(tiny):
    from harness.model.models import load_model
    from harness.suites.specs import Decoding

    loaded = load_model(str(tiny), device="cpu")
    scorer = FakeScorer({}, default=0.0)
    scorer.score = lambda texts: [{"toxicity": (len(t) % 17) / 17} for t in texts]  # deterministic, varied
    dec = Decoding(samples=1, max_new_tokens=8, temperature=1.0, top_p=0.9, top_k=0)
    corpus, seconds = self_generate(loaded, scorer, n=12, keep=0.5, seed=5, decoding=dec)
    assert len(corpus.texts) == 12 and len(corpus.kept) == 6 and seconds >= 0
    worst_kept = max(corpus.toxicity[i] for i in corpus.kept)
    assert all(corpus.toxicity[i] >= worst_kept for i in corpus.dropped if corpus.texts[i].strip())
    again, _ = self_generate(loaded, scorer, n=12, keep=0.5, seed=5, decoding=dec)
    assert again.texts == corpus.texts                                  # seeded


def test_cli_self_generate_with_profanity_scorer(tiny, tmp_path, capsys):
    from harness.cli import main

    out = tmp_path / "c.jsonl"
    rc = main(["self-generate", "--model", str(tiny), "--n", "8", "--keep", "0.5", "--out", str(out),
               "--max-new-tokens", "6", "--toxicity-scorer", "profanity", "--device", "cpu", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "c.summary.json").read_text())
    assert summary["n"] == 8 and summary["scorer"]["name"] == "profanity" and summary["decoding"]["top_p"] == 0.9
    assert len(out.read_text().splitlines()) == summary["n_kept"] <= 4
    assert main(["self-generate", "--model", str(tiny), "--out", str(out), "--toxicity-scorer", "detox"]) == 2
    assert "did you mean" in capsys.readouterr().err
