"""Generation + scoring speed benchmark (issue 8 part 3).

Times one workload (PALMS, 40 prompts x k samples, profanity scorer) in fresh child processes:

  naive   HF ``model.generate`` one prompt at a time (num_return_sequences=k), scorer called per text
  floor   hand-written batched, left-padded HF ``generate`` over all prompts x k + one batched score call
  engine  harness.model.generation.Generator over the same requests, in the floor's process (isolates the engine)
  cold    HarnessSession on an empty cache dir: ``samples("candidate", suite.prompts())``
  warm    a second HarnessSession on the same (now full) cache dir; must not load the model

plus start-up costs (interpreter, ``import harness.plugin``, torch + transformers, model and scorer
load), peak RSS per phase and per process, and laziness checks (importing the plugin must not import
torch; the warm run must not load the model). Prints the Markdown report; writes it to a file only
when asked (``--write-results`` alone: the tracked bench/RESULTS.md).

    python bench/bench_generation.py [--model DIR] [--samples 25] [--repeats 3] [--write-results [PATH]]

Module-level imports are stdlib only so that child processes can time their own imports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_PROCESS_TOP = time.time()          # wall clock when this interpreter reached user code
ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "suites" / "palms.yaml"
FIXTURE = ROOT / "fixtures" / "tiny-gpt2"
RESULTS = ROOT / "bench" / "RESULTS.md"
STANDIN = Path(tempfile.gettempdir()) / "bench-standin-tiny-gpt2"
TARGETS = {"cold/floor": ("<=", 1.15), "naive/cold": (">=", 4.0), "warm/cold": ("<=", 0.10)}
HEAVY = ("torch", "transformers", "numpy", "sklearn", "profanity_check", "pandas", "scipy", "matplotlib",
         "tokenizers", "safetensors", "yaml", "sqlite3")


# ======================================================================================== children
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _prompts(args):
    from harness.suites.specs import load_suite

    suite = load_suite(SUITE)
    return suite, [suite.render(p) for p in suite.prompts()]


def _digest(texts) -> str:
    import hashlib

    return hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]


def _hf_load(model_dir: str):
    t0 = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _hf_load.import_s = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return torch, tok, model


def _sampling(args, tok) -> dict:
    return dict(do_sample=True, top_p=args.top_p, temperature=args.temperature, top_k=0,
                max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)


class PeakRSS:
    """Samples this process's resident set (/proc/self/statm) every 20 ms: the peak of each phase."""

    def __init__(self) -> None:
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * self.page / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def reset(self) -> float:
        """The peak since the last reset (MB), then start a new phase."""
        peak, self.peak = max(self.peak, self.now()), self.now()
        return peak


def _run_floor(args, torch, tok, model, scorer, prompts, bs) -> dict:
    """Length-sorted fixed-size left-padded batches over all prompts x k, one batched score call."""
    torch.manual_seed(args.seed)
    t3 = time.perf_counter()
    rows = sorted((p for p in prompts for _ in range(args.samples)), key=lambda p: len(tok(p)["input_ids"]))
    bs = bs if bs > 0 else len(rows)
    texts = []
    with torch.inference_mode():
        for start in range(0, len(rows), bs):
            enc = tok(rows[start:start + bs], return_tensors="pt", padding=True)
            out = model.generate(**enc, **_sampling(args, tok))
            texts += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    t4 = time.perf_counter()
    scores = [s["toxicity"] for s in scorer.score(texts)]
    t5 = time.perf_counter()
    return {"work_s": t5 - t3, "gen_s": t4 - t3, "score_s": t5 - t4, "batch_size": bs, "n": len(texts),
            "mean_tox": sum(scores) / len(scores), "digest": _digest(texts)}


def _run_naive(args, torch, tok, model, scorer, prompts, bs) -> dict:
    """One generate call per prompt (k sequences each), the scorer called once per text."""
    torch.manual_seed(args.seed)
    texts, scores, score_s = [], [], 0.0
    t3 = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            enc = tok(p, return_tensors="pt")
            out = model.generate(**enc, num_return_sequences=args.samples, **_sampling(args, tok))
            for text in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True):
                texts.append(text)
                ts = time.perf_counter()
                scores.append(scorer.score([text])[0]["toxicity"])
                score_s += time.perf_counter() - ts
    t4 = time.perf_counter()
    return {"work_s": t4 - t3, "gen_s": t4 - t3 - score_s, "score_s": score_s, "n": len(texts),
            "mean_tox": sum(scores) / len(scores), "digest": _digest(texts)}


