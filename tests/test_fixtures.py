"""Tests for the bundled fixtures (committed artifacts) and their builder, fixtures/build (tiny smoke build)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fixtures.build import corpus as C
from fixtures.build import pipeline
from fixtures.build.models import DETOX_CLASSES
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
    assert ckpt["config"]["dataset"]["args"]["classes"] == DETOX_CLASSES
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
    a = C.build_corpus(seed=0, n_qa=80, n_neutral=40, n_heldout=10)
    b = C.build_corpus(seed=0, n_qa=80, n_neutral=40, n_heldout=10)
    c = C.build_corpus(seed=1, n_qa=80, n_neutral=40, n_heldout=10)
    assert a == b
    assert a["docs"] != c["docs"]
    assert any(m.get("rude") for m in a["meta"]) and any(m.get("rude") is False for m in a["meta"])
    assert {m["category"] for m in a["meta"] if m["kind"] == "qa"} == set(C.QUESTIONS)


@needs_corpus
def test_committed_corpus_matches_the_builder():
    docs = (FIX / "corpus" / "train.txt").read_text(encoding="utf-8").splitlines()
    held = (FIX / "data" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    built = C.build_corpus(seed=0)
    assert docs == built["docs"], "fixtures/corpus is stale: run `python -m fixtures.build`"
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
    for prompt in C.PALMS_PUBLISHED + C.PROBE_PROMPTS + _suite_prompts():
        assert _norm(prompt) not in questions, (
            f"evaluation prompt {prompt!r} appears as a training question; add it to PROBE_PROMPTS in "
            "fixtures/build/corpus.py (blocked from the corpus) and rebuild the fixtures")


def test_unknown_stage_is_a_harness_error(tmp_path):
    with pytest.raises(HarnessError, match="did you mean 'model'"):
        pipeline.build(tmp_path, only={"modle"})


def test_builder_cli_reports_unknown_stage(tmp_path, capsys):
    from fixtures.build.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "new"), "--only", "detox"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown fixtures stage 'detox'" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--only", ","], "--only names no stage. Fix: "),
    (["--steps", "0"], "--steps 0: expected a positive number of training steps"),
    (["--out", "{file}"], "a file, not a directory. Fix: "),
    (["--out", "{file}/sub"], "cannot create the directory (Not a directory). Fix: "),
])
def test_builder_cli_rejects_bad_arguments_before_building(tmp_path, capsys, monkeypatch, args, message):
    """Usage errors (exit 2, one line with the fix), never a traceback nor a build of every stage."""
    from fixtures.build import __main__ as cli

    (tmp_path / "file").write_text("mine", encoding="utf-8")
    monkeypatch.setattr(cli, "build", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--out", str(tmp_path / "out"), *[a.format(file=tmp_path / "file") for a in args]])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err
    assert (tmp_path / "file").read_text(encoding="utf-8") == "mine"


def test_builder_writes_into_the_repository_fixtures_from_any_directory(tmp_path, monkeypatch):
    from fixtures.build.__main__ import parse_args

    monkeypatch.chdir(tmp_path)
    assert parse_args([]).out == ROOT / "fixtures" and not (tmp_path / "fixtures").exists()


def test_the_runtime_package_never_imports_the_builders():
    """fixtures/build is repository tooling, not in the wheel: no harness module may import it."""
    pattern = re.compile(r"^\s*(from|import)\s+fixtures\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "harness").rglob("*.py"))
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_classifier_stage_alone_names_the_missing_vocabulary(tmp_path):
    with pytest.raises(HarnessError, match="detoxify-tiny's vocabulary"):
        pipeline.build(tmp_path, only={"classifier"})


def test_smoke_build(tmp_path):
    report = pipeline.build(tmp_path, only={"corpus", "model", "detoxify", "classifier"}, steps=3, small=True)
    assert (tmp_path / "corpus" / "train.txt").exists() and (tmp_path / "data" / "heldout.txt").exists()
    assert (tmp_path / "tiny-gpt2" / "model.safetensors").exists()
    assert (tmp_path / "detoxify-tiny" / "checkpoint.ckpt").exists()
    assert (tmp_path / "tiny-toxic-classifier" / "model.safetensors").exists()
    assert report["model"]["params"] > 0 and report["probe"]["n"] > 0 and report["classifier"]["steps"] == 3
    assert set(report["timings"]) == {"corpus", "model", "probe", "detoxify", "classifier"}
    json.dumps(report)  # plain types only


# ---------------------------------------------------------------- adapters: configs and build_info.json

ADAPTERS = ("tiny-values", "tiny-control", "tiny-sgeat")


@pytest.mark.parametrize("name", ADAPTERS)
def test_bundled_adapter_configs_list_target_modules_sorted(name):
    path = FIX / name / "adapter_config.json"
    if not path.is_file():
        pytest.skip(f"{name} not built")
    modules = json.loads(path.read_text())["target_modules"]
    assert modules == sorted(modules), "rebuild with `python -m fixtures.build --only adapters`"


def test_build_info_records_the_settings_the_bundled_adapters_were_trained_with():
    from dataclasses import asdict

    from fixtures.build import RECIPE

    info = json.loads((FIX / "build_info.json").read_text())["adapters"]
    assert info["recipe"] == json.loads(json.dumps(asdict(RECIPE)))
    for name in ADAPTERS:
        report = FIX / name / "training_report.json"
        if not report.is_file():
            continue
        trained = json.loads(report.read_text())["settings"]
        recorded = info[name]["settings"]
        assert {k: trained[k] for k in recorded} == recorded, name
        assert (recorded["epochs"], recorded["lr"], recorded["target_modules"]) == (
            (RECIPE.sgeat_epochs, RECIPE.sgeat_lr) if name == "tiny-sgeat" else (RECIPE.epochs, RECIPE.lr)
        ) + (sorted(RECIPE.target_modules),)


def test_adapter_only_build_updates_build_info(tmp_path, monkeypatch):
    from fixtures.build.__main__ import main

    (tmp_path / "build_info.json").write_text(json.dumps({"model": {"params": 1}, "timings": {"model": 2.0}}))
    fake = {"seed": 0, "recipe": {"epochs": 3.0}, "time_s": 5.0, "tiny-values": {"settings": {"epochs": 3.0}}}
    monkeypatch.setattr(pipeline, "build_adapters", lambda fixtures_dir, seed: fake)
    assert main(["--out", str(tmp_path), "--only", "adapters"]) == 0
    info = json.loads((tmp_path / "build_info.json").read_text())
    assert info["adapters"] == fake and info["model"] == {"params": 1}        # other stages kept
    timings = info["timings"]
    assert set(timings) == {"model", "adapters", "total"} and timings["model"] == 2.0  # no stage not built
    assert timings["total"] == pytest.approx(2.0 + timings["adapters"])


@needs_model
def test_finetune_writes_target_modules_sorted_whatever_the_hash_seed(tmp_path):
    """peft keeps target_modules as a set; with PYTHONHASHSEED=1 it iterates c_proj before c_attn."""
    import os
    import subprocess
    import sys

    out = tmp_path / "adapter"
    env = {**os.environ, "PYTHONHASHSEED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness", "finetune", "--base", str(GPT2), "--data",
                           str(FIX / "data" / "values.jsonl"), "--method", "lora", "--out", str(out),
                           "--max-steps", "1", "--target-modules", "c_proj,c_attn"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "adapter_config.json").read_text())["target_modules"] == ["c_attn", "c_proj"]
