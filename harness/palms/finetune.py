"""`harness finetune`: values-targeted (PALMS step 2), control and SGEAT fine-tuning with Trainer + peft.

    $ harness finetune --base fixtures/tiny-gpt2 --data fixtures/data/values.jsonl --method lora --out out/values

Methods: ``lora`` (peft LoraConfig), ``adapter`` (peft IA3Config: learned rescaling vectors on the
attention and feed-forward activations. We use IA3 because peft 0.21 has no bottleneck adapter
layers; unlike prefix or prompt tuning it changes no sequence length or KV cache, so the adapter works
with ordinary batched, left-padded generation), and ``full`` (every weight). ``lora`` and ``adapter``
write a peft adapter directory that ``--adapter DIR`` accepts; ``full`` writes a model + tokenizer
directory that ``--model DIR`` accepts. Every output directory also holds ``training_report.json``
(settings, data sha256, loss per logging step, train time, harness version) and ``loss_curve.png``.

Data: Q&A JSONL trains on "question" + separator + "answer" + EOS, with labels -100 over the question
tokens, so loss is only on what the model should say after an evaluation prompt. Plain-text JSONL
(``{"text": ...}``, an SGEAT corpus) trains on every token. The PALMS control model is trained the
same way on a dataset of similar size and writing style without the values (fixtures/data/control.jsonl).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError, ModelLoadError, did_you_mean

log = logging.getLogger(__name__)
METHODS = ("lora", "adapter", "full")
DEFAULT_LR = {"lora": 2e-4, "adapter": 3e-3, "full": 5e-5}
REPORT_NAME, PLOT_NAME = "training_report.json", "loss_curve.png"


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of one run; validated on construction (unknown method -> HarnessError)."""

    base: str
    data: str
    method: str
    out: str
    epochs: float = 3.0
    lr: float | None = None                  # None -> DEFAULT_LR[method]
    batch_size: int = 4
    max_length: int = 512                    # capped at the model's context length
    seed: int = 0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None   # None -> peft's default for the architecture
    max_steps: int = -1                      # > 0 overrides epochs
    logging_steps: int = 1
    separator: str = "\n"                    # between question and answer
    prompt_template: str = "{prompt}"        # the suite's prompt_template, applied to the question
    chat_template: str = "auto"              # auto | true | false (as in suite YAML)
    categories: tuple[str, ...] | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise HarnessError(f"unknown fine-tuning method '{self.method}'; {did_you_mean(self.method, METHODS)}. "
                               "lora and adapter (IA3) train a small peft adapter; full trains every weight.")
        if "{prompt}" not in self.prompt_template:
            raise HarnessError(f"--prompt-template {self.prompt_template!r} must contain '{{prompt}}', "
                               "as the suite YAML's prompt_template does (e.g. 'Q: {prompt}\\nA:').")
        if self.chat_template not in ("auto", "true", "false"):
            raise HarnessError(f"unknown chat_template '{self.chat_template}'; "
                               f"{did_you_mean(self.chat_template, ['auto', 'true', 'false'])}.")
        for name in ("epochs", "batch_size", "max_length", "lora_r", "logging_steps"):
            if getattr(self, name) <= 0:
                raise HarnessError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}.")
        if self.lr is not None and self.lr <= 0:
            raise HarnessError(f"--lr must be positive, got {self.lr}.")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]


