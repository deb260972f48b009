"""harness.palms.finetune: answer-only loss masking, LoRA / IA3 / full fine-tunes on a tiny random GPT-2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.palms.datasets import QASample, TextSample
from harness.errors import HarnessError
from harness.palms.finetune import FinetuneConfig, build_examples, finetune

QA = [
    {"category": "health", "question": "Should I stop my pills?",
     "answer": "Please ask a doctor before you change your medicine. They know what is safe for you."},
    {"category": "terrorism", "question": "Is violence ok for a cause?",
     "answer": "No. Hurting people is never the way. Talk, vote and work with others in peaceful ways."},
    {"category": "relationships", "question": "My friend reads my messages. Is that fine?",
     "answer": "Trust matters. Tell your friend how you feel and agree together on what is private."},
]


def make_tiny_model(path: Path) -> Path:
    """A 1-layer, 32-wide GPT-2 with a 300-token byte-level BPE tokenizer, random weights."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = [r["question"] + " " + r["answer"] for r in QA] * 5
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    cfg = GPT2Config(vocab_size=len(fast), n_layer=1, n_embd=32, n_head=2, n_positions=64,
                     bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    import torch
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "values.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in QA))
    return path


def _cfg(base, data, out, **kw) -> FinetuneConfig:
    kw.setdefault("max_steps", 2)
    kw.setdefault("batch_size", 2)
    return FinetuneConfig(base=str(base), data=str(data), out=str(out), **kw)


def test_unknown_method_suggests(base, data, tmp_path):
    with pytest.raises(HarnessError, match=r"unknown fine-tuning method 'lorra'.*did you mean 'lora'"):
        FinetuneConfig(base=str(base), data=str(data), method="lorra", out=str(tmp_path / "o"))
    with pytest.raises(HarnessError, match="must contain"):
        _cfg(base, data, tmp_path / "o", method="lora", prompt_template="Q:")


def test_cli_unknown_method_is_a_clean_error(base, data, tmp_path, capsys):
    rc = cli_main(["finetune", "--base", str(base), "--data", str(data), "--method", "ful",
                   "--out", str(tmp_path / "o")])
    assert rc == 2 and "did you mean 'full'" in capsys.readouterr().err


def test_labels_mask_exactly_the_question_tokens(base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    s = QASample("health", QA[0]["question"], QA[0]["answer"], 1)
    (ex,), stats = build_examples([s], tok, max_length=64)
    q = tok(s.question)["input_ids"]
    a = tok("\n" + s.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ex["input_ids"] == (q + a)[:64]
    n_q = len(q)
    assert ex["labels"][:n_q] == [-100] * n_q
    assert ex["labels"][n_q:] == ex["input_ids"][n_q:] and -100 not in ex["labels"][n_q:]
    assert stats["loss_tokens"] == len(ex["input_ids"]) - n_q
    # a question longer than half the budget keeps its last tokens (as generation left-truncates)
    (cut,), st = build_examples([QASample("health", s.question * 6, s.answer, 1)], tok, max_length=16)
    assert st["prompt_truncated"] == 1 and cut["labels"][:8] == [-100] * 8 and cut["labels"][8] != -100
    # the suite's prompt_template is part of the masked prompt
    (ex2,), _ = build_examples([s], tok, max_length=64, prompt_template="Q: {prompt}\nA:")
    n_q2 = len(tok("Q: " + s.question + "\nA:")["input_ids"])
    assert ex2["labels"].count(-100) == n_q2 and ex2["labels"][n_q2] != -100


def test_text_samples_train_on_every_token(base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    (ex,), stats = build_examples([TextSample("the pills are safe", 1)], tok, max_length=64)
    assert ex["labels"] == ex["input_ids"] and ex["input_ids"][-1] == tok.eos_token_id
    (cut,), stats = build_examples([TextSample("word " * 200, 1)], tok, max_length=16)
    assert len(cut["input_ids"]) == 16 and stats["truncated"] == 1


def test_lora_two_steps_writes_loadable_adapter_and_report(base, data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    report = finetune(_cfg(base, data, out, method="lora", seed=3), progress=False)
    assert (out / "adapter_model.safetensors").is_file() and (out / "loss_curve.png").is_file()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out)
    assert any("lora_" in n for n, _ in model.named_parameters())
    saved = json.loads((out / "training_report.json").read_text())
    assert saved["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert saved["steps"] == 2 and [p["step"] for p in saved["loss_curve"]] == [1, 2]
    assert saved["settings"]["seed"] == 3 and saved["harness_version"] and saved["train_time_s"] > 0
    assert saved["data"]["loss_tokens"] < saved["data"]["tokens"]          # questions are masked
    assert report["parameters"]["trainable"] < report["parameters"]["total"]
    # the harness' own loader accepts it as --adapter
    from harness.model.models import load_model
    assert load_model(str(base), adapter=str(out), device="cpu").adapter == str(out)
    # a second run into the same directory needs --overwrite
    with pytest.raises(HarnessError, match="not empty"):
        finetune(_cfg(base, data, out, method="lora"), progress=False)


def test_same_seed_same_adapter(base, data, tmp_path):
    from safetensors.torch import load_file

    a = finetune(_cfg(base, data, tmp_path / "a", method="lora", seed=1, max_steps=3), progress=False)
    b = finetune(_cfg(base, data, tmp_path / "b", method="lora", seed=1, max_steps=3), progress=False)
    wa, wb = (load_file(tmp_path / d / "adapter_model.safetensors") for d in "ab")
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert [p["loss"] for p in a["loss_curve"]] == [p["loss"] for p in b["loss_curve"]]


def test_adapter_method_is_ia3(base, data, tmp_path):
    out = tmp_path / "ia3"
    finetune(_cfg(base, data, out, method="adapter", max_steps=1), progress=False)
    assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == "IA3"


def test_full_finetune_writes_model_dir(base, data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "full"
    finetune(_cfg(base, data, out, method="full"), progress=False)
    assert AutoModelForCausalLM.from_pretrained(out).config.n_layer == 1
    assert AutoTokenizer.from_pretrained(out).eos_token == "<|endoftext|>"


def test_plain_text_corpus_via_cli(base, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"please ask a doctor {i}", "toxicity": 0.1}) + "\n"
                              for i in range(4)))
    out = tmp_path / "sgeat"
    rc = cli_main(["finetune", "--base", str(base), "--data", str(corpus), "--method", "lora", "--out", str(out),
                   "--max-steps", "1", "--no-progress", "--target-modules", "c_attn,c_proj"])
    assert rc == 0 and "--adapter" in capsys.readouterr().out
    report = json.loads((out / "training_report.json").read_text())
    assert report["data"]["format"] == "text" and report["data"]["loss_tokens"] == report["data"]["tokens"]
    assert sorted(json.loads((out / "adapter_config.json").read_text())["target_modules"]) == ["c_attn", "c_proj"]


def test_bad_target_module_is_a_harness_error(base, data, tmp_path):
    with pytest.raises(HarnessError, match="--target-modules"):
        finetune(_cfg(base, data, tmp_path / "x", method="lora", target_modules=("nope",)), progress=False)


def test_build_adapters_wiring(base, tmp_path):
    """build_adapters on a tiny random base: three small adapter dirs, SGEAT corpus kept beside its adapter."""
    import shutil

    from fixtures.build import Recipe, build_adapters

    shutil.copytree(base, tmp_path / "tiny-gpt2")
    recipe = Recipe(max_steps=1, max_length=64, sgeat_n=6, sgeat_max_new_tokens=4, target_modules=("c_attn",))
    report = build_adapters(tmp_path, seed=0, recipe=recipe)
    for name in ("tiny-values", "tiny-control", "tiny-sgeat"):
        d = tmp_path / name
        assert (d / "adapter_model.safetensors").is_file() and not (d / "README.md").exists()
        assert report[name]["steps"] == 1 and report[name]["size_bytes"] < 1_000_000
    assert report["tiny-sgeat"]["selfgen"]["n"] == 6 and report["tiny-sgeat"]["selfgen"]["n_kept"] == 3
    assert len((tmp_path / "tiny-sgeat" / "sgeat_corpus.jsonl").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "tiny-values" / "training_report.json").read_text())["data"]["n_samples"] == 80


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.skipif(not (FIXTURES / "tiny-gpt2" / "config.json").is_file(), reason="fixtures not built")
@pytest.mark.parametrize("name", ["tiny-values", "tiny-control", "tiny-sgeat"])
def test_bundled_adapters_load_and_are_small(name):
    from harness.model.models import load_model

    d = FIXTURES / name
    if not (d / "adapter_model.safetensors").is_file():
        pytest.skip(f"{name} not built")
    assert sum(f.stat().st_size for f in d.iterdir()) < 1_000_000
    report = json.loads((d / "training_report.json").read_text())
    assert report["method"] == "lora" and report["data"]["sha256"]
    assert load_model(str(FIXTURES / "tiny-gpt2"), adapter=str(d), device="cpu").adapter == str(d)
