"""Sliding-window perplexity against an exact computation from the model's logits."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.errors import DataError, SpecError
from harness.measure.perplexity import (analyze_perplexity, evaluate_perplexity, load_texts, parse_options,
                                resolve_texts, windows)

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
CONTEXT = 16


@pytest.fixture(scope="module")
def lm():
    """A random 1-layer GPT-2 (context 16) and a real fast tokenizer over words w0 .. w99."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=CONTEXT,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    raw = Tokenizer(WordLevel({f"w{i}": i for i in range(100)}, unk_token="w0"))
    raw.pre_tokenizer = Whitespace()
    return model, PreTrainedTokenizerFast(tokenizer_object=raw)


def words(ids):
    return " ".join(f"w{i}" for i in ids)


def exact_nll(model, ids, first=1):
    """NLL of ids[first:] given the window ids, by hand: log_softmax, gather, sum."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    targets = torch.tensor(ids[1:])[:, None]
    return -logp.gather(1, targets)[first - 1:].sum().item(), len(ids) - first


def test_windows_count_every_token_but_the_first_once():
    assert windows(40, 16, 16) == [(0, 16, 1), (16, 32, 1), (32, 40, 1)]
    assert windows(40, 16, 8) == [(0, 16, 1), (8, 24, 8), (16, 32, 8), (24, 40, 8)]
    assert windows(5, 16, 8) == [(0, 5, 1)] and windows(1, 16, 8) == []


def test_short_texts_match_the_exact_computation(lm):
    model, tok = lm
    seqs = [[5, 17, 3, 99, 42], [1, 2], [7] * 12 + [8, 9, 10, 11]]
    result = evaluate_perplexity(model, tok, [words(s) for s in seqs], batch_size=2)
    expected = [exact_nll(model, s) for s in seqs]
    assert result.per_text_tokens == (4, 1, 15)
    assert result.per_text_nll == pytest.approx([e for e, _ in expected], rel=1e-5)
    assert result.nll == pytest.approx(sum(e for e, _ in expected), rel=1e-5) and result.n_tokens == 20
    assert result.perplexity == pytest.approx(math.exp(result.nll / 20))
    assert (result.max_length, result.stride) == (CONTEXT, CONTEXT // 2)    # defaults: context, half


def test_long_text_with_stride_equal_to_context_is_exact_chunking(lm):
    model, tok = lm
    ids = [(7 * i + 3) % 100 for i in range(40)]
    result = evaluate_perplexity(model, tok, [words(ids)], stride=CONTEXT)
    chunks = [exact_nll(model, ids[a:b]) for a, b in ((0, 16), (16, 32), (32, 40))]
    assert result.n_tokens == 15 + 15 + 7
    assert result.nll == pytest.approx(sum(n for n, _ in chunks), rel=1e-5)


def test_overlapping_windows_score_only_new_tokens(lm):
    model, tok = lm
    ids = [(11 * i + 5) % 100 for i in range(40)]
    result = evaluate_perplexity(model, tok, [words(ids)], stride=8, max_length=CONTEXT)
    parts = [exact_nll(model, ids[0:16], 1), exact_nll(model, ids[8:24], 8),
             exact_nll(model, ids[16:32], 8), exact_nll(model, ids[24:40], 8)]
    assert result.n_tokens == 39 == sum(n for _, n in parts)
    assert result.nll == pytest.approx(sum(v for v, _ in parts), rel=1e-5)
    # more context can only change the numbers: the chunked and the strided results differ
    assert result.nll != pytest.approx(evaluate_perplexity(model, tok, [words(ids)], stride=16).nll, rel=1e-6)


def test_batching_with_padding_gives_the_same_numbers(lm):
    model, tok = lm
    texts = [words([(3 * i + j) % 100 for i in range(n)]) for j, n in enumerate((3, 40, 9, 16, 2, 23, 17))]
    one = evaluate_perplexity(model, tok, texts, batch_size=1, stride=12)
    for batch_size in (3, 8):
        many = evaluate_perplexity(model, tok, texts, batch_size=batch_size, stride=12)
        assert many.per_text_tokens == one.per_text_tokens
        assert many.per_text_nll == pytest.approx(one.per_text_nll, rel=1e-5)
    assert not model.training


def test_bad_stride_and_empty_input(lm):
    model, tok = lm
    with pytest.raises(SpecError, match="stride 32 must be between 1 and max_length 16"):
        evaluate_perplexity(model, tok, ["w1 w2"], stride=32)
    with pytest.raises(DataError, match="no texts"):
        evaluate_perplexity(model, tok, [])
    with pytest.raises(DataError, match="no token to score"):
        evaluate_perplexity(model, tok, ["w1"])


def test_load_texts_paragraphs_lines_and_errors(tmp_path):
    path = tmp_path / "held.txt"
    path.write_bytes("\ufeffFirst doc,\r\nline two.\r\n \r\nSecond.\n\n\n\nThird é.\n".encode())
    assert load_texts(path) == ["First doc,\nline two.", "Second.", "Third é."]
    assert load_texts(path, split="line") == ["First doc,", "line two.", "Second.", "Third é."]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nstill fine \xff here\n")
    with pytest.raises(DataError, match=r"bad\.txt is not UTF-8: byte offset 16 \(line 2\)"):
        load_texts(bad)
    with pytest.raises(DataError, match="cannot read held-out texts"):
        load_texts(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(DataError, match="holds no text"):
        load_texts(tmp_path / "blank.txt")


def test_options_and_the_suite_file():
    from harness.suites.specs import load_suite

    suite = load_suite(ROOT / "benchmarks" / "suites" / "perplexity.yaml")
    opts = parse_options(suite.extra, suite.path)
    assert resolve_texts(opts.texts, suite.path).resolve() == ROOT / "fixtures" / "data" / "heldout.txt"
    assert {g.metric for level in ("suite", "regression") for g in suite.gates[level]} == {"perplexity"}
    assert resolve_texts("harness:data/bold/LICENSE.md").is_file()
    with pytest.raises(SpecError, match="did you mean 'stride'"):
        parse_options({"texts": "a.txt", "strid": 4}, "p.yaml")
    with pytest.raises(SpecError, match=r"options\.texts"):
        parse_options({}, "p.yaml")
    with pytest.raises(SpecError, match="larger than max_length"):
        parse_options({"texts": "a.txt", "stride": 9, "max_length": 8})


def test_analyze_perplexity_records_and_units(lm, tmp_path):
    model, tok = lm
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "held.txt").write_text(f"{words(range(1, 30))}\n\n{words([4, 5, 6])}\n")
    suite = SimpleNamespace(id="ppl", path=str(tmp_path / "suite.yaml"),
                            extra={"texts": "data/held.txt", "stride": 16})
    loaded = SimpleNamespace(model=model, tokenizer=tok, context_length=CONTEXT)
    records, extras = analyze_perplexity(suite, {"candidate": (model, tok), "baseline": loaded})
    direct = evaluate_perplexity(model, tok, [words(range(1, 30)), words([4, 5, 6])], stride=16)
    assert [r["role"] for r in records] == ["candidate", "baseline"]
    for r in records:
        assert (r["metric"], r["category"], r["n"], r["tokens"]) == ("perplexity", None, 2, 27 + 2)
        assert r["value"] == pytest.approx(direct.perplexity, rel=1e-6)
    units = [u for u in extras["units"] if u["role"] == "baseline"]
    assert [u["tokens"] for u in units] == [15 + 12, 2]
    assert sum(u["nll"] for u in units) == pytest.approx(direct.nll, rel=1e-6)