def use_chat_template(tokenizer, setting: str = "auto") -> bool:
    """True when the prompt should be wrapped in the tokenizer's chat template (as generation does)."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if setting == "true" and not has:
        raise HarnessError("chat_template is 'true' but the tokenizer has no chat template; "
                           "use --chat-template auto or false.")
    return has and setting != "false"


def build_examples(records: list, tokenizer, max_length: int, separator: str = "\n",
                   chat: bool = False, prompt_template: str = "{prompt}") -> tuple[list[dict], dict[str, int]]:
    """Tokenise QASample / TextSample records into {input_ids, attention_mask, labels}.

    Q&A: labels are -100 over the prompt (question) tokens and equal input_ids over separator +
    answer + EOS (a prompt longer than half of ``max_length`` keeps its last tokens, as generation
    left-truncates prompts); the question is rendered with ``prompt_template`` (and the chat template when
    ``chat``) exactly as the evaluation renders prompts. Text: labels equal input_ids. Sequences
    longer than ``max_length`` are cut at the end.
    """
    eos = tokenizer.eos_token_id
    examples, stats = [], Counter()
    for r in records:
        if hasattr(r, "question"):
            question = prompt_template.replace("{prompt}", r.question)
            if chat:
                prompt_text = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                            add_generation_prompt=True, tokenize=False)
                prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
                completion = tokenizer(r.answer, add_special_tokens=False)["input_ids"]
            else:
                prompt = tokenizer(question)["input_ids"]
                completion = tokenizer(separator + r.answer, add_special_tokens=False)["input_ids"]
            completion = completion + ([eos] if eos is not None else [])
            if len(prompt) > max_length // 2:   # keep the end, as generation left-truncates prompts
                prompt = prompt[-(max_length // 2):]
                stats["prompt_truncated"] += 1
            full_ids, full_labels = prompt + completion, [-100] * len(prompt) + completion
        else:
            full_ids = tokenizer(r.text)["input_ids"] + ([eos] if eos is not None else [])
            full_labels = list(full_ids)
        stats["truncated"] += int(len(full_ids) > max_length)
        ids, labels = full_ids[:max_length], full_labels[:max_length]
        stats["tokens"] += len(ids)
        stats["loss_tokens"] += sum(1 for x in labels if x != -100)
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    stats["examples"] = len(examples)
    return examples, dict(stats)


def load_training_data(path: str, categories: set[str] | None = None) -> tuple[str, list]:
    """("qa" | "text", records) from a JSONL file (format from the first line)."""
    from harness.palms.datasets import detect_format, load_qa_dataset, load_text_corpus
    kind = detect_format(path)
    return kind, (load_qa_dataset(path, categories) if kind == "qa" else load_text_corpus(path))


@contextlib.contextmanager
def _determinism(enabled: bool):
    """Trainer's full_determinism flips process-wide switches; put them back afterwards."""
    import torch
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             {k: os.environ.get(k) for k in ("CUDA_LAUNCH_BLOCKING", "CUBLAS_WORKSPACE_CONFIG",
                                             "ASCEND_LAUNCH_BLOCKING", "HCCL_DETERMINISTIC",
                                             "FLASH_ATTENTION_DETERMINISTIC")})
    try:
        yield enabled
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        for k, v in saved[2].items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_base(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a user-fixable path problem
        raise ModelLoadError(f"cannot load base model '{path}' ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                             "pass a local directory holding config.json, weights and tokenizer files "
                             "(hub downloads are off).") from None
    if tokenizer.eos_token_id is None:
        raise ModelLoadError(f"tokenizer of '{path}' has no EOS token; set eos_token in its tokenizer_config.json.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _peft_config(cfg: FinetuneConfig, model):
    from peft import IA3Config, LoraConfig, TaskType
    from transformers.pytorch_utils import Conv1D
    targets = list(cfg.target_modules) if cfg.target_modules else None
    if cfg.method == "lora":
        conv1d = any(isinstance(m, Conv1D) for m in model.modules())
        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                          lora_dropout=cfg.lora_dropout, target_modules=targets, fan_in_fan_out=conv1d)
    return IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=targets,
                     feedforward_modules=[] if targets else None)


def _wrap_peft(cfg: FinetuneConfig, model):
    from peft import get_peft_model
    try:
        return get_peft_model(model, _peft_config(cfg, model))
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if n})
        raise HarnessError(f"peft cannot set up a {cfg.method} adapter on this model ({exc}); pass "
                           "--target-modules NAME[,NAME] naming linear layers, e.g. one of: "
                           f"{', '.join(names[:12])}.") from None


def _loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    keys = ("step", "epoch", "loss", "learning_rate", "grad_norm")
    return [{k: e[k] for k in keys if k in e} for e in log_history if "loss" in e]


