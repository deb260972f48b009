"""Any local Hugging Face sequence classifier as the toxicity scorer: ``--toxicity-scorer hf:PATH_OR_ID``.

The toxic class comes from the model's ``config.json`` (``id2label``): the label named ``toxic`` or
``toxicity``, or the one ``--scorer-label NAME`` names when that is ambiguous (``LABEL_0``/``LABEL_1``,
``hate``/``offensive``...). Probabilities use a sigmoid for ``multi_label_classification`` heads and
single-output heads, a softmax otherwise; regression heads are refused. Hub ids resolve through the
local Hugging Face cache only; custom model code is never run. Batched; the fingerprint (weights,
config, tokenizer, chosen label, activation) keys the score cache like Detoxify's.

    >>> plan_labels({"0": "non-toxic", "1": "toxic"}, None, source="clf").outputs
    (('toxicity', 1),)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ScorerError, did_you_mean
from harness.measure.scorer import _RENAME, ScorerHandle, _check

PREFIX = "hf:"
TOXIC_NAMES = ("toxic", "toxicity")


def normalise(label: str) -> str:
    """A label as a metric-safe name: ``"Non-Toxic"`` -> ``"non_toxic"``."""
    return re.sub(r"[^a-z0-9]+", "_", str(label).lower()).strip("_")


@dataclass(frozen=True)
class LabelPlan:
    activation: str                        # sigmoid | softmax
    toxic: str                             # the model's name of the toxic class
    outputs: tuple[tuple[str, int], ...]   # (harness label, logit index); "toxicity" first


def plan_labels(id2label: Mapping[Any, str], problem_type: str | None, label: str | None = None,
                source: str = "") -> LabelPlan:
    """Decide the activation and which output is toxicity, from a config's ``id2label``/``problem_type``."""
    names = {int(i): str(n) for i, n in id2label.items()}
    if sorted(names) != list(range(len(names))) or not names:
        raise ScorerError(f"{source}/config.json: id2label {dict(id2label)!r} is not a list of classes 0..n-1. "
                          "Fix: save the classifier with save_pretrained.")
    if problem_type == "regression":
        raise ScorerError(f"{source}/config.json: problem_type 'regression' outputs unbounded values, not "
                          "probabilities. Fix: use a classification head (single- or multi-label).")
    activation = "sigmoid" if problem_type == "multi_label_classification" or len(names) == 1 else "softmax"
    if label is not None:
        hits = [i for i, n in names.items() if n == label or normalise(n) == normalise(label)]
        if len(hits) != 1:
            raise ScorerError(f"--scorer-label {label}: {source} has no class of that name; "
                              f"{did_you_mean(label, names.values())}.")
    else:
        hits = [i for i, n in names.items() if normalise(n) in TOXIC_NAMES]
        if len(hits) != 1:
            raise ScorerError(f"{source}: cannot tell which class is toxic from config.json (classes: "
                              f"{', '.join(names.values())}). Fix: pass --scorer-label NAME naming the toxic class.")
    toxic = hits[0]
    outputs = [("toxicity", toxic)]
    if activation == "sigmoid":  # independent labels: keep them all (Detoxify-style names)
        for i, n in names.items():
            name = _RENAME.get(normalise(n), normalise(n))
            if i != toxic and name and name not in dict(outputs):
                outputs.append((name, i))
    return LabelPlan(activation, names[toxic], tuple(outputs))


def _directory(source: str) -> Path:
    from harness.model.models import resolve_model_dir

    directory = resolve_model_dir(source)
    if directory is None or not (directory / "config.json").is_file():
        raise ScorerError(f"--toxicity-scorer hf:{source}: no classifier found (a directory with config.json, or a "
                          "hub id in the local Hugging Face cache). Fix: pass a directory written by save_pretrained, "
                          "or download the model once (`huggingface-cli download ID`).")
    return directory


class HFClassifierScorer:
    """A loaded ``AutoModelForSequenceClassification`` with its tokenizer."""

    def __init__(self, directory: Path, plan: LabelPlan, name: str, fingerprint: str, device: str = "cpu",
                 batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ScorerError(f"{directory}: cannot load the classifier ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Fix: check that it holds "
                              "config.json, the weights and the tokenizer files (save_pretrained).") from None
        self.device = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()
        self.plan, self.name, self.fingerprint, self.batch_size = plan, name, fingerprint, batch_size
        self.labels = tuple(label for label, _ in plan.outputs)
        limits = [getattr(self.tokenizer, "model_max_length", 512), getattr(self.model.config,
                  "max_position_embeddings", 512), 512]
        self.max_length = min(x for x in limits if isinstance(x, int) and x > 0)
        self.progress = False

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        import torch
        from tqdm.auto import tqdm

        rows: list[dict[str, float]] = []
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="scoring", unit="batch", delay=2.0, leave=False, disable=not self.progress):
            chunk = list(texts[start:start + self.batch_size])
            enc = self.tokenizer(chunk, return_tensors="pt", truncation=True, padding=True, max_length=self.max_length)
            with torch.inference_mode():
                logits = self.model(**enc.to(self.device)).logits.float()
            probs = (torch.sigmoid(logits) if self.plan.activation == "sigmoid" else torch.softmax(logits, -1)).cpu()
            rows.extend({label: float(row[i]) for label, i in self.plan.outputs} for row in probs.tolist())
        return _check(self.name, texts, rows)


def resolve_hf(choice: str, label: str | None = None, device: str = "cpu") -> Any:
    """A ScorerHandle for ``hf:PATH_OR_ID``: labels planned and files fingerprinted, weights not loaded."""
    from harness.model.models import model_fingerprint

    source = choice[len(PREFIX):]
    if not source:
        raise ScorerError("--toxicity-scorer hf: needs a classifier after 'hf:', e.g. hf:./my-toxicity-classifier.")
    directory = _directory(source)
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        id2label = config.get("id2label") or {i: f"LABEL_{i}" for i in range(int(config.get("num_labels", 2)))}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ScorerError(f"{directory}/config.json: unreadable ({type(exc).__name__}). Fix: save the classifier "
                          "with save_pretrained.") from None
    plan = plan_labels(id2label, config.get("problem_type"), label, source=str(directory))
    name = f"{PREFIX}{source}"
    fingerprint = f"hf:{model_fingerprint(str(directory))}:{plan.activation}:{plan.toxic}"  # content, not path
    return ScorerHandle(name, fingerprint, lambda: HFClassifierScorer(directory, plan, name, fingerprint, device))
