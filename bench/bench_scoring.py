"""Toxicity-scoring speed benchmark (issue 15) on a real-size Detoxify-format checkpoint.

Builds, at bench time and outside the repository, a BertForSequenceClassification with bert-base
dimensions (random weights, 6 Detoxify classes) plus a WordPiece tokenizer trained on the bundled
corpus and the RTP prompts, then times on the same texts, side by side in one process:

  harness    harness.measure.scoring.DetoxifyScorer.score (fp32; auto and 64-row batches; bf16; int8)
  floor      hand-written: tokenize, sort by token count, batches of 64, forward, sigmoid
  arrival    hand-written: batches of 64 in arrival order (what the harness did before issue 15)
  detoxify   the detoxify library's Detoxify(checkpoint=...).predict: chunks of 64, and one call

plus the agreement of bf16/int8 with fp32 (bundled trained fixtures/detoxify-tiny on the bundled
corpus; the real-size random model on the bench texts) and the whole-process time of an RTP-subset
run (HarnessSession + a values suite of RTP prompts, in a child process) with that scorer.

    python bench/bench_scoring.py [--texts 2000] [--repeats 3] [--write-results]

Prints the Markdown report; only ``--write-results`` puts it into bench/RESULTS.md (between its
markers, replacing an older scoring section and nothing else).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_PROCESS_TOP = time.time()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "fixtures" / "corpus" / "train.txt"
TINY = ROOT / "fixtures" / "detoxify-tiny" / "checkpoint.ckpt"
RTP_DIRS = (ROOT / "harness" / "data" / "rtp", ROOT.parent / "shared" / "datasets" / "rtp",
            Path("/work/shared/datasets/rtp"))
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
BEGIN, END = "<!-- bench_scoring:begin -->", "<!-- bench_scoring:end -->"
TARGETS = {"harness fp32 / floor": 1.0, "harness fp32 / detoxify predict (best)": 1.5, "int8 / fp32": 4.0}


# ============================================================================== data and checkpoint
def rtp_texts() -> tuple[list[str], str]:
    for d in RTP_DIRS:
        files = sorted(d.glob("*.jsonl")) if d.is_dir() else []
        if files:
            return [json.loads(x)["text"] for f in files for x in f.read_text(encoding="utf-8").splitlines()
                    if x.strip()], (str(d.relative_to(ROOT)) if d.is_relative_to(ROOT) else str(d))
    return [], ""


def bench_texts(n: int, seed: int) -> tuple[list[str], str]:
    texts, source = rtp_texts()
    if not texts:
        texts, source = CORPUS.read_text(encoding="utf-8").splitlines(), str(CORPUS.relative_to(ROOT))
    texts = list(dict.fromkeys(t for t in texts if t.strip()))
    random.Random(seed).shuffle(texts)
    return texts[:n], source


def build_checkpoint(root: Path) -> tuple[Path, dict]:
    """A real-size Detoxify-format checkpoint with random weights (reused when already built)."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    ckpt, info_file = root / "detoxify-bert-base-random.ckpt", root / "build.json"
    if ckpt.is_file() and info_file.is_file():
        return ckpt, json.loads(info_file.read_text())
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(CORPUS.read_text(encoding="utf-8").splitlines() + rtp_texts()[0], vocab_size=30522)
    wp.save_model(str(root))
    BertTokenizer(str(root / "vocab.txt"), do_lower_case=True).save_pretrained(root)
    config = BertConfig(num_labels=len(CLASSES), problem_type="multi_label_classification")  # bert-base dims
    config.save_pretrained(root)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    args = {"model_type": str(root), "model_name": "BertForSequenceClassification",
            "tokenizer_name": "BertTokenizer", "num_classes": len(CLASSES)}
    torch.save({"config": {"arch": {"args": args}, "dataset": {"args": {"classes": CLASSES}}},
                "state_dict": model.state_dict()}, ckpt)
    info = {"params": sum(p.numel() for p in model.parameters()), "tokenizer_vocab": wp.get_vocab_size(),
            "build_s": round(time.perf_counter() - t, 1), "layers": config.num_hidden_layers,
            "hidden": config.hidden_size, "size_mb": round(ckpt.stat().st_size / 2**20)}
    info_file.write_text(json.dumps(info))
    return ckpt, info


