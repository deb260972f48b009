"""Toxicity scorers, offline: Detoxify checkpoints (loaded safely) and alt-profanity-check.

``load_scorer("auto")`` uses Detoxify when its weights are present (torch hub cache or
``--detoxify-checkpoint``) or downloadable within a short timeout, otherwise the offline
profanity scorer, returning a warning that the run summary prints loudly.

    >>> scorer, warnings = load_scorer("profanity")
    >>> scorer.score(["have a nice day"])[0]["toxicity"] < 0.5
    True
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import ScorerError, did_you_mean
from harness.measure.scorer import _RENAME, Scorer, ScorerHandle, _check  # noqa: F401  (re-exported)
from harness.measure.detoxify import (  # noqa: F401  (re-exported)
    AGREEMENT_TEXTS, CORPUS, PRECISIONS, PROBE_WORDS, ScorePrefetcher, _check_options, check_scorer_options,
    checkpoint_config, converter, corpus_probe, precision_agreement, prefetcher)

CHOICES = ("auto", "profanity", "detoxify", "detoxify-original", "detoxify-unbiased", "detoxify-multilingual")
# Detoxify's label names, standardised the way Detoxify does it.
DOWNLOAD_TIMEOUT_S = 5.0
# --score-batch-size auto: padded tokens and rows per batch (CUDA: halved on out-of-memory). On CPU,
# length-sorted batches of <= 64 rows were as fast as any larger batch (bench/bench_scoring.py).
AUTO_TOKENS = {"cpu": 2048, "cuda": 65536}
AUTO_MAX_ROWS = {"cpu": 64, "cuda": 1024}


class ProfanityScorer:
    """alt-profanity-check: a word-level linear model (misses implicit bias; fast; fully offline)."""

    name = "profanity"
    labels = ("toxicity",)

    def __init__(self) -> None:
        import profanity_check

        self._predict = profanity_check.predict_prob
        self.fingerprint = profanity_fingerprint()

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        probs = self._predict(list(texts))
        return _check(self.name, texts, [{"toxicity": float(p)} for p in probs])


class DetoxifyScorer:
    """A Detoxify checkpoint loaded with ``weights_only=True`` and a local config/tokenizer directory.

    ``score`` deduplicates its texts, tokenizes them once and runs length-sorted batches, so a batch
    pads only to its own longest text. ``batch_size`` is a row count or "auto" (a padded-token budget,
    halved on CUDA out-of-memory). ``precision`` fp32 (default), bf16 or int8 (CPU: dynamic
    quantisation of the Linear layers); a non-fp32 scorer measures its agreement with fp32 on the
    bundled corpus when it loads (``self.precision_agreement``).
    """

    def __init__(self, checkpoint: str | Path, config_dir: str | Path | None = None, device: str = "cpu",
                 name: str | None = None, batch_size: int | str = "auto", precision: str = "fp32") -> None:
        import torch
        import transformers

        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ScorerError(f"--detoxify-checkpoint {path}: file not found. Fix: pass the path of a Detoxify .ckpt "
                              "file, or use --toxicity-scorer profanity.")
        _check_options(batch_size, precision)
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refused, truncated file, wrong layout
            raise ScorerError(f"{path}: not a loadable Detoxify checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). It must hold only tensors and "
                              "plain types under 'config' and 'state_dict'. Fix: re-download it, or pass another "
                              "--detoxify-checkpoint.") from None
        cfg_dir = Path(config_dir).expanduser() if config_dir else (path.parent if (path.parent / "config.json").is_file()
                                                                    else None)
        args, classes, state_dict = checkpoint_config(path, loaded, need_model_type=cfg_dir is None)
        model_name, tok_name = args["model_name"], args["tokenizer_name"]
        source = str(cfg_dir) if cfg_dir else args["model_type"]
        try:
            model_cls = getattr(transformers, model_name)
            config = model_cls.config_class.from_pretrained(source, num_labels=args["num_classes"],
                                                            local_files_only=cfg_dir is not None or _offline())
            self.model = model_cls(config)
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
            missing = [k for k in missing if not k.endswith("position_ids")]
            if missing:
                raise ValueError(f"weights missing from the checkpoint: {missing[:3]}")
            self.tokenizer = getattr(transformers, tok_name).from_pretrained(
                source, local_files_only=cfg_dir is not None or _offline())
        except (OSError, ValueError, RuntimeError) as exc:
            raise ScorerError(f"{path}: cannot build the Detoxify model from config {source!r}: "
                              f"{str(exc).splitlines()[0][:200]}. Fix: pass --detoxify-config-dir with the "
                              f"config.json and tokenizer files of {args.get('model_type', 'the model')!r}.") from None
        self.device = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None  # overlaps generation
        self.labels = tuple(_RENAME.get(c, c) for c in classes)
        if "toxicity" not in self.labels:
            raise ScorerError(f"{path}: the checkpoint has no 'toxic'/'toxicity' class ({classes}).")
        self.name = name or f"detoxify:{path.stem}"
        self.batch_size = batch_size
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        self._tokens, self._max_rows = AUTO_TOKENS[kind], AUTO_MAX_ROWS[kind]
        self.max_length = min(getattr(self.tokenizer, "model_max_length", 512) or 512, 512,
                              getattr(config, "max_position_embeddings", 512) or 512)
        self.progress = False  # a tqdm bar (after 2 s) when the caller sets it
        self.precision = precision
        self.fingerprint = detoxify_fingerprint(self.name, path, precision)
        self.precision_agreement: dict[str, Any] | None = None
        self.prefetched: dict[str, list[float]] = {}  # rows a ScorePrefetcher computed during generation
        if precision != "fp32":
            convert = converter(precision, self.device, path)
            probe = corpus_probe()
            reference = self.score(probe) if probe else []
            self.model = convert(self.model)
            self.precision_agreement = precision_agreement(reference, self.score(probe), source=(
                f"bundled corpus: {len(probe)} evenly spaced documents of fixtures/corpus/train.txt, first "
                f"{PROBE_WORDS} words each")) if probe else {
                "measured": False, "reason": f"bundled corpus {CORPUS} not found"}

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        import torch

        from tqdm.auto import tqdm

        if not texts:
            return []
        done = {t: self.prefetched.pop(t) for t in dict.fromkeys(texts) if t in self.prefetched}
        unique = [t for t in dict.fromkeys(texts) if t not in done]
        if not unique:
            return _check(self.name, texts, [dict(zip(self.labels, done[t])) for t in texts])
        enc = self.tokenizer(unique, truncation=True, max_length=self.max_length)
        columns = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        lengths = [len(ids) for ids in columns["input_ids"]]
        order = sorted(range(len(unique)), key=lengths.__getitem__)
        probs: list[list[float]] = [[]] * len(unique)
        pos = 0
        with tqdm(total=len(unique), desc="scoring", unit="text", delay=2.0, leave=False,
                  disable=not self.progress) as bar:
            while pos < len(order):
                batch = order[pos:pos + self._rows(order, lengths, pos)]
                try:
                    out = self._forward(columns, batch, max(lengths[i] for i in batch))
                except torch.cuda.OutOfMemoryError:
                    if self.batch_size != "auto" or len(batch) == 1:
                        raise ScorerError(f"scorer {self.name}: CUDA out of memory on a batch of {len(batch)} "
                                          "texts. Fix: --score-batch-size auto (backs off) or a smaller N.") from None
                    torch.cuda.empty_cache()
                    self._tokens = max(self._tokens // 2, 1)
                    continue
                for i, row in zip(batch, out):
                    probs[i] = row
                pos += len(batch)
                bar.update(len(batch))
        by_text = {**done, **dict(zip(unique, probs))}
        return _check(self.name, texts, [dict(zip(self.labels, by_text[t])) for t in texts])

    def _rows(self, order: list[int], lengths: list[int], pos: int) -> int:
        """Rows of the next batch: the fixed size, or as many as fit the padded-token budget (auto)."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        rows = 1  # lengths ascend along ``order``: the last row of a batch is its longest
        while (pos + rows < len(order) and rows < self._max_rows
               and (rows + 1) * lengths[order[pos + rows]] <= self._tokens):
            rows += 1
        return rows

    def _forward(self, columns: dict[str, list[list[int]]], batch: list[int], width: int) -> list[list[float]]:
        import torch

        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        stream = torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()
        with torch.inference_mode(), stream:  # on CUDA, inputs are copied and used on the scorer's own stream
            tensors = {}
            for key, col in columns.items():
                fill = (self.tokenizer.pad_token_id or 0) if key == "input_ids" else 0
                rows = [([fill] * (width - len(col[i])) + col[i]) if left else
                        (col[i] + [fill] * (width - len(col[i]))) for i in batch]
                tensors[key] = torch.tensor(rows, dtype=torch.long, device=self.device)
            logits = self.model(**tensors).logits
            return torch.sigmoid(logits.float()).cpu().tolist()


