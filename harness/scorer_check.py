"""``harness scorer-check``: how well a toxicity scorer agrees with labelled texts, or with another scorer.

Labelled texts are JSONL lines ``{"text", "label"}`` (0/1) or ``{"text", "score"}`` (a reference
probability, e.g. from Perspective). Reported: AUROC (against the label, or the reference score >=
threshold), Spearman correlation, accuracy at the threshold, each with a seeded percentile bootstrap
95% CI, and the worst disagreements. ``--between A B`` scores the texts of a labelled file or of a
results file with two scorers and measures B against A. Scores go through the score cache.

    $ harness scorer-check fixtures/tiny-toxic-classifier/heldout.jsonl --scorer hf:fixtures/tiny-toxic-classifier
    $ harness scorer-check runs/base.json --between profanity hf:fixtures/tiny-toxic-classifier

``agreement(scorer, path)`` is the library entry; ``record_agreement(run, doc, path)`` stores it in a
results document's ``config.scorer.agreement`` (pytest ``--scorer-check FILE``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError, HarnessError

METRICS = ("auroc", "spearman", "accuracy")


@dataclass(frozen=True)
class Labelled:
    texts: tuple[str, ...]
    truth: tuple[float, ...]
    kind: str  # label | score
    path: str


def read_labelled(path: str | Path) -> Labelled:
    """Read ``{"text", "label"}`` or ``{"text", "score"}`` JSONL; one kind per file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the labelled texts ({type(exc).__name__}). Fix: pass a UTF-8 JSONL "
                        'file with one {"text": ..., "label": 0|1} or {"text": ..., "score": 0..1} per line.') from None
    texts, truth, kind = [], [], None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{where}: not JSON. Fix: one JSON object per line.") from None
        keys = [k for k in ("label", "score") if isinstance(row, dict) and k in row]
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or len(keys) != 1:
            raise DataError(f'{where}: expected {{"text": str, "label": 0|1}} or {{"text": str, "score": 0..1}} '
                            "(exactly one of label/score). Fix that line.")
        value = row[keys[0]]
        if keys[0] == "label" and value not in (0, 1):  # True/False compare equal to 1/0
            raise DataError(f"{where}: label {value!r} is not 0/1 (or true/false). Fix: 1 = toxic, 0 = not toxic.")
        if keys[0] == "score" and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                       and 0 <= value <= 1):
            raise DataError(f"{where}: score {value!r} is not a number in [0, 1]. Fix: a probability of toxicity.")
        if kind not in (None, keys[0]):
            raise DataError(f"{where}: '{keys[0]}' in a file of '{kind}' lines. Fix: use one kind per file.")
        kind = keys[0]
        texts.append(row["text"])
        truth.append(float(value))
    if not texts:
        raise DataError(f"{path}: no labelled texts. Fix: add lines like {{\"text\": \"...\", \"label\": 1}}.")
    return Labelled(tuple(texts), tuple(truth), kind or "label", str(path))


# ---- statistics -----------------------------------------------------------------------------------
def auroc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN when a class is missing.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    import numpy as np
    from scipy.stats import rankdata

    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    import numpy as np
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def accuracy(scores: Sequence[float], binary: Sequence[float], threshold: float = 0.5) -> float:
    """Share of texts on the same side of ``threshold`` as their 0/1 reference."""
    import numpy as np

    return float(np.mean((np.asarray(scores, dtype=float) >= threshold) == np.asarray(binary, dtype=bool)))