# ============================================================================== scoring paths
def floor_score(model, tok, texts, bs=64, sort=True):
    """The hand-written reference: one tokenizer pass for lengths, (sorted) batches of ``bs``."""
    import torch

    order = list(range(len(texts)))
    if sort:
        lengths = [len(x) for x in tok(texts, truncation=True, max_length=512)["input_ids"]]
        order.sort(key=lengths.__getitem__)
    out = [None] * len(texts)
    with torch.inference_mode():
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            enc = tok([texts[i] for i in idx], return_tensors="pt", truncation=True, max_length=512, padding=True)
            for i, row in zip(idx, torch.sigmoid(model(**enc).logits).tolist()):
                out[i] = row
    return out


def detoxify_score(model, texts, bs=None):
    """The detoxify library's predict, in chunks of ``bs`` (or one call), rows in class order."""
    chunks = [texts[s:s + bs] for s in range(0, len(texts), bs)] if bs else [texts]
    rows = []
    for chunk in chunks:
        res = model.predict(chunk)
        rows.extend(zip(*[res[c] if isinstance(res[c], list) else [res[c]] for c in model.class_names]))
    return [list(r) for r in rows]


def as_rows(scored, labels):
    return [[r[k] for k in labels] for r in scored] if scored and isinstance(scored[0], dict) else scored


def useful_gflop(lengths, layers, d):
    """Matmul FLOPs of a BERT encoder over the real (unpadded) tokens: 24 d^2 + 4 L d per token and layer."""
    return sum(n * layers * (24 * d * d + 4 * n * d) for n in lengths) / 1e9


def gemm_gflops(repeats=5):
    import torch

    a, b = torch.randn(1024, 768), torch.randn(768, 3072)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * 1024 * 768 * 3072 / best / 1e9


def agreement(ref_rows, rows, labels):
    from harness.measure.scoring import precision_agreement

    return precision_agreement([dict(zip(labels, r)) for r in ref_rows], [dict(zip(labels, r)) for r in rows],
                               source="the bench texts")


# ============================================================================== whole-process RTP run
def write_rtp_suite(path: Path, prompts: list[str], samples: int, max_new_tokens: int) -> None:
    import yaml

    suite = {"suite": "rtp-bench", "version": "1", "kind": "values",
             "description": "RealToxicityPrompts subset for bench/bench_scoring.py",
             "decoding": {"samples": samples, "max_new_tokens": max_new_tokens, "temperature": 1.0, "top_p": 0.9},
             "chat_template": "false",
             "categories": [{"id": "rtp", "name": "RealToxicityPrompts", "desired_behavior": "non-toxic",
                             "prompts": [{"id": f"p{i:04d}", "text": t} for i, t in enumerate(prompts)]}]}
    path.write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")


def rtp_child(args) -> None:
    import torch

    torch.set_num_threads(args.threads_resolved)
    from harness.run.session import HarnessSession, RunOptions
    from harness.suites.specs import load_suite

    suite = load_suite(args.suite_file)
    run = HarnessSession(RunOptions(model=str(ROOT / "fixtures" / "tiny-gpt2"), device="cpu", progress=False,
                                    toxicity_scorer="detoxify", detoxify_checkpoint=args.ckpt,
                                    scorer_precision=args.precision, cache_dir=args.cache_dir))
    run.plan(suite, suite.prompts())
    samples = run.samples("candidate", suite.prompts())
    doc = run.document()
    scorer = run.scorer()
    distinct = sorted({s["text"] for s in samples})
    lengths = [len(x) for x in scorer.tokenizer(distinct, truncation=True, max_length=512)["input_ids"]]
    cfg = scorer.model.config
    run.close()
    print(json.dumps({"samples": len(samples), "distinct_texts": len(distinct),
                      "useful_gflop": useful_gflop(lengths, cfg.num_hidden_layers, cfg.hidden_size),
                      "timings": doc["run"]["timings_s"], "scorer": doc["config"]["scorer"],
                      "process_s": time.time() - T_PROCESS_TOP}))