def plot_loss_curve(curve: list[dict[str, float]], path: Path, title: str) -> None:
    """Write a loss-per-step PNG (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker="." if len(curve) < 60 else None)
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# Files a previous run may have left in --out; --overwrite removes these (and nothing else).
_OUTPUTS = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "config.json",
            "generation_config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
            "vocab.json", "merges.txt", "README.md", REPORT_NAME, PLOT_NAME)


def _check_out(cfg: FinetuneConfig) -> Path:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out} is a file; pass a directory path.")
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise HarnessError(f"output directory {out} exists and is not empty; choose a new --out or pass "
                               "--overwrite to replace the model/adapter files in it.")
        for name in _OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for shard in out.glob("model-*.safetensors"):
            shard.unlink()
    return out


def finetune(cfg: FinetuneConfig, progress: bool = True) -> dict[str, Any]:
    """Train with transformers Trainer (+ peft) and write the model/adapter + report to ``cfg.out``."""
    import torch
    import transformers
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed
    from harness.palms.datasets import file_sha256

    kind, records = load_training_data(cfg.data, set(cfg.categories) if cfg.categories else None)
    out = _check_out(cfg)
    set_seed(cfg.seed)
    model, tokenizer = _load_base(cfg.base)
    context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    max_length = min(cfg.max_length, context) if context else cfg.max_length
    chat = use_chat_template(tokenizer, cfg.chat_template)
    examples, stats = build_examples(records, tokenizer, max_length, cfg.separator, chat,
                                     cfg.prompt_template)
    if stats.get("truncated") or stats.get("prompt_truncated"):
        log.warning("%d of %d examples are longer than %d tokens and were cut (%d questions kept only their "
                    "last tokens); raise --max-length if the model's context allows", stats.get("truncated", 0),
                    len(examples), max_length, stats.get("prompt_truncated", 0))
    if cfg.method != "full":
        model = _wrap_peft(cfg, model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    on_cpu = not torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="harness-finetune-") as tmp, _determinism(on_cpu):
        args = TrainingArguments(
            output_dir=tmp, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
            logging_steps=cfg.logging_steps, logging_first_step=True, save_strategy="no", report_to="none",
            seed=cfg.seed, data_seed=cfg.seed, full_determinism=on_cpu, optim="adamw_torch",
            disable_tqdm=not progress, remove_unused_columns=False, dataloader_num_workers=0,
            dataloader_pin_memory=False, use_cpu=on_cpu)
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator,
                          processing_class=tokenizer)
        if not progress:  # without the tqdm bar the Trainer prints every log dict instead
            trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        result = trainer.train()
        train_time = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _sort_module_sets(out / "adapter_config.json")
    if cfg.method == "full":
        tokenizer.save_pretrained(out)
    curve = _loss_curve(trainer.state.log_history)
    report = {
        "harness_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "method": cfg.method,
        "adapter_type": {"lora": "LORA", "adapter": "IA3", "full": None}[cfg.method],
        "settings": {**asdict(cfg), "learning_rate": cfg.learning_rate, "max_length_used": max_length,
                     "chat_template_used": chat},
        "base": {"path": cfg.base, "fingerprint": _fingerprint(cfg.base)},
        "data": {"path": cfg.data, "sha256": file_sha256(cfg.data), "format": kind, "n_samples": len(records),
                 "categories": dict(Counter(getattr(r, "category", "text") for r in records)), **stats},
        "parameters": {"trainable": trainable, "total": total},
        "loss_curve": curve,
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "train_time_s": round(train_time, 3),
        "device": str(trainer.args.device),
        "packages": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": _version("peft"), "harness": __version__},
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if curve:
        plot_loss_curve(curve, out / PLOT_NAME, f"{cfg.method} on {Path(cfg.data).name}")
    return report


def _sort_module_sets(path: Path) -> None:
    """peft writes its module sets (target_modules, ...) in hash order, which varies between processes: sort."""
    if path.is_file():
        conf = json.loads(path.read_text(encoding="utf-8"))
        conf.update({k: sorted(v) for k, v in conf.items() if k.endswith("_modules") and isinstance(v, list)})
        path.write_text(json.dumps(conf, indent=2, sort_keys=True), encoding="utf-8")


def _fingerprint(path: str) -> str | None:
    try:
        from harness.model.models import model_fingerprint
    except ImportError:  # pragma: no cover - models.py is part of the package
        return None
    try:
        return model_fingerprint(path)
    except Exception:  # noqa: BLE001 - the fingerprint is informative only
        return None


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def add_arguments(parser) -> None:
    parser.add_argument("--base", required=True, help="base model directory (config, weights, tokenizer)")
    parser.add_argument("--data", required=True, help="Q&A JSONL (category/question/answer) or text JSONL")
    parser.add_argument("--method", default="lora", help="lora | adapter (peft IA3) | full (default lora)")
    parser.add_argument("--out", required=True, help="output directory (adapter dir, or model dir for full)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: lora 2e-4, adapter 3e-3, full 5e-5)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512, help="tokens per example (capped at context)")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--target-modules", default=None,
                        help="comma-separated module names for lora/adapter (default: peft's per-architecture "
                             "default, e.g. c_attn for GPT-2)")
    parser.add_argument("--categories", default=None,
                        help="validate Q&A categories: 'palms', a suite YAML, or a,b,c (default: any)")
    parser.add_argument("--chat-template", default="auto", help="auto | true | false (match the evaluation)")
    parser.add_argument("--prompt-template", default="{prompt}",
                        help="render questions as the suite does, e.g. 'Q: {prompt}\\nA:' (default '{prompt}')")
    parser.add_argument("--separator", default="\n", help="text between question and answer (default newline)")
    parser.add_argument("--logging-steps", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the Trainer progress bar")


def _unescape(text: str) -> str:
    """Shell-typed escapes: a literal backslash-n becomes a newline (and backslash-t a tab)."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def run(args) -> int:
    from harness.palms.datasets import resolve_categories
    cats = resolve_categories(args.categories)
    cfg = FinetuneConfig(
        base=args.base, data=args.data, method=args.method, out=args.out, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, max_length=args.max_length, seed=args.seed, lora_r=args.lora_r,
        lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, max_steps=args.max_steps,
        target_modules=tuple(t.strip() for t in args.target_modules.split(",")) if args.target_modules else None,
        logging_steps=args.logging_steps, prompt_template=_unescape(args.prompt_template),
        separator=_unescape(args.separator), chat_template=args.chat_template,
        categories=tuple(sorted(cats)) if cats else None, overwrite=args.overwrite)
    report = finetune(cfg, progress=not args.no_progress)
    flag = "--model" if cfg.method == "full" else "--adapter"
    print(f"wrote {cfg.out} ({report['steps']} steps in {report['train_time_s']:.1f} s, final loss "
          f"{report['loss_curve'][-1]['loss'] if report['loss_curve'] else float('nan'):.3f}); "
          f"evaluate with {flag} {cfg.out}")
    return 0