_MEMO_DIR: dict[str, Any] = {}   # {"dir": the run's fingerprint memo directory, or None}: set by resolve_scorer


def detoxify_fingerprint(name: str, checkpoint: Path, precision: str = "fp32") -> str:
    """Name + weights hash; a non-fp32 precision is part of it (its scores never mix with fp32's in the cache).
    The hash is memoized in the run's cache directory (in the process only with --no-cache)."""
    from harness.model.models import file_sha256

    suffix = "" if precision == "fp32" else f":{precision}"
    memo = {"memo_dir": _MEMO_DIR["dir"]} if "dir" in _MEMO_DIR else {}
    return f"{name}:sha256:{file_sha256(Path(checkpoint), **memo)}{suffix}"


def profanity_fingerprint() -> str:
    from importlib.metadata import version

    return f"alt-profanity-check=={version('alt-profanity-check')}"


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in
               ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HARNESS_OFFLINE"))


def _hub_checkpoint(variant: str, allow_download: bool) -> tuple[Path | None, str]:
    """The torch-hub-cached checkpoint of a Detoxify variant, downloading it (short timeout) if allowed."""
    import urllib.request

    import torch
    from detoxify.detoxify import MODEL_URLS

    url = MODEL_URLS[variant]
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target, ""
    if not allow_download or _offline():
        return None, f"no cached weights at {target} and downloads are off"
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            data = resp.read()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return target, ""
    except (OSError, socket.timeout) as exc:
        return None, f"no cached weights at {target} and the download failed ({type(exc).__name__})"


