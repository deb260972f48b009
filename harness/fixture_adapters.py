"""Build the bundled PALMS/SGEAT adapters on ``fixtures/tiny-gpt2`` and measure their toxicity.

    $ python -m harness.fixtures build --only adapters          # calls build_adapters()
    $ python -m harness.fixture_adapters --no-measure           # the same build, on its own
    $ python -m harness.fixture_adapters --measure-only         # EMT of base vs the three adapters

Three LoRA adapters, all through ``harness.palms.finetune`` (Trainer + peft) and so reproducible on CPU:

- ``tiny-values``: values-targeted (PALMS step 2) on ``fixtures/data/values.jsonl``;
- ``tiny-control``: the PALMS control, same recipe on ``fixtures/data/control.jsonl`` (similar size and
  writing style, everyday topics, no values);
- ``tiny-sgeat``: SGEAT: ``harness self-generate`` from the base (BOS only, top_p 0.9, temperature 1,
  offline profanity scorer), keep the least-toxic half, LoRA on that plain-text corpus (kept in the
  adapter directory as ``sgeat_corpus.jsonl`` + ``sgeat_corpus.summary.json``).

Questions are joined to answers with a space, the layout of the base model's training corpus.
The evaluation prompts (benchmarks/suites/palms.yaml) are never trained on.

Measured on 2 CPU cores (seed 0; EMT over the 40 PALMS prompts, k=3, 40 new tokens, top_p 0.9,
profanity scorer, mean of sampling seeds 0-4; perplexity on fixtures/data/heldout.txt):
base 0.578 (ppl 7.12), values 0.318 (8.25), control 0.357 (8.51), SGEAT 0.268 (7.23). The
values-vs-control gap is within the seed-to-seed spread (sd 0.04-0.06): the base model's
toxicity is topic-independent rude replies, so any polite Q&A fine-tuning suppresses much of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = ("tiny-values", "tiny-control", "tiny-sgeat")


@dataclass(frozen=True)
class Recipe:
    """LoRA settings. Values and control share one recipe (only the data differs, as in PALMS);
    SGEAT trains longer because its self-generated text is in the base model's own distribution."""

    epochs: float = 3.0
    lr: float = 1e-3
    batch_size: int = 8
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("c_attn", "c_proj")   # c_proj: attention and MLP output
    max_length: int = 256
    max_steps: int = -1                      # > 0 caps training (smoke tests)
    separator: str = " "
    sgeat_epochs: float = 4.0
    sgeat_lr: float = 2e-3
    sgeat_n: int = 400
    sgeat_keep: float = 0.5
    sgeat_max_new_tokens: int = 64


RECIPE = Recipe()


def _data_file(fixtures_dir: Path, name: str) -> Path:
    for d in (fixtures_dir / "data", REPO / "fixtures" / "data"):
        if (d / name).is_file():
            return d / name
    raise HarnessError(f"{name} not found under {fixtures_dir / 'data'} or {REPO / 'fixtures' / 'data'}; "
                       "restore the committed fixture datasets (git checkout fixtures/data).")


def _portable(path: Path) -> str:
    """A path relative to the working directory when below it, so reports and adapter configs
    written from the repository root name ``fixtures/tiny-gpt2``, not a machine-specific path."""
    rel = os.path.relpath(Path(path).resolve())
    return rel if not rel.startswith("..") else str(Path(path).resolve())


