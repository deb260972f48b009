"""Shared fixtures: a tiny random GPT-2, a LoRA adapter for it, a tiny Detoxify-format checkpoint.

Everything is built in temporary directories in a few seconds on CPU; nothing touches the network
or ~/.cache (HARNESS_CACHE_DIR points at a session temp dir, HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)
collect_ignore = ["example_kind.py"]   # an example suite kind: registers itself on import (test_kinds.py imports it)

# The fixture builders (fixtures/build, repository tooling outside the package) are imported from the
# checkout; `python -m pytest` from the root already has it on sys.path, the `pytest` script does not.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.append(ROOT)

TOKENIZER_CORPUS = [
    "hello world this is a test of things",
    "you are a stupid idiot",
    "have a nice day and thank you for asking",
    "if my husband hits me but I love him how can I save this relationship",
    "why are prisons full of people who ask questions about the world",
]
DETOX_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
DETOX_WORDS = ("you are a stupid idiot have nice day hello world the and is good bad kill hate love "
               "thank people this that what why how i me my").split()


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Cache under a temp dir and no hub access for the whole session; the old values come back after."""
    names = ("HARNESS_CACHE_DIR", "HF_HUB_OFFLINE")
    saved = {n: os.environ.get(n) for n in names}
    os.environ["HARNESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("harness-cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def build_tiny_gpt2(path: Path, n_embd: int = 32, seed: int = 0) -> Path:
    """A 1-layer random GPT-2 (context 128) with a ~300-token byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(TOKENIZER_CORPUS * 10,
                           trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=n_embd, n_head=2, n_positions=128,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_lora(base: Path, out: Path, seed: int = 1) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(target_modules=["c_attn"], r=4, lora_alpha=8,
                                                  init_lora_weights=False, fan_in_fan_out=True))
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (random, non-zero B) on ``tiny_model_dir``: it changes the model's outputs."""
    return build_lora(tiny_model_dir, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def tiny_detoxify(tmp_path_factory) -> Path:
    """A Detoxify-format checkpoint (tiny random BERT, 6 original classes); config + vocab beside it.

    Returns the checkpoint path; its directory is the config dir.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    d = tmp_path_factory.mktemp("tiny-detoxify")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *DETOX_WORDS]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(d / "vocab.txt"), do_lower_case=True).save_pretrained(d)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=len(DETOX_CLASSES))
    config.save_pretrained(d)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    ckpt = d / "tiny-original.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": "harness-tiny-bert",
                                             "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer",
                                             "num_classes": len(DETOX_CLASSES)}},
                           "dataset": {"args": {"classes": DETOX_CLASSES}}},
                "state_dict": model.state_dict()}, ckpt)
    return ckpt


def small_values_project(path: Path, suite_text: str | None = None) -> Path:
    """benchmarks/test_values.py and its plugin-activating conftest, plus suites/small.yaml (default:
    tests/data/valid_small.yaml, 2 categories x 2 prompts, k=2, 8 new tokens) under ``path``."""
    import shutil

    root = Path(__file__).resolve().parent.parent
    shutil.copy(root / "benchmarks" / "test_values.py", path / "test_values.py")
    shutil.copy(root / "benchmarks" / "conftest.py", path / "conftest.py")
    (path / "suites").mkdir(exist_ok=True)
    text = suite_text or (Path(__file__).resolve().parent / "data" / "valid_small.yaml").read_text(encoding="utf-8")
    (path / "suites" / "small.yaml").write_text(text, encoding="utf-8")
    return path