def rtp_run(args, ckpt: Path, precision: str, prompts: list[str], work: Path) -> dict:
    suite_file = work / "rtp-bench.yaml"
    write_rtp_suite(suite_file, prompts, args.samples, args.max_new_tokens)
    cache = Path(tempfile.mkdtemp(prefix=f"cache-{precision}-", dir=work))
    cmd = [sys.executable, __file__, "--child-rtp", "--ckpt", str(ckpt), "--precision", precision,
           "--suite-file", str(suite_file), "--cache-dir", str(cache), "--threads", str(args.threads_resolved)]
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HARNESS_CACHE_DIR": str(cache)})
    wall = time.time() - t
    if proc.returncode != 0:
        raise SystemExit(f"RTP child failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


# ============================================================================== main measurement
def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(args) -> dict:
    import torch
    import transformers

    torch.set_num_threads(args.threads_resolved)
    from detoxify import Detoxify

    from harness.measure.scoring import DetoxifyScorer

    res: dict = {"load": {}, "tput": {}, "rows": {}, "extra": {}}
    texts, res["source"] = bench_texts(args.texts, args.seed)
    res["n_texts"] = len(texts)
    res["build_s"], (ckpt, res["ckpt"]) = timed(lambda: build_checkpoint(Path(args.work) / "checkpoint"))
    res["gemm"] = [gemm_gflops()]  # measured again after each repeat: the best is the least contended
    d = ckpt.parent
    loaders = {
        "harness fp32": lambda: DetoxifyScorer(ckpt),
        "harness bf16": lambda: DetoxifyScorer(ckpt, precision="bf16"),
        "harness int8": lambda: DetoxifyScorer(ckpt, precision="int8"),
        "detoxify": lambda: Detoxify(checkpoint=str(ckpt), huggingface_config_path=str(d)),
    }
    models = {}
    for name, load in loaders.items():
        res["load"][name], models[name] = timed(load)
    fp32 = models["harness fp32"]
    labels = fp32.labels
    lengths = [len(x) for x in fp32.tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    res["lengths"] = lengths
    res["gflop"] = useful_gflop(lengths, res["ckpt"]["layers"], res["ckpt"]["hidden"])
    tok = transformers.BertTokenizer.from_pretrained(d)
    plain = transformers.BertForSequenceClassification(transformers.BertConfig.from_pretrained(d))
    plain.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"], strict=False)
    plain.eval()  # the floor's own copy of the same weights

    def harness(name, bs="auto"):
        def run(xs):
            models[name].batch_size = bs
            return models[name].score(xs)
        return run

    paths = {
        "harness fp32 (auto batches)": harness("harness fp32"),
        "harness fp32 (64-row batches)": harness("harness fp32", 64),
        "floor: length-sorted batches of 64": lambda xs: floor_score(plain, tok, xs),
        "arrival order, batches of 64 (harness before issue 15)": lambda xs: floor_score(plain, tok, xs, sort=False),
        "detoxify predict, chunks of 64": lambda xs: detoxify_score(models["detoxify"], xs, 64),
        "harness bf16": harness("harness bf16"),
        "harness int8": harness("harness int8"),
    }
    names = list(paths)
    for name in names:  # warm-up: first touch of the weights, allocator, thread pools
        paths[name](texts[:16])
    # Paths take turns on blocks of texts (same block for all, order rotated), so a burst of load on
    # the shared cores hits every path alike; a path's time is the sum over the blocks.
    blocks = [texts[i:i + args.block] for i in range(0, len(texts), args.block)]
    turn = 0
    for r in range(args.repeats):
        spent = dict.fromkeys(names, 0.0)
        for b, block in enumerate(blocks):
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                dt, rows = timed(lambda: paths[name](block))
                spent[name] += dt
                if r == 0:
                    res["rows"].setdefault(name, []).extend(as_rows(rows, labels))
            turn += 1
        for name in names:
            res["tput"].setdefault(name, []).append(len(texts) / spent[name])
        res["gemm"].append(gemm_gflops())
        print(f"  repeat {r + 1}: " + ", ".join(f"{k} {len(texts) / v:.1f}" for k, v in spent.items()),
              file=sys.stderr, flush=True)
    if not args.skip_one_call:
        name = "detoxify predict, one call with all texts"
        dt, rows = timed(lambda: detoxify_score(models["detoxify"], texts))
        res["tput"][name], res["rows"][name] = [len(texts) / dt], as_rows(rows, labels)
    res["agree_real"] = {p: agreement(res["rows"]["harness fp32 (auto batches)"], res["rows"][f"harness {p}"],
                                      labels) for p in ("bf16", "int8")}
    res["same_scores"] = {name: max(abs(a - b) for ra, rb in zip(res["rows"]["harness fp32 (auto batches)"], rows)
                                    for a, b in zip(ra, rb)) for name, rows in res["rows"].items()}
    res["agreement_on_load"] = {p: models[f"harness {p}"].precision_agreement for p in ("bf16", "int8")}
    del models, plain
    res["tiny"] = tiny_agreement(args)
    prompts = bench_texts(10**9, args.seed + 1)[0][:args.rtp_prompts]
    res["rtp"] = {p: rtp_run(args, ckpt, p, prompts, Path(args.work)) for p in args.rtp_precisions}
    return res


def tiny_agreement(args) -> dict:
    """bf16/int8 vs fp32 of the bundled trained checkpoint on the bundled corpus (flips at 0.5 are meaningful)."""
    from harness.measure.scoring import DetoxifyScorer

    corpus = [x for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()][:args.corpus_texts]
    out = {"n": len(corpus)}
    ref = None
    for p in ("fp32", "bf16", "int8"):
        scorer = DetoxifyScorer(TINY, precision=p)
        dt, rows = timed(lambda: scorer.score(corpus))
        out[f"{p} texts/s"] = len(corpus) / dt
        if p == "fp32":
            ref = rows
        else:
            from harness.measure.scoring import precision_agreement

            out[p] = precision_agreement(ref, rows, source="bundled corpus, whole documents")
    return out


# ============================================================================== report
def med(xs):
    return statistics.median(xs)


def spread(xs):
    return f"{med(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})" if len(xs) > 1 else f"{xs[0]:.1f}"


def fmt_agree(a):
    rho = "n/a" if a.get("spearman") is None else f"{a['spearman']:.4f}"
    return (f"{a['max_abs_diff']:.4f} | {rho} | {a['flips_at_0.5']} ({100 * a['flip_fraction']:.2f}%) | "
            f"{100 * a['reference_positive_fraction']:.1f}%")


def report(args, res, load_before, total_s) -> str:
    import torch
    import transformers

    t, n = res["tput"], res["n_texts"]
    fp32 = t["harness fp32 (auto batches)"]
    lengths = sorted(res["lengths"])
    ck = res["ckpt"]
    lines = ["## Scoring benchmark (bench/bench_scoring.py)", "",
             f"Command: `python bench/bench_scoring.py --texts {args.texts} --repeats {args.repeats} --threads "
             f"{args.threads} --rtp-prompts {args.rtp_prompts} --samples {args.samples} --max-new-tokens "
             f"{args.max_new_tokens} --block {args.block}`; whole benchmark {total_s:.0f} s.", "",
             f"- machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, torch intra-op "
             f"threads {args.threads_resolved}; torch {torch.__version__}, transformers {transformers.__version__}; "
             f"load average before {load_before}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())} (cores "
             "shared with other work: medians over repeats, (min-max))",
             f"- checkpoint: BertForSequenceClassification, bert-base dimensions ({ck['layers']} layers, hidden "
             f"{ck['hidden']}, {ck['params'] / 1e6:.1f} M parameters, {ck['size_mb']} MB), random weights, 6 "
             f"Detoxify classes, built in {res['build_s']:.0f} s under `--work` (never in the repository); tokenizer: "
             f"WordPiece ({ck['tokenizer_vocab']} tokens) trained on the bundled corpus + RTP prompts (not "
             "bert-base-uncased's vocabulary, which is not available offline: token counts differ somewhat)",
             f"- texts: {n} distinct RTP prompts from `{res['source']}` (seeded shuffle, seed {args.seed}); tokens "
             f"per text median {lengths[len(lengths) // 2]}, p90 {lengths[int(len(lengths) * 0.9)]}, max "
             f"{lengths[-1]}; {args.repeats} repeats; within a repeat the paths take turns on blocks of {args.block} "
             "texts (rotated order; each call sorts only its own block), so load bursts on the shared cores hit all "
             "paths alike; one warm-up call "
             "per path first", "",
             "| path | texts/s, median (min-max) | x harness fp32 | useful GFLOP/s | max abs diff vs harness fp32 |",
             "|---|---|---|---|---|"]
    for name, xs in t.items():
        lines.append(f"| {name} | {spread(xs)} | {med(xs) / med(fp32):.2f} | {res['gflop'] * med(xs) / n:.0f} | "
                     f"{res['same_scores'][name]:.2g} |")
    gemm = res["gemm"]
    lines += ["", f"Useful GFLOP/s = matmul FLOPs of the real (unpadded) tokens / time; a plain fp32 GEMM "
              f"(1024x768 @ 768x3072) on the same threads, measured {len(gemm)} times during the run: "
              f"{min(gemm):.0f}-{max(gemm):.0f} GFLOP/s.", ""]
    best_detox = max(med(t[k]) for k in t if k.startswith("detoxify"))
    ratios = {"harness fp32 / floor": med(fp32) / med(t["floor: length-sorted batches of 64"]),
              "harness fp32 / detoxify predict (best)": med(fp32) / best_detox,
              "int8 / fp32": med(t["harness int8"]) / med(fp32)}
    per_repeat = {"harness fp32 / floor": [a / b for a, b in zip(fp32, t["floor: length-sorted batches of 64"])],
                  "harness fp32 / detoxify predict (best)": [a / b for a, b in zip(fp32, t["detoxify predict, "
                                                                                               "chunks of 64"])],
                  "int8 / fp32": [a / b for a, b in zip(t["harness int8"], fp32)]}
    tiny = res["tiny"]
    int8_ok = tiny["int8"]["spearman"] is not None and tiny["int8"]["spearman"] >= 0.99 and \
        tiny["int8"]["flip_fraction"] <= 0.01
    lines += ["| ratio | value (ratio of medians) | per repeat (vs detoxify: chunks of 64) | target |",
              "|---|---|---|---|"]
    for k, v in ratios.items():
        lines.append(f"| {k} | **{v:.2f}** | {', '.join(f'{x:.2f}' for x in per_repeat[k])} | "
                     f"{'MET' if v >= TARGETS[k] else 'NOT MET'} (>= {TARGETS[k]}) |")
    lines.append(f"| int8 agreement on the bundled corpus (Spearman >= 0.99, <= 1% flips) | rho "
                 f"{tiny['int8']['spearman']:.4f}, {100 * tiny['int8']['flip_fraction']:.2f}% flips | | "
                 f"{'MET' if int8_ok else 'NOT MET'} |")
    lines += ["", "### Agreement of bf16 / int8 with fp32", "",
              "| model, texts | precision | max abs diff (any label) | Spearman (toxicity) | flips at 0.5 | "
              "fp32 >= 0.5 |", "|---|---|---|---|---|---|"]
    for p in ("bf16", "int8"):
        lines.append(f"| bundled trained `fixtures/detoxify-tiny`, {tiny['n']} bundled-corpus texts | {p} | "
                     f"{fmt_agree(tiny[p])} |")
    for p in ("bf16", "int8"):
        lines.append(f"| real-size **random** model, the {n} bench texts (flips meaningless: every score is "
                     f"near 0.5) | {p} | {fmt_agree(res['agree_real'][p])} |")
    for p in ("bf16", "int8"):
        a = res["agreement_on_load"][p]
        lines.append(f"| real-size random model, what the harness records on load ({a['texts']} corpus documents, "
                     "first 24 words each) "
                     f"| {p} | {fmt_agree(a)} |")
    lines += ["", f"Tiny checkpoint throughput on the corpus: fp32 {tiny['fp32 texts/s']:.0f}, bf16 "
              f"{tiny['bf16 texts/s']:.0f}, int8 {tiny['int8 texts/s']:.0f} texts/s.", "",
              "### Whole-process RTP-subset run with the real-size scorer", "",
              f"`HarnessSession` + a values suite of {args.rtp_prompts} RTP prompts (library API, not pytest) on "
              f"`fixtures/tiny-gpt2`, k={args.samples}, {args.max_new_tokens} new tokens, top_p 0.9, CPU, empty "
              "cache, one fresh child process per precision.", "",
              "| precision | samples (distinct texts) | process s | generation s | scoring s | scoring / generation "
              "| model load s | scorer load s |", "|---|---|---|---|---|---|---|---|"]
    for p, r in res["rtp"].items():
        tm = r["timings"]
        lines.append(f"| {p} | {r['samples']} ({r['distinct_texts']}) | {r['wall_s']:.1f} | "
                     f"{tm.get('generation', 0):.1f} | {tm.get('scoring', 0):.1f} | "
                     f"**{tm.get('scoring', 0) / max(tm.get('generation', 1e-9), 1e-9):.2f}** | "
                     f"{tm.get('model_load', 0):.1f} | {tm.get('scorer_load', 0):.1f} |")
    fp = res["rtp"].get("fp32")
    if fp and fp.get("useful_gflop"):
        best = max(max(gemm), max(res["gflop"] * med(x) / n for k, x in t.items() if "fp32" in k or "floor" in k))
        floor_s = fp["useful_gflop"] / best
        gen = fp["timings"].get("generation", 0)
        lines += ["", f"Target: scoring <= 2x generation at fp32 on CPU. What bounds it: the encoder's matmuls on "
                  f"the {fp['distinct_texts']} distinct texts are {fp['useful_gflop']:.0f} GFLOP; at the best fp32 "
                  f"rate seen in this run ({best:.0f} GFLOP/s, plain GEMM or any fp32 path above) that alone takes "
                  f"{floor_s:.1f} s = {floor_s / max(gen, 1e-9):.1f}x this run's generation time ({gen:.1f} s), "
                  "before attention, softmax, layer norms and padding. Generation here is a 0.7 M-parameter GPT-2, scoring a "
                  "110 M-parameter BERT: at fp32 on CPU the ratio is set by the two models' sizes, not by "
                  "the harness.", ""]
    return "\n".join(lines)


def write_results(path: Path, section: str) -> None:
    """Replace the scoring section between the markers (or append one); the rest of the file is kept."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):].lstrip("\n")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block
    path.write_text(new, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=600, help="bench texts (distinct RTP prompts)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", type=int, default=200, help="texts per turn: paths alternate block by block")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = one per core); 1 by "
                    "default: on shared cores 2 threads made timings erratic")
    ap.add_argument("--corpus-texts", type=int, default=9000, help="bundled-corpus texts for the tiny agreement")
    ap.add_argument("--rtp-prompts", type=int, default=40, help="RTP prompts in the whole-process run")
    ap.add_argument("--samples", type=int, default=25)
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--rtp-precisions", nargs="*", default=["fp32", "int8"])
    ap.add_argument("--skip-one-call", action="store_true", help="skip detoxify predict with all texts in one call")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bench-scoring"),
                    help="where the checkpoint is built (reused) and the runs' caches go")
    ap.add_argument("--write-results", nargs="?", const=str(ROOT / "bench" / "RESULTS.md"), metavar="PATH",
                    help="put the report into PATH (default bench/RESULTS.md) between its scoring markers")
    ap.add_argument("--report-from", metavar="JSON", help="render the report of an earlier run's measurements "
                    "(WORK/measurements.json) instead of measuring")
    ap.add_argument("--child-rtp", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--ckpt", "--precision", "--suite-file", "--cache-dir"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.threads_resolved = args.threads or os.cpu_count() or 1
    if args.child_rtp:
        rtp_child(args)
        return 0
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        args.__dict__.update({k: v for k, v in saved["args"].items() if k not in ("write_results", "report_from")})
        res, load_before, total = saved["res"], saved["load_before"], saved["total_s"]
    else:
        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        res = measure(args)
        total = time.time() - T_PROCESS_TOP
        Path(args.work, "measurements.json").write_text(json.dumps(
            {"args": vars(args), "res": res, "load_before": load_before, "total_s": total}, default=str))
    text = report(args, res, load_before, total)
    print(text)
    if args.write_results:
        write_results(Path(args.write_results), text)
        print(f"written to {args.write_results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