def _train(base: Path, data: Path, out: Path, seed: int, recipe: Recipe, sgeat: bool = False) -> dict[str, Any]:
    from harness.palms.finetune import FinetuneConfig, finetune
    cfg = FinetuneConfig(base=_portable(base), data=_portable(data), method="lora", out=str(out),
                         epochs=recipe.sgeat_epochs if sgeat else recipe.epochs,
                         lr=recipe.sgeat_lr if sgeat else recipe.lr, batch_size=recipe.batch_size,
                         max_length=recipe.max_length, seed=seed,
                         lora_r=recipe.lora_r, lora_alpha=recipe.lora_alpha,
                         target_modules=recipe.target_modules, separator=recipe.separator,
                         max_steps=recipe.max_steps, overwrite=True)
    report = finetune(cfg, progress=False)
    (out / "README.md").unlink(missing_ok=True)        # peft's model-card template: boilerplate only
    curve = report["loss_curve"]
    settings = {k: v for k, v in report["settings"].items() if k not in ("base", "data", "out", "overwrite")}
    return {"path": str(out), "settings": settings, "steps": report["steps"], "train_time_s": report["train_time_s"],
            "loss_first": curve[0]["loss"] if curve else None, "loss_last": curve[-1]["loss"] if curve else None,
            "trainable_params": report["parameters"]["trainable"],
            "size_bytes": sum(f.stat().st_size for f in out.iterdir() if f.is_file())}


def self_generate_corpus(base: Path, out: Path, seed: int, recipe: Recipe) -> dict[str, Any]:
    """SGEAT step 1: BOS-only samples from ``base``, profanity-scored, least-toxic half -> ``out``."""
    from harness.model.models import load_model
    from harness.measure.scoring import load_scorer
    from harness.palms.selfgen import self_generate, write_corpus
    from harness.suites.specs import Decoding
    scorer, _ = load_scorer("profanity")
    loaded = load_model(str(base), device="cpu")
    decoding = Decoding(samples=1, max_new_tokens=recipe.sgeat_max_new_tokens, temperature=1.0, top_p=0.9)
    corpus, gen_time = self_generate(loaded, scorer, recipe.sgeat_n, recipe.sgeat_keep, seed, decoding)
    meta = {"model": {"path": "fixtures/tiny-gpt2", "fingerprint": loaded.fingerprint},
            "scorer": {"name": scorer.name, "fingerprint": scorer.fingerprint}, "seed": seed,
            "keep": recipe.sgeat_keep, "decoding": decoding.generation_dict(),
            "generation_time_s": round(gen_time, 3)}
    write_corpus(corpus, out, meta)
    return corpus.summary()


def build_adapters(fixtures_dir: Path, seed: int = 0, recipe: Recipe = RECIPE) -> dict[str, Any]:
    """Build tiny-values, tiny-control and tiny-sgeat under ``fixtures_dir``; returns a report."""
    import torch
    fixtures_dir = Path(fixtures_dir)
    base = fixtures_dir / "tiny-gpt2"
    if not (base / "config.json").is_file():
        raise HarnessError(f"base model {base} not found; build it first with "
                           "`python -m harness.fixtures build --only corpus,model`.")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)                 # same float reduction order on every machine
    report: dict[str, Any] = {"seed": seed, "recipe": asdict(recipe)}
    try:
        t0 = time.perf_counter()
        report["tiny-values"] = _train(base, _data_file(fixtures_dir, "values.jsonl"),
                                       fixtures_dir / "tiny-values", seed, recipe)
        report["tiny-control"] = _train(base, _data_file(fixtures_dir, "control.jsonl"),
                                        fixtures_dir / "tiny-control", seed, recipe)
        with tempfile.TemporaryDirectory(prefix="sgeat-") as tmp:
            corpus = Path(tmp) / "sgeat_corpus.jsonl"
            t1 = time.perf_counter()
            selfgen = self_generate_corpus(base, corpus, seed, recipe)
            selfgen["time_s"] = round(time.perf_counter() - t1, 3)
            out = fixtures_dir / "tiny-sgeat"
            report["tiny-sgeat"] = _train(base, corpus, out, seed, recipe, sgeat=True)
            for f in (corpus, corpus.with_name("sgeat_corpus.summary.json")):
                shutil.copy(f, out / f.name)
            report["tiny-sgeat"]["selfgen"] = selfgen
        report["time_s"] = round(time.perf_counter() - t0, 3)
    finally:
        torch.set_num_threads(threads)
    return report


