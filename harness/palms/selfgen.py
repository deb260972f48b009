"""`harness self-generate`: SGEAT's self-generated, least-toxic training corpus (Wang et al., 2022).

Samples ``--n`` texts unconditionally (BOS only; top_p 0.9, temperature 1.0 by default), scores every
sample with the configured toxicity scorer, keeps the least-toxic ``--keep`` fraction and writes a
JSONL corpus (``{"text": ..., "toxicity": ...}``) that ``harness finetune --data`` trains on, plus
``<out>.summary.json`` with the score distribution of the kept and dropped samples.

Selection: samples are ranked by toxicity (ties by sample index); ``n_keep = floor(keep * n)`` (at
least 1) of the lowest are kept. Empty samples (the model emitted EOS at once) are scored and counted
but never kept: training on them would teach the model to stop talking, not to be less toxic.

    $ harness self-generate --model fixtures/tiny-gpt2 --n 200 --keep 0.5 --out corpus.jsonl \
        --toxicity-scorer profanity
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class SelfGenCorpus:
    """The outcome of scoring and filtering: kept/dropped indices into ``texts`` and the threshold."""

    texts: tuple[str, ...]
    toxicity: tuple[float, ...]
    kept: tuple[int, ...]            # indices, in sample order
    dropped: tuple[int, ...]
    empty: tuple[int, ...]           # indices of empty samples (always dropped)
    threshold: float | None          # highest toxicity among kept samples

    def summary(self) -> dict[str, Any]:
        return {"n": len(self.texts), "n_kept": len(self.kept), "n_dropped": len(self.dropped),
                "n_empty": len(self.empty), "threshold": self.threshold,
                "kept": distribution([self.toxicity[i] for i in self.kept]),
                "dropped": distribution([self.toxicity[i] for i in self.dropped]),
                "all": distribution(list(self.toxicity))}


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean and quantiles (linear interpolation) of ``values``; None fields when empty."""
    vals = sorted(values)
    if not vals:
        return {"count": 0, "mean": None, "quantiles": {f"q{int(q * 100):02d}": None for q in QUANTILES}}

    def q(p: float) -> float:
        pos = p * (len(vals) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

    return {"count": len(vals), "mean": sum(vals) / len(vals),
            "quantiles": {f"q{int(p * 100):02d}": q(p) for p in QUANTILES}}


def n_to_keep(n: int, keep: float) -> int:
    """``floor(keep * n)``, at least 1 (tolerant of float error, e.g. 0.3 * 10)."""
    return max(1, math.floor(keep * n + 1e-9))


def select_least_toxic(texts: Sequence[str], scorer: Any, keep: float, batch_size: int = 256) -> SelfGenCorpus:
    """Score every text with ``scorer`` (a harness Scorer) and keep the least-toxic ``keep`` fraction."""
    if not 0.0 < keep <= 1.0:
        raise HarnessError(f"--keep {keep}: must be a fraction in (0, 1], e.g. 0.5 keeps the least-toxic half.")
    tox: list[float] = []
    for start in range(0, len(texts), batch_size):
        tox += [float(row["toxicity"]) for row in scorer.score(list(texts[start:start + batch_size]))]
    empty = tuple(i for i, t in enumerate(texts) if not t.strip())
    ranked = sorted((i for i in range(len(texts)) if texts[i].strip()), key=lambda i: (tox[i], i))
    kept = tuple(sorted(ranked[:n_to_keep(len(texts), keep)]))
    kept_set = set(kept)
    dropped = tuple(i for i in range(len(texts)) if i not in kept_set)
    threshold = max((tox[i] for i in kept), default=None)
    return SelfGenCorpus(tuple(texts), tuple(tox), kept, dropped, empty, threshold)


def write_corpus(corpus: SelfGenCorpus, out: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``out`` (kept samples, JSONL) and ``<out stem>.summary.json``; both atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"text": corpus.texts[i], "toxicity": corpus.toxicity[i], "sample_index": i},
                               ensure_ascii=False) + "\n" for i in corpus.kept)
    summary_path = summary_path_for(out)
    for path, text in ((out, lines), (summary_path, json.dumps({**meta, **corpus.summary()}, indent=2) + "\n")):
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return summary_path


def summary_path_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".summary.json")


def self_generate(loaded: Any, scorer: Any, n: int = 200, keep: float = 0.5, seed: int = 0,
                  decoding: Any = None, batch_size: int | str = "auto",
                  progress: bool = False) -> tuple[SelfGenCorpus, float]:
    """Sample ``n`` BOS-only texts from ``loaded`` (harness LoadedModel), score, filter.

    Returns the corpus and the generation time in seconds.
    """
    from harness.model.generation import Generator
    from harness.suites.specs import Decoding
    if n < 1:
        raise HarnessError(f"--n {n}: must be at least 1 sample.")
    decoding = decoding or Decoding(samples=1, max_new_tokens=40, temperature=1.0, top_p=0.9, top_k=0)
    start = time.perf_counter()
    gens = Generator(loaded, batch_size=batch_size).generate_unconditional(n, seed, decoding, progress=progress)
    gen_time = time.perf_counter() - start
    return select_least_toxic([g.text for g in gens], scorer, keep), gen_time


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="model directory (or hub id available offline)")
    parser.add_argument("--adapter", default=None, help="peft adapter directory on top of --model")
    parser.add_argument("--n", type=int, default=200, help="samples to generate (default 200)")
    parser.add_argument("--keep", type=float, default=0.5, help="least-toxic fraction to keep (default 0.5)")
    parser.add_argument("--out", required=True, help="corpus JSONL to write; the summary goes to <stem>.summary.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--toxicity-scorer", default="auto",
                        help="auto | profanity | detoxify-original | detoxify-unbiased | detoxify-multilingual")
    parser.add_argument("--detoxify-checkpoint", default=None, help="local Detoxify checkpoint file")
    parser.add_argument("--detoxify-config-dir", default=None, help="local config + tokenizer dir for it")
    parser.add_argument("--batch-size", default="auto", help="generation batch size (default auto)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import sys

    from harness.model.models import load_model
    from harness.measure.scoring import load_scorer
    from harness.suites.specs import Decoding
    scorer, warnings = load_scorer(args.toxicity_scorer, args.detoxify_checkpoint, args.detoxify_config_dir)
    for w in warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    loaded = load_model(args.model, adapter=args.adapter, device=args.device)
    decoding = Decoding(samples=1, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        top_p=args.top_p, top_k=args.top_k)
    batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    corpus, gen_time = self_generate(loaded, scorer, args.n, args.keep, args.seed, decoding, batch,
                                     progress=not args.no_progress)
    if not corpus.kept:
        raise HarnessError(f"all {args.n} self-generated samples were empty (the model emits EOS at once), so "
                           "there is nothing to train on; check the model, or raise --n / --max-new-tokens.")
    meta = {"harness_version": __version__, "model": loaded.describe(),
            "scorer": {"name": scorer.name, "fingerprint": scorer.fingerprint, "fallback": bool(warnings)},
            "seed": args.seed, "keep": args.keep, "decoding": decoding.generation_dict(),
            "generation_time_s": round(gen_time, 3), "corpus": str(args.out)}
    summary = write_corpus(corpus, args.out, meta)
    s = corpus.summary()
    print(f"kept {s['n_kept']} of {s['n']} samples (toxicity <= {s['threshold']:.4f}; {s['n_empty']} empty) "
          f"-> {args.out}; distribution in {summary}")
    return 0