def _ci(values: list[float], confidence: float) -> tuple[float | None, float | None]:
    import numpy as np

    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None, None
    lo, hi = np.percentile(finite, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def agreement_stats(pred: Sequence[float], truth: Sequence[float], kind: str, threshold: float = 0.5,
                    n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """AUROC, Spearman and accuracy of ``pred`` against ``truth`` with percentile bootstrap CIs."""
    import numpy as np

    pred, truth = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    binary = truth if kind == "label" else (truth >= threshold).astype(float)

    def stats(idx: Any) -> dict[str, float]:
        return {"auroc": auroc(pred[idx], binary[idx]), "spearman": spearman(pred[idx], truth[idx]),
                "accuracy": accuracy(pred[idx], binary[idx], threshold)}

    point = stats(np.arange(len(pred)))
    rng = np.random.default_rng(seed)
    boot = [stats(rng.integers(0, len(pred), len(pred))) for _ in range(n_boot)]
    out: dict[str, Any] = {"n": len(pred), "positives": int(binary.sum()), "threshold": threshold,
                           "bootstrap": n_boot, "confidence": confidence, "seed": seed}
    for m in METRICS:
        lo, hi = _ci([b[m] for b in boot], confidence)
        out[m] = {"value": None if math.isnan(point[m]) else point[m], "ci_low": lo, "ci_high": hi}
    return out


def worst(texts: Sequence[str], pred: Sequence[float], truth: Sequence[float], n: int = 5) -> list[dict[str, Any]]:
    order = sorted(range(len(texts)), key=lambda i: (-abs(pred[i] - truth[i]), i))[:n]
    return [{"text": texts[i], "score": pred[i], "reference": truth[i]} for i in order]


def agreement(scorer: Any, labelled_path: str | Path, *, threshold: float = 0.5, n_boot: int = 2000,
              seed: int = 0, n_worst: int = 5, score: Callable[[Sequence[str]], list[dict]] | None = None
              ) -> dict[str, Any]:
    """Agreement of ``scorer`` (anything with ``.score(texts)``; or pass ``score=``) with a labelled file."""
    data = read_labelled(labelled_path)
    pred = [row["toxicity"] for row in (score or scorer.score)(list(data.texts))]
    return {"file": data.path, "sha256": hashlib.sha256(Path(data.path).read_bytes()).hexdigest(),
            "reference": data.kind, "scorer": getattr(scorer, "name", None),
            **agreement_stats(pred, data.truth, data.kind, threshold, n_boot, seed),
            "worst": worst(data.texts, pred, data.truth, n_worst)}


def record_agreement(run: Any, doc: dict[str, Any], path: str) -> None:
    """pytest ``--scorer-check FILE``: the run's scorer (through its score cache) against the file, stored
    in ``doc["config"]["scorer"]["agreement"]``; a failure is recorded and warned about, never dropped."""
    section = doc.setdefault("config", {}).setdefault("scorer", None) or {}
    try:
        section["agreement"] = agreement(run.scorer_handle(), path, score=run.score)
    except HarnessError as exc:
        section["agreement"] = {"file": path, "error": str(exc)}
        doc.setdefault("run", {}).setdefault("warnings", []).append(f"--scorer-check {path} failed: {exc}")
    doc["config"]["scorer"] = section


# ---- the command ----------------------------------------------------------------------------------
def texts_of(path: str | Path) -> Labelled:
    """A labelled file, or a results file's sample texts (no truth) for ``--between``."""
    path = Path(path)
    if path.suffix == ".json":
        from harness.measure.results import read_results

        texts = tuple(s["text"] for s in read_results(path)["samples"])
        if not texts:
            raise DataError(f"{path}: the results file has no samples to score.")
        return Labelled(texts, (), "score", str(path))
    return read_labelled(path)


def _session(args: argparse.Namespace, choice: str) -> Any:
    from harness.run.session import HarnessSession, RunOptions

    return HarnessSession(RunOptions(model="-", toxicity_scorer=choice, scorer_label=args.scorer_label,
                                     detoxify_checkpoint=args.detoxify_checkpoint, device=args.device,
                                     detoxify_config_dir=args.detoxify_config_dir, cache_dir=args.cache_dir,
                                     use_cache=not args.no_cache, progress=False))


def check(args: argparse.Namespace) -> dict[str, Any]:
    opts = dict(threshold=args.threshold, n_boot=args.bootstrap, seed=args.seed)
    if not args.between:
        run = _session(args, args.scorer)
        try:
            out = agreement(run.scorer_handle(), args.file, score=run.score, n_worst=args.worst, **opts)
            return {**out, "warnings": run.warnings}
        finally:
            run.close()
    runs = [_session(args, choice) for choice in args.between]
    try:
        data = texts_of(args.file)
        ref, pred = ([row["toxicity"] for row in r.score(list(data.texts))] for r in runs)
        names = [r.scorer_handle().name for r in runs]
        return {"file": data.path, "reference": f"scorer {names[0]}", "scorer": names[1],
                **agreement_stats(pred, ref, "score", **opts), "worst": worst(data.texts, pred, ref, args.worst),
                "warnings": [w for r in runs for w in r.warnings]}
    finally:
        for r in runs:
            r.close()


def format_text(out: dict[str, Any]) -> list[str]:
    ref = "labels" if out["reference"] == "label" else ("reference scores" if out["reference"] == "score"
                                                        else out["reference"])
    lines = [f"scorer {out['scorer']} vs {ref} in {out['file']}: n={out['n']}, {out['positives']} toxic "
             f"(threshold {out['threshold']}), {int(out['confidence'] * 100)}% bootstrap CIs ({out['bootstrap']})"]
    for m in METRICS:
        r = out[m]
        value = "n/a (one class only)" if r["value"] is None else f"{r['value']:.3f}"
        ci = "" if r["ci_low"] is None else f"  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        lines.append(f"  {m:<9} {value}{ci}")
    lines.append("worst disagreements (score vs reference):")
    lines += [f"  {w['score']:.3f} vs {w['reference']:.3f}  {w['text'][:100]!r}" for w in out["worst"]]
    lines += [f"WARNING: {w}" for w in out.get("warnings", [])]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="labelled JSONL ({text, label|score}); with --between also a results .json")
    parser.add_argument("--scorer", default="auto", help="scorer to check (any --toxicity-scorer value)")
    parser.add_argument("--between", nargs=2, metavar=("A", "B"), help="compare scorer B against scorer A")
    parser.add_argument("--scorer-label", help="hf: scorers: the toxic class when the labels are ambiguous")
    parser.add_argument("--detoxify-checkpoint", help="Detoxify .ckpt file")
    parser.add_argument("--detoxify-config-dir", help="local config+tokenizer directory for the checkpoint")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threshold", type=float, default=0.5, help="toxic at or above (default 0.5)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--worst", type=int, default=5, help="disagreements to list (default 5)")
    parser.add_argument("--format", default="text", choices=("text", "json"))
    parser.add_argument("--cache-dir", help="score cache directory (default ~/.cache/harness)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the score cache")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.threshold < 1 or args.bootstrap < 1 or args.worst < 0:
        raise HarnessError("--threshold must be in (0, 1), --bootstrap >= 1 and --worst >= 0.")
    out = check(args)
    if args.format == "json":
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        print("\n".join(format_text(out)))
    return 0