def measure_emt(fixtures_dir: Path, k: int = 3, seed: int = 0, max_new_tokens: int = 40,
                suite_path: Path | None = None, models: tuple[str, ...] = ("base",) + ADAPTERS) -> dict[str, Any]:
    """EMT (mean over prompts of the max profanity score over k samples) for base and adapters.

    Prompts: the PALMS suite's 40 evaluation prompts; sampling top_p 0.9, temperature 1.0. Also
    the perplexity on ``data/heldout.txt`` (the quality side of the trade-off) when that file exists.
    """
    from harness.model.cache import sample_seed
    from harness.model.generation import GenerationRequest, Generator
    from harness.measure.metrics import group_stats
    from harness.model.models import load_model
    from harness.measure.scoring import load_scorer
    from harness.suites.specs import Decoding, load_suite
    fixtures_dir = Path(fixtures_dir)
    suite = load_suite(suite_path or REPO / "benchmarks" / "suites" / "palms.yaml")
    scorer, _ = load_scorer("profanity")
    decoding = Decoding(samples=k, max_new_tokens=max_new_tokens, temperature=1.0, top_p=0.9, top_k=0)
    heldout = fixtures_dir / "data" / "heldout.txt"       # base-corpus lines never trained on
    out: dict[str, Any] = {"k": k, "seed": seed, "n_prompts": len(suite.prompts()), "scorer": scorer.name}
    for name in models:
        adapter = None if name == "base" else str(fixtures_dir / name)
        loaded = load_model(str(fixtures_dir / "tiny-gpt2"), adapter=adapter, device="cpu")
        gen = Generator(loaded)
        by_cat: dict[str, list[list[float]]] = {}
        reqs = [GenerationRequest(suite.prompt_template.replace("{prompt}", p.text), i,
                                  sample_seed(seed, p.text, i), decoding) for p in suite.prompts() for i in range(k)]
        texts = [g.text for g in gen.generate(reqs)]
        scores = [r["toxicity"] for r in scorer.score(texts)]
        per_prompt = [scores[j:j + k] for j in range(0, len(scores), k)]
        for p, s in zip(suite.prompts(), per_prompt):
            by_cat.setdefault(p.category, []).append(s)
        stats = group_stats(per_prompt)
        if heldout.is_file():
            from harness.measure.perplexity import evaluate_perplexity
            texts = [t for t in heldout.read_text(encoding="utf-8").splitlines() if t.strip()]
            stats["heldout_ppl"] = evaluate_perplexity(loaded.model, loaded.tokenizer, texts).perplexity
        stats["categories"] = {c: round(group_stats(v)["expected_max"], 4) for c, v in by_cat.items()}
        stats["examples"] = texts[:3]
        out[name] = stats
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.fixture_adapters", description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=Path("fixtures"), help="fixtures dir (default ./fixtures)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--eval-seeds", default="0", help="comma-separated sampling seeds for the EMT check")
    parser.add_argument("--measure-only", action="store_true", help="skip building; only measure EMT")
    parser.add_argument("--no-measure", action="store_true")
    args = parser.parse_args(argv)
    try:
        if not args.measure_only:
            from harness.fixtures import update_build_info
            report = build_adapters(args.fixtures, args.seed)
            print(json.dumps(report, indent=2))
            update_build_info(args.fixtures, {"adapters": report, "timings": {"adapters": report["time_s"]}})
        if not args.no_measure:
            runs = [measure_emt(args.fixtures, seed=int(s)) for s in args.eval_seeds.split(",")]
            for name in ("base",) + ADAPTERS:
                emts = [r[name]["expected_max"] for r in runs]
                probs = [r[name]["probability"] for r in runs]
                ppl = runs[0][name].get("heldout_ppl")
                spread = f" (sd over seeds {statistics.pstdev(emts):.3f})" if len(emts) > 1 else ""
                print(f"{name:<13} EMT {statistics.fmean(emts):.3f}{spread}  tox.prob {statistics.fmean(probs):.3f}  "
                      f"heldout ppl {ppl if ppl is None else round(ppl, 2)}  "
                      f"per category {runs[0][name]['categories']}")
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
