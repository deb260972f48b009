"""Detoxify scorer support: checkpoint validation, precisions and their agreement, GPU prefetch.

``checkpoint_config`` checks a loaded checkpoint field by field (a ScorerError names the file, the
field and the fix); ``converter`` gives a model in bf16 or int8; ``precision_agreement`` compares its
scores with fp32's; ``ScorePrefetcher`` scores finished generation batches while the next generates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ScorerError, did_you_mean

PRECISIONS = ("fp32", "bf16", "int8")
AGREEMENT_TEXTS = 128                        # bundled-corpus texts a non-fp32 scorer also scores at fp32
PROBE_WORDS = 24                             # ... each cut to its first 24 words
CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "train.txt"
_ALLOWED_MODELS = ("BertForSequenceClassification", "RobertaForSequenceClassification",
                   "XLMRobertaForSequenceClassification", "AlbertForSequenceClassification")
_ALLOWED_TOKENIZERS = ("BertTokenizer", "BertTokenizerFast", "RobertaTokenizer", "RobertaTokenizerFast",
                       "XLMRobertaTokenizer", "XLMRobertaTokenizerFast", "AlbertTokenizer", "AlbertTokenizerFast")


class ScorePrefetcher:
    """Scores finished generation batches on a worker thread while the next batch generates.

    For a Detoxify scorer on CUDA (its own stream): ``submit`` each batch's texts, ``wait`` after
    generation; the rows land in ``scorer.prefetched`` and the next ``score`` call uses them.
    """

    def __init__(self, scorer: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.scorer = scorer
        self.busy_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-score")
        self._futures: list[Any] = []

    def submit(self, texts: Sequence[str]) -> None:
        self._futures.append(self._pool.submit(self._score, list(texts)))

    def _score(self, texts: list[str]) -> None:
        t = time.perf_counter()
        rows = self.scorer.score(texts)
        self.scorer.prefetched.update((x, [r[k] for k in self.scorer.labels]) for x, r in zip(texts, rows))
        self.busy_s += time.perf_counter() - t

    def wait(self) -> None:
        """Block until every submitted batch is scored; a scoring error is raised here."""
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
            self._futures.clear()


def prefetcher(load_scorer: Callable[[], Any], device: str) -> ScorePrefetcher | None:
    """A ScorePrefetcher when the run's scorer is a Detoxify model on CUDA, else None (CPU: no overlap)."""
    if device == "cpu":
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    scorer = load_scorer()
    on_cuda = getattr(getattr(scorer, "device", None), "type", None) == "cuda"
    return ScorePrefetcher(scorer) if on_cuda and hasattr(scorer, "prefetched") else None


def checkpoint_config(path: Path, loaded: Any, need_model_type: bool = True) -> tuple[dict[str, Any], list[str], Any]:
    """``(arch args, classes, state_dict)`` of a loaded checkpoint, its structure checked field by field."""
    layout = ("a Detoxify checkpoint is {'config': {'arch': {'args': {'model_type': str, 'model_name': str, "
              "'tokenizer_name': str, 'num_classes': int}}, 'dataset': {'args': {'classes': [str, ...]}}}, "
              "'state_dict': {name: tensor}}")

    def bad(field: str, problem: str, fix: str) -> ScorerError:
        return ScorerError(f"{path}: field {field} {problem}; {layout}. Fix: {fix}, or pass another "
                           "--detoxify-checkpoint.")

    node: Any = loaded
    trail = ""
    for key in ("config", "arch", "args"):
        trail = f"{trail}.{key}" if trail else key
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise bad(trail, f"is {_kind(node)}, not a mapping", f"re-save the checkpoint with {trail} as a dict")
    args = node
    for key in ("model_type", "model_name", "tokenizer_name"):
        if (key != "model_type" or need_model_type or key in args) and not (isinstance(args.get(key), str)
                                                                             and args[key]):
            raise bad(f"config.arch.args.{key}", f"is {_kind(args.get(key))}, not a name",
                      f"set config.arch.args.{key} to a string" + (" (or pass --detoxify-config-dir)"
                                                                    if key == "model_type" else ""))
    if args["model_name"] not in _ALLOWED_MODELS or args["tokenizer_name"] not in _ALLOWED_TOKENIZERS:
        raise ScorerError(f"{path}: model {args['model_name']!r} / tokenizer {args['tokenizer_name']!r} is not a "
                          f"Detoxify architecture; valid models: {', '.join(_ALLOWED_MODELS)}.")
    dataset = loaded["config"].get("dataset")
    dargs = dataset.get("args") if isinstance(dataset, dict) else None
    classes = dargs.get("classes") if isinstance(dargs, dict) else None
    if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("config.dataset.args.classes", f"is {_kind(classes)}, not a list of class names",
                  "set it to the label names in output order, e.g. ['toxic', 'severe_toxic', ...]")
    n = args.get("num_classes")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise bad("config.arch.args.num_classes", f"is {_kind(n)}, not a positive integer",
                  f"set it to the integer {len(classes)} (the number of classes)")
    if n != len(classes):
        raise bad("config.arch.args.num_classes", f"is {n} but config.dataset.args.classes names {len(classes)}",
                  "make the two agree")
    state_dict = loaded.get("state_dict")
    if not isinstance(state_dict, dict) or not state_dict:
        raise bad("state_dict", f"is {_kind(state_dict)}, not a mapping of weights", "re-save the checkpoint "
                  "with the model's state_dict()")
    return args, list(classes), state_dict


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def check_scorer_options(choice: str, batch_size: int | str, precision: str) -> None:
    """--score-batch-size and --scorer-precision are valid, and a non-fp32 precision has a Detoxify scorer."""
    _check_options(batch_size, precision)
    if precision != "fp32" and (choice == "profanity" or choice.startswith("hf:") or choice.startswith("perspective")):
        raise ScorerError(f"--scorer-precision {precision} applies to Detoxify scorers; '{choice}' has no precision "
                          "setting. Fix: drop --scorer-precision, or choose a Detoxify scorer.")


