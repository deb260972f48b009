"""harness.model.models: loading (eval, padding), memoized fingerprints, adapters, clean load errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from harness.errors import ModelLoadError
from harness.model.models import load_model, model_fingerprint

from conftest import build_lora, build_tiny_gpt2


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh cache dir, so the fingerprint memo of this test is its own."""
    d = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(d))
    return d


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")


def test_load_model_eval_mode_and_left_padding(loaded, tiny_model_dir):
    import torch

    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    tok = loaded.tokenizer
    assert tok.pad_token is not None and tok.pad_token_id is not None
    assert tok.padding_side == "left"
    assert loaded.context_length == 128
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert loaded.fingerprint == model_fingerprint(str(tiny_model_dir))
    assert loaded.describe() == {"path": str(tiny_model_dir), "adapter": None, "fingerprint": loaded.fingerprint,
                                 "device": "cpu", "dtype": "float32"}
    batch = tok(["hello", "you are a stupid idiot"], padding=True)
    assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1


def test_tokenizer_without_pad_token_gets_eos(model_copy):
    cfg_path = model_copy / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("pad_token", None)
    cfg_path.write_text(json.dumps(cfg))
    lm = load_model(str(model_copy), device="cpu")
    assert lm.tokenizer.pad_token == lm.tokenizer.eos_token == "<|endoftext|>"
    assert lm.tokenizer.padding_side == "left"


def test_fingerprint_is_content_based(model_copy, tiny_model_dir, private_cache):
    fp = model_fingerprint(str(model_copy))
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 64
    assert fp == model_fingerprint(str(tiny_model_dir))          # same files elsewhere: same fingerprint
    assert model_fingerprint(str(model_copy)) == fp              # stable


def test_fingerprint_changes_when_weights_change(model_copy, private_cache):
    import torch
    from transformers import AutoModelForCausalLM

    before = model_fingerprint(str(model_copy))
    model = AutoModelForCausalLM.from_pretrained(model_copy)
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0
    model.save_pretrained(model_copy)
    assert model_fingerprint(str(model_copy)) != before


def test_fingerprint_changes_when_config_or_tokenizer_change(model_copy, private_cache):
    before = model_fingerprint(str(model_copy))
    cfg = model_copy / "generation_config.json"
    cfg.write_text(cfg.read_text().replace("{", '{"note": 1, ', 1))
    after_cfg = model_fingerprint(str(model_copy))
    assert after_cfg != before
    tok = model_copy / "tokenizer.json"
    tok.write_text(tok.read_text().replace("<|endoftext|>", "<|end|>"))
    assert model_fingerprint(str(model_copy)) not in (before, after_cfg)


def test_fingerprint_is_memoized_on_size_and_mtime(model_copy, private_cache):
    real = model_fingerprint(str(model_copy))
    memo_path = private_cache / "fingerprints.json"
    memo = json.loads(memo_path.read_text())
    weights = str((model_copy / "model.safetensors").resolve())
    assert weights in memo and len(memo[weights]["sha256"]) == 64
    # Plant a different digest for an unchanged file: the memo is trusted, so the file is not re-read.
    memo[weights]["sha256"] = "0" * 64
    memo_path.write_text(json.dumps(memo))
    memoized = model_fingerprint(str(model_copy))
    assert memoized != real
    # A new mtime invalidates the entry: the file is hashed again and the real fingerprint returns.
    st = os.stat(weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert model_fingerprint(str(model_copy)) == real


def test_fingerprint_reads_each_file_once(model_copy, private_cache, monkeypatch):
    from harness.model import models

    opened = []
    real_open = models.Path.open

    def counting_open(self, *args, **kwargs):
        if self.suffix in (".safetensors", ".json"):
            opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(models.Path, "open", counting_open)
    first = model_fingerprint(str(model_copy))
    assert "model.safetensors" in opened
    opened.clear()
    assert model_fingerprint(str(model_copy)) == first
    assert "model.safetensors" not in opened


def test_adapter_attaches_and_changes_outputs(tiny_model_dir, tiny_lora_dir, loaded):
    import torch
    from peft import PeftModel

    lm = load_model(str(tiny_model_dir), adapter=str(tiny_lora_dir), device="cpu")
    assert isinstance(lm.model, PeftModel) and not lm.model.training
    assert lm.adapter == str(tiny_lora_dir)
    assert lm.fingerprint != loaded.fingerprint
    assert lm.fingerprint == model_fingerprint(str(tiny_model_dir), str(tiny_lora_dir))
    ids = loaded.tokenizer("hello world", return_tensors="pt")
    with torch.inference_mode():
        base = loaded.model(**ids).logits
        adapted = lm.model(**ids).logits
    assert not torch.allclose(base, adapted)


def test_missing_model_dir(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as info:
        load_model(str(missing), device="cpu")
    assert str(missing) in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(ModelLoadError, match="no-such-model"):
        model_fingerprint(str(missing))


def test_adapter_dir_without_config(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        load_model(str(tiny_model_dir), adapter=str(tmp_path), device="cpu")


def test_adapter_for_another_base_does_not_fit(tiny_model_dir, tmp_path):
    other = build_tiny_gpt2(tmp_path / "wide", n_embd=48)
    adapter = build_lora(other, tmp_path / "wide-lora")
    with pytest.raises(ModelLoadError) as info:
        load_model(str(tiny_model_dir), adapter=str(adapter), device="cpu")
    msg = str(info.value)
    assert "does not fit" in msg and str(adapter) in msg and str(tiny_model_dir) in msg


def test_truncated_weights_file(model_copy):
    weights = model_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_model(str(model_copy), device="cpu")
    assert str(model_copy) in str(info.value)


def test_garbage_config_file(model_copy):
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(str(model_copy), device="cpu")


@pytest.mark.parametrize("kwargs, hint", [({"device": "gpu"}, "--device gpu"),
                                          ({"dtype": "fp32"}, "did you mean 'float32'"),
                                          ({"device": "cpu", "dtype": "float16"}, "float16 on CPU")])
def test_bad_device_or_dtype(tiny_model_dir, kwargs, hint):
    with pytest.raises(ModelLoadError, match=hint):
        load_model(str(tiny_model_dir), **kwargs)
