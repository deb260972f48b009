"""harness.model.generation on the tiny random GPT-2: per-sample seeds, batching invariance, truncation."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from harness.model.keys import sample_seed
from harness.errors import HarnessError
from harness.model.generation import GenerationRequest, Generator
from harness.model.models import load_model
from harness.suites.specs import Decoding

PROMPTS = ["hello", "you are a stupid idiot", "have a nice day and thank you for asking",
           "why are prisons full of people", "this is a test of things"]
DEC = Decoding(samples=2, max_new_tokens=8, temperature=1.0, top_p=0.9, top_k=0)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")


def _requests(seed: int, decoding: Decoding = DEC, prompts=PROMPTS, k: int = 2) -> list[GenerationRequest]:
    return [GenerationRequest(p, i, sample_seed(seed, p, i), decoding) for p in prompts for i in range(k)]


def _texts(loaded, requests, batch_size=32):
    return [g.text for g in Generator(loaded, batch_size=batch_size).generate(requests)]


@pytest.fixture(scope="module")
def seed0_gens(loaded):
    """Generations of ``_requests(0)``, generated once in one batch."""
    return Generator(loaded, batch_size=32).generate(_requests(0))


@pytest.fixture(scope="module")
def seed0(seed0_gens):
    return [g.text for g in seed0_gens]


def test_same_seed_same_texts(loaded, seed0):
    again = _texts(loaded, _requests(0))
    assert again == seed0
    assert len(seed0) == len(PROMPTS) * 2
    assert len(set(seed0)) > 1          # sampling, not one constant string


def test_different_seed_different_texts(loaded, seed0):
    other = _texts(loaded, _requests(1))
    assert sum(x != y for x, y in zip(seed0, other)) >= len(seed0) // 2


def test_sample_index_changes_the_sample(loaded):
    gens = _texts(loaded, _requests(0, prompts=["hello"], k=6))
    assert len(set(gens)) >= 4


def test_independent_of_batch_size(loaded):
    reqs = _requests(3, prompts=PROMPTS[:4])     # prompts of different lengths: rows are left-padded
    assert _texts(loaded, reqs, batch_size=1) == _texts(loaded, reqs, batch_size=32)


def test_independent_of_request_order(loaded, seed0):
    reqs = _requests(0)
    forward = seed0
    backward = _texts(loaded, list(reversed(reqs)))
    assert list(reversed(backward)) == forward
    # a request alone gives what it gives inside a large batch
    assert _texts(loaded, [reqs[3]]) == [forward[3]]


def test_generation_fields(loaded, seed0_gens):
    tok = loaded.tokenizer
    for req, g in zip(_requests(0), seed0_gens):
        assert g.n_prompt_tokens == len(tok(req.prompt)["input_ids"])
        assert not g.truncated
        assert g.finish_reason in ("eos", "length")
        assert 0 <= g.n_new_tokens <= DEC.max_new_tokens
        if g.finish_reason == "length":
            assert g.n_new_tokens == DEC.max_new_tokens


def test_top_k_1_is_greedy_whatever_the_seed(loaded):
    greedy = Decoding(samples=1, max_new_tokens=6, temperature=1.0, top_p=1.0, top_k=1)
    a = _texts(loaded, _requests(0, greedy, k=1))
    b = _texts(loaded, _requests(99, greedy, k=1))
    assert a == b
    # and equals HF greedy decoding of the same model
    import torch

    tok = loaded.tokenizer
    ids = tok(PROMPTS[1], return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.generate(**ids, do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id,
                                    eos_token_id=tok.eos_token_id)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    if tok.eos_token_id in new:
        new = new[:new.index(tok.eos_token_id)]
    assert a[1] == tok.decode(new, skip_special_tokens=True)


def test_top_k_sampling_follows_the_model_distribution(loaded):
    """First-token frequencies over many seeds match the renormalised top-3 probabilities."""
    import torch

    prompt, n = "hello world", 600
    tok = loaded.tokenizer
    with torch.inference_mode():
        logits = loaded.model(**tok(prompt, return_tensors="pt")).logits[0, -1].float()
    probs = torch.softmax(logits, -1)
    top = torch.topk(probs, 3)
    expected = {int(i): float(p) / float(top.values.sum()) for i, p in zip(top.indices, top.values)}
    dec = Decoding(samples=1, max_new_tokens=1, temperature=1.0, top_p=1.0, top_k=3)
    reqs = [GenerationRequest(prompt, i, sample_seed(7, prompt, i), dec) for i in range(n)]
    gens = Generator(loaded, batch_size=64).generate(reqs)
    names = {tok.decode([t], skip_special_tokens=True): t for t in expected}
    assert len(names) == 3                      # the three candidates decode to distinct texts
    counts = Counter(names.get(g.text, g.text) for g in gens)
    assert set(counts) <= set(expected), (counts, names)
    for token, p in expected.items():
        assert abs(counts[token] / n - p) < 4.5 * math.sqrt(p * (1 - p) / n), (token, counts, expected)


def test_unconditional_generation(loaded):
    gen = Generator(loaded)
    a = gen.generate_unconditional(4, seed=0, decoding=DEC)
    b = gen.generate_unconditional(4, seed=0, decoding=DEC)
    assert [g.text for g in a] == [g.text for g in b]
    assert len(a) == 4 and all(g.n_prompt_tokens == 1 and not g.truncated for g in a)
    assert len({g.text for g in a}) > 1
    c = gen.generate_unconditional(4, seed=1, decoding=DEC)
    assert [g.text for g in c] != [g.text for g in a]


def test_long_prompt_is_left_truncated(loaded, caplog):
    tok = loaded.tokenizer
    long_prompt = "first words then " + "hello world " * 150 + "the end"
    n_tokens = len(tok(long_prompt)["input_ids"])
    assert n_tokens > loaded.context_length
    gen = Generator(loaded)
    ids, truncated = gen.encode(long_prompt, 8)
    assert truncated and len(ids) == loaded.context_length - 8
    assert ids == tok(long_prompt)["input_ids"][-len(ids):]           # the end is kept
    (g,) = gen.generate([GenerationRequest(long_prompt, 0, 1, DEC)])
    assert g.truncated and g.n_prompt_tokens == loaded.context_length - DEC.max_new_tokens
    assert long_prompt in gen.truncated_prompts
    assert "truncated" in caplog.text


def test_max_new_tokens_beyond_context_raises(loaded):
    too_long = Decoding(samples=1, max_new_tokens=loaded.context_length, temperature=1.0, top_p=0.9)
    with pytest.raises(HarnessError, match="max_new_tokens=128 does not fit"):
        Generator(loaded).generate([GenerationRequest("hello", 0, 1, too_long)])


def test_empty_request_list(loaded):
    assert Generator(loaded).generate([]) == []
