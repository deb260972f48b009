"""Token-level perplexity of a causal LM with HF's strided sliding window, batched.

Each text is tokenized on its own (with the tokenizer's special tokens, e.g. a BOS for Llama;
none for GPT-2) and scored with windows of ``max_length`` tokens that advance by ``stride``; a
window scores only the tokens the previous window did not, and the very first token of a text
(no context) is never scored. With ``stride == max_length`` this is exact chunking.
perplexity = exp(total NLL / scored tokens); per-text NLL and token counts are the paired units.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "t.txt")
>>> _ = open(path, "w", encoding="utf-8").write("One doc\\nstill one.\\n\\n\\nTwo.\\n")
>>> load_texts(path)
['One doc\\nstill one.', 'Two.']
>>> load_texts(path, split="line")
['One doc', 'still one.', 'Two.']
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.suites.kind_options import check_option_keys, option_error, suite_options
from harness.errors import DataError, SpecError

PACKAGE_PREFIX = "harness:"   # options.texts: "harness:data/x.txt" = a file inside the package


@dataclass(frozen=True)
class PerplexityResult:
    """Total and per-text negative log-likelihood (nats) and scored-token counts."""
    nll: float
    n_tokens: int
    perplexity: float
    per_text_nll: tuple
    per_text_tokens: tuple
    max_length: int
    stride: int

    @property
    def nll_per_token(self) -> float:
        return self.nll / self.n_tokens


def load_texts(path: str | Path, split: str = "paragraph") -> list[str]:
    """Documents of a UTF-8 .txt file: ``paragraph`` = blank-line separated blocks (default; inner
    newlines kept), ``line`` = one per non-blank line. Surrounding whitespace is stripped."""
    path = Path(path)
    if split not in ("paragraph", "line"):
        raise SpecError(f"unknown split '{split}' for {path}; valid: line, paragraph. Fix: set "
                        "options.split to one of those.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read held-out texts {path}: {exc.strerror or exc}. Fix: check the path "
                        "(options.texts is relative to the suite YAML), or, in a source checkout, "
                        "build the fixtures with `python -m fixtures.build` from the repository root.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8: byte offset {exc.start} (line {line}) is "
                        f"{raw[exc.start:exc.start + 1]!r} ({exc.reason}). Fix: re-save the file as UTF-8.") from None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    parts = re.split(r"\n[ \t]*\n", text) if split == "paragraph" else text.split("\n")
    docs = [p.strip() for p in parts if p.strip()]
    if not docs:
        raise DataError(f"{path} holds no text. Fix: add documents separated by blank lines.")
    return docs


def resolve_texts(spec: str, suite_path: str | Path | None = None) -> Path:
    """``options.texts`` -> a path: ``harness:<rel>`` inside the package, absolute as is, else
    relative to the suite YAML's folder (the current folder when there is no YAML)."""
    if spec.startswith(PACKAGE_PREFIX):
        return Path(__file__).resolve().parents[1] / spec[len(PACKAGE_PREFIX):]
    path = Path(spec)
    if path.is_absolute() or suite_path is None:
        return path
    return Path(suite_path).parent / path


def context_length(model, tokenizer=None) -> int:
    """The model's context: config max_position_embeddings / n_positions / n_ctx, else the tokenizer's."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 1_000_000 else 1024


def windows(n: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, first)`` windows over n tokens; tokens begin+first .. end-1 are scored.

    >>> windows(10, 4, 4)
    [(0, 4, 1), (4, 8, 1), (8, 10, 1)]
    >>> windows(10, 4, 2)
    [(0, 4, 1), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    """
    out, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        first = max(1, prev_end - begin)
        if first < end - begin:
            out.append((begin, end, first))
        prev_end = end
        if end == n:
            break
    return out