def _run_hgen(args, torch, tok, model, scorer, prompts, bs) -> dict:
    """The harness's own engine in this process: harness.model.generation.Generator (per-sample seeds) over all
    prompts x k, then one batched score call; no session, cache or records. Paired with the floor in the same
    process, it isolates the engine's cost from process start-up and machine-load noise."""
    from dataclasses import replace

    from harness.model.keys import sample_seed
    from harness.model.generation import GenerationRequest, Generator
    from harness.model.models import LoadedModel, context_length_of
    from harness.suites.specs import load_suite

    decoding = replace(load_suite(SUITE).decoding, samples=args.samples, max_new_tokens=args.max_new_tokens,
                       top_p=args.top_p, temperature=args.temperature, top_k=0)
    loaded = LoadedModel(model=model, tokenizer=tok, path=args.model, adapter=None, fingerprint="bench",
                         device=torch.device("cpu"), dtype=torch.float32,
                         context_length=context_length_of(model.config, tok))
    t3 = time.perf_counter()
    requests = [GenerationRequest(p, i, sample_seed(args.seed, p, i), decoding)
                for p in prompts for i in range(args.samples)]
    gen = Generator(loaded, bs if bs > 0 else "auto", "false")
    texts = [g.text for g in gen.generate(requests)]
    t4 = time.perf_counter()
    scores = [s["toxicity"] for s in scorer.score(texts)]
    t5 = time.perf_counter()
    return {"work_s": t5 - t3, "gen_s": t4 - t3, "score_s": t5 - t4, "batch_size": gen.batch_size,
            "n": len(texts), "mean_tox": sum(scores) / len(scores), "digest": _digest(texts)}


def child_baselines(args) -> dict:
    """Load the model and scorer once, then run the hand-written paths in --paths order (e.g. floor:32,naive)."""
    rss = PeakRSS()
    t0 = time.perf_counter()
    torch, tok, model = _hf_load(args.model)
    t1 = time.perf_counter()
    from harness.measure.scoring import ProfanityScorer

    scorer = ProfanityScorer()
    t2 = time.perf_counter()
    suite, prompts = _prompts(args)
    out = {"load_s": t1 - t0 - _hf_load.import_s, "import_s": _hf_load.import_s, "scorer_load_s": t2 - t1,
           "load_rss_mb": rss.reset()}
    for spec in args.paths.split(","):
        name, _, bs = spec.partition(":")
        run = {"floor": _run_floor, "naive": _run_naive, "hgen": _run_hgen}[name]
        res = run(args, torch, tok, model, scorer, prompts, int(bs or 0))
        res["peak_rss_mb"] = rss.reset()
        out[spec] = res
    return out


def child_harness(args) -> dict:
    """HarnessSession.samples over the whole suite; cold or warm depending on the cache dir's content.

    With --preimport (cold runs), torch and transformers are imported before the timed call, as in the
    baselines child, so that the work figure excludes imports there and here alike.
    """
    rss = PeakRSS()
    t0 = time.perf_counter()
    if args.preimport:
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    tp = time.perf_counter()
    from harness.run.session import HarnessSession, RunOptions
    from harness.suites.specs import load_suite

    if args.chat_from_files:
        HarnessSession._orig_uses_chat = HarnessSession.uses_chat
        HarnessSession.uses_chat = _uses_chat_from_files
    t1 = time.perf_counter()
    suite = load_suite(SUITE)
    bs = args.batch_size if args.batch_size > 0 else "auto"
    session = HarnessSession(RunOptions(model=args.model, toxicity_scorer="profanity", samples=args.samples,
                                        max_new_tokens=args.max_new_tokens, seed=args.seed, batch_size=bs,
                                        cache_dir=args.cache_dir, progress=False))
    session.plan(suite, suite.prompts())
    prof = None
    if args.profile_to:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t2 = time.perf_counter()
    samples = session.samples("candidate", suite.prompts())
    t3 = time.perf_counter()
    if prof is not None:
        prof.disable()
        prof.dump_stats(args.profile_to)
    ph = {k: round(v, 4) for k, v in session.timings.phases.items()}
    role = session.roles["candidate"]
    handle = session._scorer
    load = ph.get("model_load", 0.0) + ph.get("scorer_load", 0.0) + ph.get("fingerprint", 0.0)
    texts = [s["text"] for s in samples]
    session.close()
    gen_batch = role.generator.batch_size if role.generator is not None else None
    return {"preimport_s": tp - t0, "import_s": t1 - tp, "setup_s": t2 - t1, "call_s": t3 - t2,
            "work_s": t3 - t2 - load, "phases": ph, "peak_rss_mb": rss.reset(),
            "model_loaded": role.loaded is not None, "scorer_loaded": bool(handle and handle._scorer is not None),
            "generated": role.generated, "cached": role.cached, "batch_size": gen_batch,
            "n": len(samples), "mean_tox": sum(s["scores"]["toxicity"] for s in samples) / len(samples),
            "digest": _digest(texts), "modules": {m: m in sys.modules for m in HEAVY}}