def _check_options(batch_size: int | str, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ScorerError(f"--scorer-precision {precision}: unknown precision; {did_you_mean(precision, PRECISIONS)}.")
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ScorerError(f"--score-batch-size {batch_size!r}: not a positive integer or 'auto'.")


def converter(precision: str, device: Any, path: Path) -> Callable[[Any], Any]:
    """A function giving the model at ``precision`` (bf16 weights, or int8 dynamic quantisation of the
    Linear layers on CPU); raises ScorerError first when this device or torch cannot do it."""
    import warnings

    import torch

    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ScorerError(f"{path}: --scorer-precision bf16 but this GPU has no bfloat16. Fix: use fp32.")
        return lambda model: model.to(torch.bfloat16)
    if device.type != "cpu":
        raise ScorerError(f"{path}: --scorer-precision int8 is dynamic quantisation for the CPU. Fix: use bf16 on "
                          "a GPU, or --device cpu.")
    quantize = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantize is None or not hasattr(quantize, "quantize_dynamic"):
        raise ScorerError(f"torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic: "
                          "--scorer-precision int8 is unavailable. Fix: use fp32 or bf16.")

    def int8(model: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation notice (moving to torchao) is not the user's to act on
            return quantize.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return int8


def corpus_probe(n: int = AGREEMENT_TEXTS, words: int = PROBE_WORDS) -> list[str]:
    """``n`` evenly spaced bundled-corpus documents, each cut to its first ``words`` words (about a
    20-token continuation, and cheap to score twice); empty when the corpus is not installed."""
    if not CORPUS.is_file():
        return []
    lines = [" ".join(x.split()[:words]) for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]
    step = max(len(lines) // n, 1)
    return lines[::step][:n]


def precision_agreement(reference: Sequence[dict[str, float]], other: Sequence[dict[str, float]],
              label: str = "toxicity", threshold: float = 0.5, source: str = "") -> dict[str, Any]:
    """How far ``other`` scores are from fp32 ``reference`` scores of the same texts."""
    from scipy.stats import spearmanr

    ref, oth = [r[label] for r in reference], [r[label] for r in other]
    flips = sum((a >= threshold) != (b >= threshold) for a, b in zip(ref, oth))
    rho = float(spearmanr(ref, oth).statistic) if len(ref) > 2 else float("nan")
    return {"measured": True, "texts": len(ref), "source": source, "label": label,
            "max_abs_diff": max((abs(a[k] - b[k]) for a, b in zip(reference, other) for k in a), default=0.0),
            "spearman": rho if math.isfinite(rho) else None, "flips_at_0.5": flips,
            "flip_fraction": flips / len(ref) if ref else None,
            "reference_positive_fraction": sum(a >= threshold for a in ref) / len(ref) if ref else None}