def evaluate_perplexity(model, tokenizer, texts: Sequence[str], *, stride: int | None = None,
                        max_length: int | None = None, batch_size: int = 8, device=None) -> PerplexityResult:
    """Perplexity of ``model`` on ``texts``. ``max_length`` defaults to the model's context,
    ``stride`` to half of it; windows of all texts are batched (right-padded, longest first)."""
    import torch
    import torch.nn.functional as F

    if not texts:
        raise DataError("no texts to score for perplexity. Fix: give a non-empty held-out file.")
    max_length = int(max_length or context_length(model, tokenizer))
    stride = int(stride or max(1, max_length // 2))
    if not 1 <= stride <= max_length or max_length < 2:
        raise SpecError(f"perplexity stride {stride} must be between 1 and max_length {max_length} "
                        "(>= 2), or tokens between windows would never be scored. Fix: lower options.stride.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = pad_id if pad_id is not None else (getattr(tokenizer, "eos_token_id", None) or 0)
    items = []                                   # (text index, token ids, first scored position)
    for index, text in enumerate(texts):
        ids = list(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])  # windows handle length
        items += [(index, ids[b:e], first) for b, e, first in windows(len(ids), max_length, stride)]
    nll = [0.0] * len(texts)
    counts = [0] * len(texts)
    items.sort(key=lambda item: -len(item[1]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(items), max(1, int(batch_size))):
                batch = items[start:start + max(1, int(batch_size))]
                width = len(batch[0][1])
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for row, (_, ids, first) in enumerate(batch):
                    input_ids[row, :len(ids)] = torch.tensor(ids)
                    mask[row, :len(ids)] = 1
                    labels[row, first:len(ids)] = torch.tensor(ids[first:])
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                target = labels[:, 1:].to(device)
                token_nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target,
                                            ignore_index=-100, reduction="none")
                sums = token_nll.double().sum(dim=1).tolist()
                for (index, _, _), value, n in zip(batch, sums, (target != -100).sum(dim=1).tolist()):
                    nll[index] += value
                    counts[index] += int(n)
    finally:
        model.train(was_training)
    total, n_tokens = math.fsum(nll), sum(counts)
    if n_tokens == 0:
        raise DataError("the held-out texts give no token to score (each needs >= 2 tokens). "
                        "Fix: use longer documents.")
    return PerplexityResult(total, n_tokens, math.exp(total / n_tokens), tuple(nll), tuple(counts),
                            max_length, stride)


@dataclass(frozen=True)
class PerplexityOptions:
    """``options:`` of a ``kind: perplexity`` suite."""
    texts: str = ""
    split: str = "paragraph"          # paragraph | line
    stride: int | None = None         # null: half the window
    max_length: int | None = None     # null: the model's context length


def parse_options(options: Mapping, path=None) -> PerplexityOptions:
    """Validate a perplexity suite's options (the texts file is checked when it is read)."""
    check_option_keys(options, PerplexityOptions.__dataclass_fields__, path, "perplexity")
    if not isinstance(options.get("texts"), str) or not options["texts"].strip():
        raise option_error(path, "texts", "is missing or not a path",
                           "write e.g. texts: ../../fixtures/data/heldout.txt (relative to the YAML file)")
    if options.get("split", "paragraph") not in ("paragraph", "line"):
        raise option_error(path, "split", f"is {options['split']!r}; valid: line, paragraph", "use one of those")
    for key in ("stride", "max_length"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise option_error(path, key, "must be a positive integer or null", f"write e.g. {key}: 512")
    if options.get("stride") and options.get("max_length") and options["stride"] > options["max_length"]:
        raise option_error(path, "stride", "is larger than max_length, so tokens would go unscored",
                           "make stride <= max_length")
    return PerplexityOptions(**dict(options))


def _pair(model_like):
    if hasattr(model_like, "model") and hasattr(model_like, "tokenizer"):
        return model_like.model, model_like.tokenizer, getattr(model_like, "context_length", None)
    model, tokenizer = model_like
    return model, tokenizer, None


def analyze_perplexity(suite, models: Mapping, *, batch_size: int = 8, device=None) -> tuple[list[dict], dict]:
    """Score the suite's held-out texts with each role's model -> (metric records, extras).

    ``models`` maps role -> LoadedModel (uses .model, .tokenizer, .context_length) or
    (model, tokenizer). One ``perplexity`` record per role (suite level, k None: no sampling);
    extras hold the per-text units (role, index, nll, tokens) for paired comparisons.
    """
    path = getattr(suite, "path", None)
    opts = parse_options(suite_options(suite), path)
    file = resolve_texts(opts.texts, path)
    texts = load_texts(file, opts.split)
    records: list[dict] = []
    extras = {"kind": "perplexity", "texts": str(file), "split": opts.split, "n_texts": len(texts),
              "texts_sha256": hashlib.sha256("\x1e".join(texts).encode()).hexdigest(), "units": [],
              "windows": {}}
    for role, model_like in models.items():
        model, tokenizer, ctx = _pair(model_like)
        result = evaluate_perplexity(model, tokenizer, texts, stride=opts.stride, batch_size=batch_size,
                                     max_length=opts.max_length or ctx, device=device)
        records.append({"role": role, "suite": suite.id, "category": None, "prompt_id": None,
                        "metric": "perplexity", "value": result.perplexity, "k": None, "n": len(texts),
                        "tokens": result.n_tokens, "nll": result.nll, "nll_per_token": result.nll_per_token,
                        "max_length": result.max_length, "stride": result.stride})
        extras["windows"][role] = {"max_length": result.max_length, "stride": result.stride}
        extras["units"] += [{"role": role, "index": i, "nll": v, "tokens": n}
                            for i, (v, n) in enumerate(zip(result.per_text_nll, result.per_text_tokens))]
    return records, extras