def _uses_chat_from_files(self, role, suite) -> bool:
    """The proposed fix for HarnessSession.uses_chat, simulated (bench only, --chat-from-files): decide whether
    the model has a chat template from its files (tokenizer_config.json 'chat_template', chat_template.jinja /
    .json), without importing transformers, when the model is a local directory. Those files are in the
    model fingerprint, so the cache key stays correct."""
    setting = self._chat_option() if self._chat_option() != "auto" else suite.chat_template
    d = Path(self.roles[role].path).expanduser()
    if not d.is_dir():
        return type(self).__dict__["_orig_uses_chat"](self, role, suite)
    try:
        has = bool(json.loads((d / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError):
        has = False
    has = has or (d / "chat_template.jinja").is_file() or (d / "chat_template.json").is_file()
    return has if setting == "auto" else setting == "true"


def child_imports(args) -> dict:
    """Import harness.plugin (what pytest does at start-up) and record which heavy modules came with it."""
    t0 = time.perf_counter()
    import harness.plugin  # noqa: F401

    t1 = time.perf_counter()
    return {"import_s": t1 - t0, "modules": {m: m in sys.modules for m in HEAVY}}


def child_torch(args) -> dict:
    t0 = time.perf_counter()
    import torch  # noqa: F401

    t1 = time.perf_counter()
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401  (resolves the lazy modules)

    t2 = time.perf_counter()
    return {"torch_s": t1 - t0, "transformers_s": t2 - t1, "import_s": t2 - t0}


def child_noop(args) -> dict:
    return {}


CHILDREN = {"baselines": child_baselines, "harness": child_harness, "imports": child_imports,
            "torch": child_torch, "noop": child_noop}


def run_child_main(args) -> None:
    out = CHILDREN[args.child](args)
    out["t_top"] = T_PROCESS_TOP
    out["maxrss_mb"] = _maxrss_mb()
    out["threads"] = _torch_threads() if "torch" in sys.modules else None
    print("BENCH-RESULT " + json.dumps(out), flush=True)


def _torch_threads():
    import torch

    return torch.get_num_threads()


# ======================================================================================== parent
def spawn(args, mode: str, cache_dir: str | None = None, batch_size: int = 0, profile: str | None = None,
          paths: str | None = None, preimport: bool = False, chat_from_files: bool = False) -> dict:
    """Run one child process; returns its JSON plus whole-process wall time and interpreter start-up."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--model", args.model,
           "--samples", str(args.samples), "--max-new-tokens", str(args.max_new_tokens), "--seed", str(args.seed),
           "--batch-size", str(batch_size), "--top-p", str(args.top_p), "--temperature", str(args.temperature)]
    if cache_dir:
        cmd += ["--cache-dir", cache_dir]
    if profile:
        cmd += ["--profile-to", profile]
    if paths:
        cmd += ["--paths", paths]
    if preimport:
        cmd += ["--preimport"]
    if chat_from_files:
        cmd += ["--chat-from-files"]
    env = dict(os.environ)
    # Fingerprint memo and every other cache go to the run's own directory: nothing leaks between runs.
    env["HARNESS_CACHE_DIR"] = cache_dir or args.scratch
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads > 0:  # same intra-op thread count for every path (torch reads these at start-up)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
    wall = time.time() - t0
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"child {mode} failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    out = json.loads(line[-1][len("BENCH-RESULT "):])
    out["process_s"] = wall
    out["startup_s"] = out.pop("t_top") - t0
    return out


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    vers = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("torch", "transformers", "alt-profanity-check", "scikit-learn"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = "-"
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu": cpu, "ram": ram,
            "python": platform.python_version(), "platform": platform.platform(), **vers,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def build_standin(target: Path) -> Path:
    """An untrained GPT-2 with the bundled fixture's shape (MODEL_SHAPE, fixtures/build/models.py), 2,000-token BPE."""
    if (target / "config.json").is_file():
        return target
    import random

    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    rng = random.Random(0)
    words = ["".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    docs = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(2000)]
    docs += [p for p in SUITE.read_text().splitlines() if "text:" in p] * 5
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(docs, vocab_size=2000, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    eos = "<|endoftext|>"
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=eos, eos_token=eos, unk_token=eos,
                                  pad_token=eos, model_max_length=256)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                     n_layer=2, n_embd=128, n_head=4, n_positions=256)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    GPT2LMHeadModel(cfg).save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    GenerationConfig(bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.eos_token_id).save_pretrained(str(tmp))
    os.replace(tmp, target)
    return target


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def check(name: str, value: float) -> str:
    op, bound = TARGETS[name]
    ok = value <= bound if op == "<=" else value >= bound
    return f"{'MET' if ok else 'NOT MET'} (target {op} {bound})"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: fixtures/tiny-gpt2, else a stand-in)")
    ap.add_argument("--samples", type=int, default=25, help="k samples per prompt (default 25 -> 1,000 samples)")
    ap.add_argument("--max-new-tokens", type=int, default=20, help="new tokens per sample (default 20)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of every measurement; medians are reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=0,
                    help="batch size of the floor and the harness (0: the harness's auto size, 64)")
    ap.add_argument("--big-batch", type=int, default=128,
                    help="a second, larger batch size for the floor and the harness engine, first repeat only "
                         "(0 = all rows in one call; -1 = skip)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads in every child (OMP_NUM_THREADS; default 1: on a shared 2-core "
                         "machine 2 threads thrash; 0 = leave torch's default)")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile one cold and one warm harness run (top functions into the results)")
    ap.add_argument("--write-results", nargs="?", const=str(RESULTS), default=None, metavar="PATH",
                    help="also write the report to PATH (no PATH: bench/RESULTS.md, the tracked figures); "
                         "default: print only")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    ap.add_argument("--profile-to", help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    ap.add_argument("--preimport", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--chat-from-files", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child_main(args)
        return 0
    return run_parent(args)


def run_parent(args) -> int:
    t_start = time.time()
    load_before = loadavg()
    if args.model is None:
        if (FIXTURE / "config.json").is_file():
            args.model = str(FIXTURE)
        else:
            print(f"fixtures/tiny-gpt2 not built yet: using an untrained stand-in of the same shape at {STANDIN}")
            args.model = str(build_standin(STANDIN))
    args.model = str(Path(args.model).resolve())
    work = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    args.scratch = str(work / "scratch")
    harness_bs = args.batch_size  # 0 = auto
    floor_spec = f"floor:{args.batch_size or 32}"
    big_spec = f"floor:{args.big_batch}"
    hgen_spec = "hgen:" + floor_spec[6:]
    big = args.big_batch >= 0 and big_spec != floor_spec
    rows: dict[str, list] = {k: [] for k in ("noop", "imports", "torch", "cold", "warm", "warm_fix", "baselines",
                                             "floor", "hgen", "naive", "floor_big", "hgen_big")}
    profile_text = None
    try:
        for r in range(args.repeats):
            print(f"repeat {r + 1}/{args.repeats} (load {loadavg()})", flush=True)
            rows["noop"].append(spawn(args, "noop"))
            rows["imports"].append(spawn(args, "imports"))
            rows["torch"].append(spawn(args, "torch"))
            cache = str(work / f"cache-{r}")
            rows["cold"].append(spawn(args, "harness", cache_dir=cache, batch_size=harness_bs, preimport=True))
            rows["warm"].append(spawn(args, "harness", cache_dir=cache, batch_size=harness_bs))
            rows["warm_fix"].append(spawn(args, "harness", cache_dir=cache, batch_size=harness_bs,
                                          chat_from_files=True))
            # floor and harness engine alternate which goes first; the bigger batch runs in the first repeat
            pair = [floor_spec, hgen_spec] if r % 2 == 0 else [hgen_spec, floor_spec]
            paths = pair + ([big_spec, "hgen:" + big_spec[6:]] if big and r == 0 else []) + ["naive"]
            b = spawn(args, "baselines", paths=",".join(paths))
            rows["baselines"].append(b)
            rows["floor"].append(b[floor_spec])
            rows["hgen"].append(b[hgen_spec])
            rows["naive"].append(b["naive"])
            if big and r == 0:
                rows["floor_big"].append(b[big_spec])
                rows["hgen_big"].append(b["hgen:" + big_spec[6:]])
            c, wm, wf, f, h, n = (rows[k][-1] for k in ("cold", "warm", "warm_fix", "floor", "hgen", "naive"))
            print(f"  work s: cold {c['work_s']:.2f}  floor {f['work_s']:.2f}  harness engine {h['work_s']:.2f}  "
                  f"naive {n['work_s']:.2f}"
                  + (f"  floor_big {rows['floor_big'][-1]['work_s']:.2f}  engine_big "
                     f"{rows['hgen_big'][-1]['work_s']:.2f}" if big and r == 0 else "")
                  + f" | process s: cold {c['process_s']:.2f}  warm {wm['process_s']:.2f}  "
                  f"warm_fix {wf['process_s']:.2f}", flush=True)
        if args.profile:
            import io
            import pstats

            buf = io.StringIO()
            for kind in ("cold", "warm"):
                pstats_path = str(work / f"{kind}.pstats")
                spawn(args, "harness", cache_dir=str(work / "cache-profile"), batch_size=harness_bs,
                      profile=pstats_path, preimport=kind == "cold")
                buf.write(f"==== {kind}: samples() call; harness, generate and logits-processor functions "
                          "by cumulative time ====\n")
                pstats.Stats(pstats_path, stream=buf).sort_stats("cumulative").print_stats(
                    r"harness/|logits_process|generation/utils|tokenization_utils_base.*decode", 28)
                buf.write(f"==== {kind}: by own time ====\n")
                pstats.Stats(pstats_path, stream=buf).sort_stats("tottime").print_stats(14)
            profile_text = buf.getvalue().replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
            skip = ("Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun ")
            profile_text = "\n".join(x for x in profile_text.splitlines() if x.strip() and not x.startswith(skip)
                                     and "Ordered by" not in x and "List reduced" not in x)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = summarize(args, rows, profile_text, load_before, loadavg(), time.time() - t_start)
    emit(args, report)
    return 0


def emit(args, report: str) -> None:
    """Print the report; write it to ``--write-results`` only when that flag was given."""
    print(report)
    if args.write_results:
        out = Path(args.write_results)
        out.parent.mkdir(parents=True, exist_ok=True)
        begin, end = "<!-- bench_scoring:begin -->", "<!-- bench_scoring:end -->"
        old = out.read_text(encoding="utf-8") if out.is_file() else ""
        keep = old[old.index(begin):old.index(end) + len(end)] + "\n" if begin in old and end in old else ""
        out.write_text(report.rstrip("\n") + "\n\n" + keep if keep else report)   # bench_scoring's section stays
        print(f"written to {args.write_results}")


def summarize(args, rows, profile_text, load_before, load_after, elapsed) -> str:
    m = machine()
    cold, warm, floor, naive, base = (rows[k] for k in ("cold", "warm", "floor", "naive", "baselines"))
    floor_big, hgen, hgen_big = rows["floor_big"], rows["hgen"], rows["hgen_big"]
    W = lambda xs, key="work_s": med([x[key] for x in xs])  # noqa: E731
    P = lambda key: med([x["phases"].get(key, 0.0) for x in cold])  # noqa: E731
    gen_only = med([x["phases"].get("generation", 0) for x in cold])   # phases exclude the one-off loads
    score_only = med([x["phases"].get("scoring", 0) for x in cold])
    def paired(num, den, knum="work_s", kden="work_s"):
        """Per-repeat ratios (the two runs are adjacent in time, so load drifts cancel); median + all values."""
        vals = [x[knum] / y[kden] for x, y in zip(num, den)]
        return med(vals), vals

    warm_fix = rows["warm_fix"]
    ratios = {
        "cold/floor": paired(cold, floor),
        "naive/cold": paired(naive, cold),
        "warm/cold": paired(warm, cold, "process_s", "process_s"),
    }
    extra = {
        "naive/floor": paired(naive, floor),
        "warm/cold, `samples()` calls only (the cold call includes model + scorer load)":
            paired(warm, cold, "call_s", "call_s"),
        "warm/cold, whole processes, warm with the proposed uses_chat fix (simulated)":
            paired(warm_fix, cold, "process_s", "process_s"),
    }
    fb = floor[0]["batch_size"]
    extra[f"harness engine / floor, bs {fb}, same process (Generator only: no session, cache, records)"] = \
        paired(hgen, floor)
    extra["harness cold (session) / harness engine (same repeat, different processes)"] = paired(cold, hgen)
    if floor_big:
        bb = floor_big[0]["batch_size"]
        extra[f"harness engine / floor, bs {bb}, same process (first repeat)"] = paired(hgen_big, floor_big)
        extra[f"floor bs {fb} / floor bs {bb}, same process (first repeat)"] = paired(floor, floor_big)
        extra[f"harness engine bs {fb} / harness engine bs {bb}, same process (first repeat)"] = \
            paired(hgen, hgen_big)
        extra[f"naive / harness engine bs {bb} (first repeat)"] = paired(naive, hgen_big)
    imp = rows["imports"]
    lazy = {mod: any(x["modules"][mod] for x in imp) for mod in HEAVY}
    warm_mods = {mod: any(x["modules"][mod] for x in warm) for mod in HEAVY}
    digests_ok = all(c["digest"] == wm["digest"] for c, wm in zip(cold, warm))
    warm_no_model = all(not x["model_loaded"] for x in warm)
    warm_no_scorer = all(not x["scorer_loaded"] for x in warm)
    warm_all_cached = all(x["generated"] == 0 and x["cached"] == x["n"] for x in warm)
    n = cold[0]["n"]
    standin = args.model == str(STANDIN)
    L: list[str] = []
    a = L.append
    a("# Generation benchmark results (bench/bench_generation.py)\n")
    a(f"Command: `python bench/bench_generation.py --samples {args.samples} --max-new-tokens {args.max_new_tokens} "
      f"--repeats {args.repeats} --threads {args.threads} --big-batch {args.big_batch}"
      f"{' --profile' if args.profile else ''}`; total benchmark wall time {elapsed:.0f} s.\n")
    a("## Machine\n")
    a(f"- date: {m['date']}")
    a(f"- CPU: {m['cpu']}; nproc {m['nproc']} (affinity {m['affinity']}); RAM {m['ram']}; torch intra-op threads "
      f"in every child: {cold[0].get('threads')} (--threads)")
    a(f"- Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, alt-profanity-check "
      f"{m['alt-profanity-check']}, scikit-learn {m['scikit-learn']}; {m['platform']}")
    a(f"- load average (1/5/15 min) before: {load_before}, after: {load_after}; the cores are shared with other "
      "work, so every figure is the median over repeats, (min-max) in brackets\n")
    a("## Workload\n")
    a(f"- model: `{os.path.relpath(args.model, ROOT) if args.model.startswith(str(ROOT)) else args.model}`"
      + (" -- an UNTRAINED stand-in with the fixture's shape (GPT-2, 2 layers, 128 wide, 2,000-token BPE), "
         "built because fixtures/tiny-gpt2 did not exist yet; it never samples EOS early, so every sample "
         "runs to max_new_tokens (worst case). Rerun without --model once the fixture exists." if standin else ""))
    a(f"- PALMS suite (benchmarks/suites/palms.yaml, 40 prompts) x k={args.samples} = {n} samples; "
      f"max_new_tokens={args.max_new_tokens} for every path (the suite says 40; 20 halves the run time on 2 "
      f"cores); top_p {args.top_p}, temperature {args.temperature}, top_k off, seed {args.seed}; scorer "
      "`profanity` (alt-profanity-check); CPU, float32")
    a(f"- harness batch size {cold[0]['batch_size']} (auto on CPU); floor batch size {floor[0]['batch_size']} "
      "(the same)" + (f"; a bigger batch, {floor_big[0]['batch_size']}, for floor and harness engine in the "
                      "first repeat" if floor_big else ""))
    a(f"- {args.repeats} repeats; each harness session run (cold, warm) is a fresh process; floor, harness engine "
      "and naive share one \"baselines\" process per repeat (model and scorer loaded once; floor and engine "
      "alternate which runs first, naive runs last)\n")
    a("## Generation + scoring, loads and imports excluded (seconds)\n")
    a("| path | work s, median (min-max) | of which generation | of which scoring | peak RSS MB |")
    a("|---|---|---|---|---|")
    a(f"| (a) naive: `generate` per prompt (k sequences), score per text | {spread([x['work_s'] for x in naive])} "
      f"| {W(naive, 'gen_s'):.3f} | {W(naive, 'score_s'):.3f} | {W(naive, 'peak_rss_mb'):.0f} |")
    a(f"| (b) floor: batched left-padded `generate`, bs {floor[0]['batch_size']}, one score call | "
      f"{spread([x['work_s'] for x in floor])} | {W(floor, 'gen_s'):.3f} | {W(floor, 'score_s'):.3f} | "
      f"{W(floor, 'peak_rss_mb'):.0f} |")
    a(f"| (c) harness cold (empty cache), bs {cold[0]['batch_size']} | {spread([x['work_s'] for x in cold])} | "
      f"{gen_only:.3f} | {score_only:.3f} | {W(cold, 'peak_rss_mb'):.0f} |")
    a(f"| (d) harness warm (all cached), whole `samples()` call | {spread([x['call_s'] for x in warm])} | 0 | 0 | "
      f"{W(warm, 'peak_rss_mb'):.0f} |")
    a(f"| (d') harness warm with the proposed `uses_chat` fix (simulated) | "
      f"{spread([x['call_s'] for x in warm_fix])} | 0 | 0 | {W(warm_fix, 'peak_rss_mb'):.0f} |")
    a(f"| (b*) harness engine (`Generator`, per-sample seeds) in the baselines process, bs {hgen[0]['batch_size']} "
      f"| {spread([x['work_s'] for x in hgen])} | {W(hgen, 'gen_s'):.3f} | {W(hgen, 'score_s'):.3f} | "
      f"{W(hgen, 'peak_rss_mb'):.0f} |")
    if floor_big:
        a(f"| (b') floor, bs {floor_big[0]['batch_size']} (first repeat) | {W(floor_big):.3f} | "
          f"{W(floor_big, 'gen_s'):.3f} | {W(floor_big, 'score_s'):.3f} | {W(floor_big, 'peak_rss_mb'):.0f} |")
    if hgen_big:
        a(f"| (b'') harness engine in the baselines process, bs {hgen_big[0]['batch_size']} (first repeat) | "
          f"{W(hgen_big):.3f} | {W(hgen_big, 'gen_s'):.3f} | {W(hgen_big, 'score_s'):.3f} | "
          f"{W(hgen_big, 'peak_rss_mb'):.0f} |")
    a("")
    a(f"Harness cold, the whole `samples()` call: {spread([x['call_s'] for x in cold])} s = work + model load "
      f"{P('model_load'):.3f} + scorer load {P('scorer_load'):.3f} + fingerprint {P('fingerprint'):.3f}; inside "
      f"work: cache read {P('cache_read'):.3f} s, the rest (keys, SQLite writes, records) "
      f"{W(cold) - gen_only - score_only:.3f} s.\n")
    a("## Whole process (interpreter start to exit, seconds)\n")
    a("| process | wall s, median (min-max) | peak RSS MB (ru_maxrss) |")
    a("|---|---|---|")
    a(f"| harness cold | {spread([x['process_s'] for x in cold])} | {W(cold, 'maxrss_mb'):.0f} |")
    a(f"| harness warm | {spread([x['process_s'] for x in warm])} | {W(warm, 'maxrss_mb'):.0f} |")
    a(f"| harness warm, proposed `uses_chat` fix simulated | {spread([x['process_s'] for x in warm_fix])} | "
      f"{W(warm_fix, 'maxrss_mb'):.0f} |")
    a(f"| baselines process (floor, engine, naive) | {spread([x['process_s'] for x in base])} | "
      f"{W(base, 'maxrss_mb'):.0f} |")
    a(f"| `import harness.plugin` only | {spread([x['process_s'] for x in imp])} | {W(imp, 'maxrss_mb'):.0f} |")
    a(f"| `import torch, transformers` only | {spread([x['process_s'] for x in rows['torch']])} | "
      f"{W(rows['torch'], 'maxrss_mb'):.0f} |")
    a(f"| `python` doing nothing | {spread([x['process_s'] for x in rows['noop']])} | "
      f"{W(rows['noop'], 'maxrss_mb'):.0f} |")
    a("")
    a("## Ratios\n")
    a("| ratio | median of per-repeat ratios | per repeat | target |")
    a("|---|---|---|---|")
    for k, (v, vals) in ratios.items():
        a(f"| {k} | **{v:.3f}** | {', '.join(f'{x:.3f}' for x in vals)} | {check(k, v)} |")
    for k, (v, vals) in extra.items():
        a(f"| {k} | {v:.3f} | {', '.join(f'{x:.3f}' for x in vals)} | (information) |")
    a("")
    a("cold/floor and naive/cold divide work figures (generation + scoring; model/scorer load and imports "
      "excluded on both sides); warm/cold divides whole-process wall times (what a user waits for). Each ratio "
      "is taken within one repeat (runs adjacent in time) and the median over repeats is reported.\n")
    a("## Start-up costs\n")
    a(f"- interpreter (`python -c pass`): {spread([x['process_s'] for x in rows['noop']])} s")
    a(f"- `import harness.plugin` (what pytest loads through the entry point): "
      f"{spread([x['import_s'] for x in imp])} s in process")
    a(f"- `import torch`: {spread([x['torch_s'] for x in rows['torch']])} s; then `import transformers` + "
      f"`AutoModelForCausalLM, AutoTokenizer`: {spread([x['transformers_s'] for x in rows['torch']])} s")
    a(f"- model load (harness `load_model`, torch/transformers already imported): "
      f"{spread([x['phases'].get('model_load', 0) for x in cold])} s; plain HF `from_pretrained` "
      f"(tokenizer + model): {spread([x['load_s'] for x in base])} s")
    a(f"- scorer load (alt-profanity-check: sklearn + joblib model): "
      f"{spread([x['phases'].get('scorer_load', 0) for x in cold])} s (harness), "
      f"{spread([x['scorer_load_s'] for x in base])} s (baselines process)")
    a(f"- model fingerprint (empty memo): {spread([x['phases'].get('fingerprint', 0) for x in cold])} s; "
      f"harness.run.session + specs import: {spread([x['import_s'] for x in cold])} s")
    a("")
    a("## Laziness and warm-run checks\n")
    heavy = [k for k in ("torch", "transformers", "numpy", "sklearn", "profanity_check", "pandas", "scipy",
                         "matplotlib", "tokenizers") if lazy[k]]
    a(f"- `import harness.plugin` imports torch: **{'YES -- not lazy' if lazy['torch'] else 'no'}**; heavy "
      f"modules it pulls in: {', '.join(heavy) or 'none'}")
    a(f"- warm run loaded the model: **{'YES' if not warm_no_model else 'no'}** "
      f"(`session.roles['candidate'].loaded is None` in every warm run: {warm_no_model}); loaded the scorer: "
      f"{'YES' if not warm_no_scorer else 'no'}; all {n} samples from the cache, none generated: {warm_all_cached}")
    warm_heavy = [k for k in ("torch", "transformers", "tokenizers", "numpy", "sklearn", "profanity_check")
                  if warm_mods[k]]
    a(f"- heavy modules imported by the warm process: **{', '.join(warm_heavy) or 'none'}**")
    fix_heavy = [k for k in ("torch", "transformers", "tokenizers", "numpy", "sklearn", "profanity_check")
                 if any(x["modules"][k] for x in rows["warm_fix"])]
    a(f"  - the same with `uses_chat` answered from the model's files (bench-only monkeypatch simulating the "
      f"proposed fix): {', '.join(fix_heavy) or 'none'}; texts identical: "
      f"{all(c['digest'] == x['digest'] for c, x in zip(cold, rows['warm_fix']))}")
    a(f"- warm texts identical to cold texts: {digests_ok}; same seed gives the same texts across repeats: "
      f"harness {len({x['digest'] for x in cold}) == 1}, floor {len({x['digest'] for x in floor}) == 1}, "
      f"naive {len({x['digest'] for x in naive}) == 1}")
    a(f"- mean toxicity (sanity, the paths sample differently): naive {W(naive, 'mean_tox'):.4f}, floor "
      f"{W(floor, 'mean_tox'):.4f}, harness {W(cold, 'mean_tox'):.4f}\n")
    a("## Where the gaps are (derived from the figures above)\n")
    warm_call = W(warm, "call_s")
    a(f"- warm/cold: the warm `samples()` call takes {warm_call:.3f} s: the session answers `uses_chat` from the "
      "model directory's files and reads generations and scores from SQLite, so it imports no torch and loads "
      "neither model nor scorer (the 'simulated fix' row is kept for comparison with earlier runs; it is now "
      "the real code path).")
    a(f"- naive/cold: the naive loop already batches k={args.samples} rows per `generate` call "
      f"(num_return_sequences): its generation takes {W(naive, 'gen_s'):.2f} s against the floor's "
      f"{W(floor, 'gen_s'):.2f} s and the harness engine's {W(hgen, 'gen_s'):.2f} s; scoring one text per call "
      f"costs it {W(naive, 'score_s'):.2f} s ({100 * W(naive, 'score_s') / W(naive):.0f}% of its work) against "
      f"{W(floor, 'score_s'):.3f} s batched. On CPU a decoding step's cost grows with the rows (top-p sort over "
      "the vocabulary, matmuls), so batching across prompts saves far less than on a GPU.")
    if hgen_big:
        a(f"- batch size: the engine at bs {hgen_big[0]['batch_size']} is "
          f"{extra[next(k for k in extra if k.startswith('harness engine bs'))][0]:.2f}x faster than at the CPU "
          f"auto size {hgen[0]['batch_size']}; naive / engine at bs {hgen_big[0]['batch_size']} = "
          f"{extra[next(k for k in extra if k.startswith('naive / harness engine'))][0]:.2f}.")
    a(f"- cold/floor: the harness engine alone is {extra[next(k for k in extra if k.startswith('harness engine / floor, bs'))][0]:.2f}x "
      "the floor in the same process (per-sample seeded sampling included); "
      f"session overhead inside the cold work (keys, SQLite, records) is {W(cold) - gen_only - score_only:.2f} s.")
    a("")
    a("## What each measurement is\n")
    a("- **naive (a)**: `AutoModelForCausalLM.generate` once per prompt with `num_return_sequences=k`, "
      "`do_sample=True`, the top_p/temperature above, top_k=0; `ProfanityScorer.score([text])` once per text.")
    a("- **floor (b)**: all prompts x k rows sorted by token length, left-padded, cut into fixed-size batches, "
      "one HF `generate` per batch (HF's sampler, one RNG stream for the batch), decode, one "
      "`ProfanityScorer.score(all texts)`. No per-sample seeds, no cache, no records: the least a batched "
      "pipeline does.")
    a("- **harness engine (b\\*)**: `harness.model.generation.Generator(...).generate(requests)` (length-sorted batches, "
      "per-sample seeds via its own logits processor) + one batched score call, in the same process as the "
      "floor and right next to it, with the same model object: the engine's cost without process start-up, "
      "session, cache or load noise. The first generate call of a process pays one-time costs; floor and "
      "engine alternate which one pays them.")
    a("- **harness cold (c)**: `HarnessSession(RunOptions(model=..., toxicity_scorer='profanity', samples=k, "
      "max_new_tokens=..., seed=..., cache_dir=<empty dir>, progress=False))`, `plan(suite, suite.prompts())`, "
      "then `samples('candidate', suite.prompts())` timed with perf_counter. torch and transformers are "
      "imported before the call (the baselines exclude imports too). Work = the call minus the session's "
      "`model_load`, `scorer_load` and `fingerprint` phases: per-sample-seeded sampling, cache keys, "
      "SQLite reads and writes, sample records. The `generation` and `scoring` phases exclude the loads, "
      "which have phases of their own. `HARNESS_CACHE_DIR` points at the run's own directory, so the fingerprint memo starts "
      "empty too.")
    a("- **harness warm (d)**: a second process, a new session on the same cache dir: every generation and "
      "score is a cache hit; it fails the check if `roles['candidate'].loaded` is set or the scorer loaded.")
    a("- **whole process**: wall time from spawning `python bench/bench_generation.py --child ...` to its exit. "
      "**Peak RSS**: per phase, the highest /proc/self/statm resident size sampled every 20 ms during that "
      "phase; per process, `getrusage(RUSAGE_SELF).ru_maxrss`.")
    a("- **threads**: every child runs with OMP_NUM_THREADS/MKL_NUM_THREADS = --threads (default 1), applied "
      "to all paths alike, because torch's default of one thread per core stalls when other processes share "
      "the cores.")
    if profile_text:
        a("\n## cProfile of one cold and one warm harness run (`samples()` call only)\n")
        a("```")
        a(profile_text.strip())
        a("```")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