def resolve_scorer(choice: str = "auto", checkpoint: str | None = None, config_dir: str | None = None,
                   device: str = "cpu", allow_download: bool = True, label: str | None = None,
                   cache_dir: str | None = None, use_cache: bool = True, batch_size: int | str = "auto",
                   precision: str = "fp32") -> ScorerHandle:
    """Decide which scorer a run uses, without loading its model. Explicit choices fail when unavailable."""
    if label is not None and not choice.startswith("hf:"):
        raise ScorerError(f"--scorer-label {label}: only hf:PATH scorers take a label, not '{choice}'.")
    check_scorer_options(choice, batch_size, precision)
    if choice.startswith("hf:"):  # any local sequence classifier
        from harness.measure.hf_scorer import resolve_hf
        return resolve_hf(choice, label, device)
    if choice.split(":")[0] == "perspective":  # the Perspective API
        from harness.measure.perspective import resolve_perspective
        return resolve_perspective(choice, cache_dir, use_cache)
    if choice not in CHOICES:
        raise ScorerError(f"--toxicity-scorer {choice}: unknown scorer; "
                          f"{did_you_mean(choice, (*CHOICES, 'hf:PATH', 'perspective'))}.")
    if choice == "profanity":
        return ScorerHandle("profanity", profanity_fingerprint(), ProfanityScorer)
    if use_cache:
        from harness.model.cache import default_cache_dir

        _MEMO_DIR["dir"] = cache_dir or default_cache_dir()
    else:
        _MEMO_DIR["dir"] = None

    def detoxify(name: str, path: Path) -> ScorerHandle:
        return ScorerHandle(name, detoxify_fingerprint(name, path, precision),
                            lambda: DetoxifyScorer(path, config_dir, device, name, batch_size, precision),
                            precision=precision)

    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ScorerError(f"--detoxify-checkpoint {path}: file not found. Fix: pass the path of a Detoxify "
                              ".ckpt file, or use --toxicity-scorer profanity.")
        return detoxify(choice if choice.startswith("detoxify-") else f"detoxify:{path.stem}", path)
    variant = "original" if choice in ("auto", "detoxify") else choice.split("-", 1)[1]
    path, reason = _hub_checkpoint(variant, allow_download)
    if path is not None:
        handle = detoxify(f"detoxify-{variant}", path)
        if choice != "auto":
            return handle
        try:  # auto: only use Detoxify if it really loads (config + tokenizer available offline)
            handle.load()
            return handle
        except ScorerError as exc:
            reason = str(exc)
    if choice != "auto":
        raise ScorerError(f"--toxicity-scorer {choice}: Detoxify weights unavailable ({reason}). Fix: pass "
                          "--detoxify-checkpoint PATH and --detoxify-config-dir DIR, put the checkpoint in the torch "
                          "hub cache ($TORCH_HOME/hub/checkpoints), or use --toxicity-scorer profanity.")
    warning = ("TOXICITY SCORER FALLBACK: Detoxify is unavailable (" + reason + "), so toxicity was scored with the "
               "offline word-level profanity model (alt-profanity-check), which misses implicit toxicity and bias. "
               "Numbers are not comparable with Detoxify/Perspective results. Pass --detoxify-checkpoint to use "
               "Detoxify, or --toxicity-scorer profanity to choose this scorer explicitly.")
    return ScorerHandle("profanity", profanity_fingerprint(), ProfanityScorer, [warning])


def load_scorer(choice: str = "auto", checkpoint: str | None = None, config_dir: str | None = None,
                device: str = "cpu", allow_download: bool = True, batch_size: int | str = "auto",
                precision: str = "fp32") -> tuple[Any, list[str]]:
    """Return ``(scorer, warnings)`` with the model loaded."""
    handle = resolve_scorer(choice, checkpoint, config_dir, device, allow_download, batch_size=batch_size,
                            precision=precision)
    return handle.load(), handle.warnings
