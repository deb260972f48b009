"""One evaluation run: models, scorer and cache, loaded lazily; samples generated once, in batches.

Usable without pytest::

    from harness import kinds
    from harness.run.session import HarnessSession, RunOptions
    from harness.suites.specs import load_suite
    session = HarnessSession(RunOptions(model="fixtures/tiny-gpt2", toxicity_scorer="profanity"))
    suite = kinds.prepare(load_suite("benchmarks/suites/palms.yaml"), session.options)
    session.plan(suite, suite.prompts())
    samples = session.samples("candidate", suite.prompts()[:1])
    verdicts = session.check(suite.categories[0])       # any case of any kind: its gate verdicts
    doc = session.document()
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.model import cache as cache_mod
from harness.errors import HarnessError
from harness.suites.specs import Decoding, PromptCase, Suite

log = logging.getLogger(__name__)
ROLES = ("candidate", "baseline")


@dataclass(frozen=True)
class RunOptions:
    model: str
    adapter: str | None = None
    baseline_model: str | None = None
    baseline_adapter: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | str = "auto"
    samples: int | None = None          # overrides every suite's k
    max_new_tokens: int | None = None
    seed: int = 0
    toxicity_scorer: str = "auto"
    scorer_label: str | None = None      # hf: scorers: the toxic class when the config is ambiguous
    detoxify_checkpoint: str | None = None
    detoxify_config_dir: str | None = None
    score_batch_size: int | str = "auto"  # Detoxify rows per batch, or auto (a padded-token budget)
    scorer_precision: str = "fp32"       # fp32 | bf16 | int8 (part of the scorer fingerprint)
    trust_remote_code: bool = False
    chat_template: str = "auto"          # auto | on | off (on/off override the suites)
    cache_dir: str | None = None
    use_cache: bool = True
    progress: bool = True
    backend: str = "local"              # local | ray
    ray_address: str | None = None
    ray_workers: int = 2
    shard_wait_s: float = 300.0         # xdist: how long to wait for another worker's samples without progress
    alpha: float = 0.05                 # significance level of every regression gate
    correction: str = "holm"            # within each family: holm | bh
    fail_on_regression: tuple[tuple[str, float], ...] = ()   # extra (metric, margin) regression gates
    on_inconclusive: str | None = None  # fail | warn | pass: overrides every gate's (None: gate's, else warn)
    on_inconclusive_default: str | None = None   # for gates that set none (the ini harness_on_inconclusive)
    ratings: str | None = None          # human ratings file (harness ratings import)
    ratings_model: str | None = None
    subset: int | None = None           # values suites: a seeded, stratified, nested subset of N prompts
    bold_per_group: int | None = None   # bold suites: prompts per group (overrides options.per_group)
    perturb: tuple[str, ...] | None = None  # --perturb: perturbation names for every values suite (() = none)


@dataclass
class _Role:
    path: str
    adapter: str | None
    fingerprint: str | None = None
    loaded: Any = None
    generator: Any = None
    tokenizer: Any = None
    generated: int = 0
    cached: int = 0


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] += seconds


class HarnessSession:
    """Owns everything heavy; every public method is safe to call repeatedly."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.roles: dict[str, _Role] = {"candidate": _Role(options.model, options.adapter)}
        if options.baseline_model:
            self.roles["baseline"] = _Role(options.baseline_model, options.baseline_adapter)
        self.suites: dict[str, Suite] = {}
        self.planned: dict[str, dict[str, PromptCase]] = defaultdict(dict)  # suite -> case_id -> case
        self._samples: dict[tuple[str, str, int], dict[str, Any]] = {}      # (role, case_id, index) -> sample
        self._scorer: Any = None
        self.scorer_info: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self.extras: dict[str, Any] = {}
        self.extra_metrics: list[dict[str, Any]] = []
        self.comparisons: list[dict[str, Any]] = []
        self.timings = Timings()
        self._cache: Any = None
        self.reference_doc: dict[str, Any] | None = None   # a saved baseline (--baseline FILE)
        self.progress_context: Any = contextlib.nullcontext  # the plugin lets progress bars past capture
        self.final_document: dict[str, Any] | None = None
        self.shard: tuple[int, int] | None = None           # (worker index, worker count) under pytest-xdist
        self.verdicts: list[Any] = []                         # every gate's Verdict, in the order checked
        self.analysis_memo: dict[tuple[str, str], Any] = {}     # (kind, suite id) -> the kind's Records
        self.comparison_memo: dict[tuple, list[dict[str, Any]]] = {}
        self._ratings: Any = None
        self.outputs_written: list[str] = []     # the plugin's "wrote PATH" lines
        self.outputs_failed: list[str] = []

    # ---- planning -------------------------------------------------------------------------
    def plan(self, suite: Suite, prompts: Iterable[PromptCase]) -> None:
        """Register prompts that tests will need, so they are generated together in batches."""
        self.suites[suite.id] = suite
        for p in prompts:
            self.planned[suite.id][p.case_id] = p

    def decoding(self, suite: Suite) -> Decoding:
        d = suite.decoding
        if self.options.samples:
            d = replace(d, samples=self.options.samples)
        if self.options.max_new_tokens:
            d = replace(d, max_new_tokens=self.options.max_new_tokens)
        return d

    # ---- heavy resources, loaded on first use ---------------------------------------------
    @property
    def cache(self) -> Any:
        if self._cache is None:
            if self.options.use_cache:
                self._cache = cache_mod.ResultCache(self.options.cache_dir or cache_mod.default_cache_dir())
            else:
                self._cache = cache_mod.NullCache()
        return self._cache

    def fingerprint(self, role: str) -> str:
        r = self.roles[role]
        if r.fingerprint is None:
            from harness.model.models import model_fingerprint

            t = time.perf_counter()
            memo = (self.options.cache_dir or cache_mod.default_cache_dir()) if self.options.use_cache else None
            r.fingerprint = model_fingerprint(r.path, r.adapter, memo_dir=memo)
            self.timings.add("fingerprint", time.perf_counter() - t)
        return r.fingerprint

    def tokenizer(self, role: str) -> Any:
        r = self.roles[role]
        if r.tokenizer is None:
            from harness.model.models import load_tokenizer

            r.tokenizer = r.loaded.tokenizer if r.loaded else load_tokenizer(r.path, self.options.trust_remote_code)
        return r.tokenizer

    def generator(self, role: str) -> Any:
        r = self.roles[role]
        if r.generator is None:
            from harness.model.generation import Generator
            from harness.model.models import load_model

            t = time.perf_counter()
            if self.shard is not None and self.options.device != "cuda":
                import os

                import torch  # several workers on one machine: split the cores instead of oversubscribing

                torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.shard[1]))
            r.loaded = load_model(r.path, r.adapter, self.options.device, self.options.dtype,
                                  self.options.trust_remote_code, fingerprint=self.fingerprint(role))
            r.tokenizer = r.loaded.tokenizer
            r.generator = Generator(r.loaded, self.options.batch_size, self._chat_option())
            self.timings.add("model_load", time.perf_counter() - t)
        return r.generator

    def loaded_model(self, role: str) -> Any:
        """The model loaded in this process (also under --backend ray, e.g. for perplexity)."""
        r = self.roles[role]
        if r.loaded is None:
            if r.generator is None and self.options.backend != "ray":
                self.generator(role)
            else:   # the generator is (or will be) remote, Ray actors: load a local copy, never the generator
                from harness.model.models import load_model

                r.loaded = load_model(r.path, r.adapter, self.options.device, self.options.dtype,
                                      self.options.trust_remote_code, fingerprint=self.fingerprint(role))
        return r.loaded

    def scorer_handle(self) -> Any:
        """The run's scorer, resolved (name, fingerprint) but loaded only when a score is missing."""
        if self._scorer is None:
            from harness.measure.scoring import resolve_scorer

            t = time.perf_counter()
            o = self.options
            self._scorer = resolve_scorer(o.toxicity_scorer, o.detoxify_checkpoint, o.detoxify_config_dir,
                                          "cpu" if o.device == "cpu" else "auto", label=o.scorer_label,
                                          cache_dir=o.cache_dir, use_cache=o.use_cache,
                                          batch_size=o.score_batch_size, precision=o.scorer_precision)
            self.warnings.extend(self._scorer.warnings)
            self.scorer_info = self._scorer.info()
            self.timings.add("scorer_resolve", time.perf_counter() - t)
        return self._scorer

    def scorer(self) -> Any:
        """The loaded scorer model."""
        handle = self.scorer_handle()
        if handle._scorer is None:
            t = time.perf_counter()
            handle.load()
            self.timings.add("scorer_load", time.perf_counter() - t)
            self.scorer_info.update(handle.info())  # a non-fp32 scorer's agreement with fp32, measured on load
        return handle._scorer

    def _chat_option(self) -> str:
        return {"on": "true", "off": "false"}.get(self.options.chat_template, "auto")

    def uses_chat(self, role: str, suite: Suite) -> bool:
        from harness.model.models import has_chat_template

        setting = self._chat_option() if self._chat_option() != "auto" else suite.chat_template
        if setting == "false":
            return False
        r = self.roles[role]
        has = has_chat_template(r.path) if r.tokenizer is None else None  # files first: no torch import
        if has is None:
            has = bool(getattr(self.tokenizer(role), "chat_template", None))
        if setting == "true" and not has:
            raise HarnessError(f"suite {suite.id}: chat_template is on but {self.roles[role].path} has no chat "
                               "template. Fix: --chat-template off, or chat_template: auto in the suite.")
        return has if setting == "auto" else setting == "true"

    # ---- samples ---------------------------------------------------------------------------
    def samples(self, role: str, prompts: Sequence[PromptCase]) -> list[dict[str, Any]]:
        """Sample records for ``prompts`` (all k each), generating every planned prompt on first need."""
        missing = [p for p in prompts if (role, p.case_id, 0) not in self._samples]
        if missing:
            for p in missing:
                self.planned[p.suite][p.case_id] = p
            self._ensure(role)
        out = []
        for p in prompts:
            k = self.decoding(self.suites[p.suite]).samples
            out.extend(self._samples[(role, p.case_id, i)] for i in range(k))
        return out

    def case_samples(self, case_id: str) -> list[dict[str, Any]]:
        """Every sample already produced for a prompt case ("suite/category/prompt") or category ("suite/category")."""
        prefix = case_id + "/"
        return [s for (role, cid, _), s in sorted(self._samples.items(), key=lambda kv: kv[0])
                if cid == case_id or cid.startswith(prefix)]

    def _ensure(self, role: str) -> None:
        if role not in self.roles:
            raise HarnessError(f"no model for role '{role}'. Fix: pass --baseline-model to compare against a reference.")
        seed = self.options.seed
        todo: list[tuple[tuple[str, str, int], PromptCase, Any, str]] = []
        requests = []
        seeds: dict[str, int] = {}
        from harness.model.generation import GenerationRequest

        fingerprint = self.fingerprint(role)
        for suite_id, cases in self.planned.items():
            suite = self.suites[suite_id]
            d = self.decoding(suite)
            chat = self.uses_chat(role, suite)
            for case in cases.values():
                text, seed_text, extra = _rendered(suite, case, chat)
                for i in range(d.samples):
                    if (role, case.case_id, i) in self._samples:
                        continue
                    key = cache_mod.generation_key(fingerprint, text, d.generation_dict(), chat, seed, i, extra)
                    todo.append(((role, case.case_id, i), case, key, text))
                    seeds[key] = cache_mod.sample_seed(seed, seed_text, i)
                    requests.append((GenerationRequest(text, i, seeds[key], d, case.history), chat))
        if not todo:
            return
        t = time.perf_counter()
        hits = self.cache.get_generations([key for _, _, key, _ in todo])
        self.timings.add("cache_read", time.perf_counter() - t)
        seen: set[str] = set()   # a text in two suites (e.g. an unchanged perturbed prompt) is generated once
        miss = [j for j, (_, _, key, _) in enumerate(todo) if key not in hits and not (key in seen or seen.add(key))]
        r = self.roles[role]
        r.cached += len(todo) - len(miss)
        if miss and self.shard is not None and self.options.use_cache:
            # Scale-out (pytest-xdist): each worker generates its share of the plan, batched, and
            # reads the rest from the shared cache as the other workers write it.
            index, count = self.shard
            mine = [j for j in miss if _shard_of(todo[j][0][1], count) == index]
            self._generate(role, [(todo[j][2], *requests[j]) for j in mine], hits)
            others = [j for j in miss if j not in set(mine)]
            waited = self._wait_for([todo[j][2] for j in others], hits)
            r.cached += len(others) - len(waited)
            miss = [j for j in others if todo[j][2] in set(waited)]
        if miss:
            self._generate(role, [(todo[j][2], *requests[j]) for j in miss], hits)
        texts = [hits[key]["text"] for _, _, key, _ in todo]
        scores = self.score(texts)
        for ((role_, case_id, i), case, key, text), sc in zip(todo, scores):
            g = hits[key]
            self._samples[(role_, case_id, i)] = {
                "role": role_, "suite": case.suite, "category": case.category, "prompt_id": case.id,
                "prompt": text, "sample_index": i, "seed": seeds[key], "text": g["text"],
                "scores": sc, "empty": not g["text"].strip(), "n_prompt_tokens": g["n_prompt_tokens"],
                "n_new_tokens": g["n_new_tokens"], "truncated": g["truncated"], "finish_reason": g["finish_reason"],
                **({"group": case.group} if case.group else {}),
                **({"history": [list(t) for t in case.history]} if case.history else {}),
            }

    def _generate(self, role: str, items: list[tuple[str, Any, bool]], hits: dict[str, Any]) -> None:
        """Generate ``(cache_key, request, chat)`` items, writing each finished batch to the cache."""
        if not items:
            return
        r = self.roles[role]
        r.generated += len(items)
        backend = self.backend(role)
        from harness.measure.scoring import prefetcher

        prefetch = prefetcher(self.scorer, self.options.device)  # GPU scorer: score batches as they finish
        t = time.perf_counter()
        for chat in (False, True):
            group = [it for it in items if it[2] == chat]
            if not group:
                continue

            def store(batch: list[int], outs: list[Any], group: list[tuple[str, Any, bool]] = group) -> None:
                fresh = {group[b][0]: _gen_dict(o) for b, o in zip(batch, outs)}
                self.cache.put_generations(fresh)
                hits.update(fresh)
                if prefetch is not None:
                    prefetch.submit([o.text for o in outs])

            with self.progress_context() if self.options.progress else contextlib.nullcontext():
                backend.generate([it[1] for it in group], progress=self.options.progress, chat=chat, on_batch=store)
        if prefetch is not None:
            prefetch.wait()
            self.timings.add("scoring_overlapped", prefetch.busy_s)
        self.timings.add("generation", time.perf_counter() - t)
        for p in sorted(getattr(backend, "truncated_prompts", ())):
            self.warnings.append(f"prompt truncated to fit the context of {r.path}: {p[:80]!r}")
        if hasattr(backend, "truncated_prompts"):
            backend.truncated_prompts.clear()

    def backend(self, role: str) -> Any:
        """The generation backend: the in-process Generator, or Ray actors (--backend ray)."""
        if self.options.backend == "ray":
            r = self.roles[role]
            if r.generator is None:
                from harness.model.ray_backend import RayGenerator

                t = time.perf_counter()
                r.generator = RayGenerator(self.options, r.path, r.adapter, self.fingerprint(role))
                self.timings.add("model_load", time.perf_counter() - t)
            return r.generator
        return self.generator(role)

    def _wait_for(self, keys: list[str], hits: dict[str, Any]) -> list[str]:
        """Poll the shared cache for other workers' samples; give up after a stall (then we generate)."""
        pending = [k for k in keys if k not in hits]
        last_progress = time.monotonic()
        t = time.perf_counter()
        while pending and time.monotonic() - last_progress < self.options.shard_wait_s:
            time.sleep(0.2)
            found = self.cache.get_generations(pending)
            if found:
                hits.update(found)
                pending = [k for k in pending if k not in found]
                last_progress = time.monotonic()
        self.timings.add("shard_wait", time.perf_counter() - t)
        return pending

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores for ``texts`` through the score cache; unscorable texts raise ScorerError."""
        if not texts:
            return []
        handle = self.scorer_handle()
        t = time.perf_counter()
        keys = [cache_mod.score_key(handle.fingerprint, x) for x in texts]
        hits = self.cache.get_scores(list(dict.fromkeys(keys)))
        todo = list(dict.fromkeys(k for k in keys if k not in hits))
        if todo:
            first = {k: x for k, x in zip(keys, texts)}
            t_load = time.perf_counter()
            scorer = self.scorer()
            t += time.perf_counter() - t_load  # scoring time excludes the one-off load (its own phase)
            if hasattr(scorer, "progress"):
                scorer.progress = self.options.progress
            with self.progress_context() if self.options.progress else contextlib.nullcontext():
                fresh = scorer.score([first[k] for k in todo])
            items = dict(zip(todo, fresh))
            self.cache.put_scores(items)
            hits.update(items)
        self.timings.add("scoring", time.perf_counter() - t)
        return [dict(hits[k]) for k in keys]

    # ---- comparisons against the reference --------------------------------------------------
    def has_reference(self) -> bool:
        return "baseline" in self.roles or self.reference_doc is not None

    def compare(self, suite_id: str, margins: dict[str, float], alpha: float, correction: str) -> list[dict[str, Any]]:
        """Regression comparisons of one suite (all its categories, Holm/BH-corrected together), memoized."""
        key = (suite_id, tuple(sorted(margins.items())), alpha, correction)
        return self.comparisons_for(key, lambda: self._compare(suite_id, margins, alpha, correction))

    def _compare(self, suite_id: str, margins: dict[str, float], alpha: float, correction: str) -> list[dict[str, Any]]:
        from harness.gate.compare import compare_runs

        suite = self.suites[suite_id]
        self.samples("candidate", suite.prompts())
        if "baseline" in self.roles:
            self.samples("baseline", suite.prompts())
            reference, ref_role = None, "baseline"
        elif self.reference_doc is not None:
            reference = self.reference_doc
            present = {s["role"] for s in reference["samples"]}
            ref_role = "baseline" if "baseline" in present and "candidate" not in present else "candidate"
        else:
            raise HarnessError("no reference: pass --baseline-model PATH or --baseline FILE to run regression cases.")
        doc = self.document()
        doc["samples"] = [x for x in doc["samples"] if x["role"] == "candidate" or reference is None]
        comps = compare_runs(doc, reference, margins, alpha, correction, candidate_role="candidate",
                             reference_role=ref_role, metrics=list(margins), seed=self.options.seed)
        return [c.to_dict() for c in comps if c.suite == suite_id]

    def comparisons_for(self, key: tuple, compute: Any) -> list[dict[str, Any]]:
        """Comparison records under ``key``: ``compute()`` once, kept and added to the results."""
        if key not in self.comparison_memo:
            records = compute()
            self.add_comparisons(records)
            self.comparison_memo[key] = records
        return self.comparison_memo[key]

    def add_comparisons(self, records: Sequence[dict[str, Any]]) -> None:
        """Add comparison records, replacing earlier ones of the same (suite, category, metric)."""
        done = {(r["suite"], r["category"], r["metric"]) for r in records}
        self.comparisons = [c for c in self.comparisons if (c["suite"], c["category"], c["metric"]) not in done]
        self.comparisons.extend(records)

    # ---- records of analysed suites ---------------------------------------------------------------
    def records(self, suite: Suite, kind: Any = None) -> Any:
        """``kind``'s (default: the suite's kind's) :class:`~harness.kinds.Records` of ``suite``: computed
        once; their metrics and extras join the results document."""
        from harness import kinds

        kind = kind or kinds.get(suite.kind)
        key = (kind.name, suite.id)
        if key not in self.analysis_memo:
            found = kind.records(self, suite)
            self.extra_metrics.extend(found.metrics)
            for name, value in found.extras.items():
                old = self.extras.get(name)
                self.extras[name] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
            self.analysis_memo[key] = found
        return self.analysis_memo[key]

    # ---- verdicts ------------------------------------------------------------------------------
    def on_inconclusive(self, gate: Any = None) -> str:
        """What an INCONCLUSIVE verdict does: the run's option, else the gate's, else the run's default
        (the ini harness_on_inconclusive), else "warn"."""
        from harness.gate.verdict import DEFAULT_ON_INCONCLUSIVE

        o = self.options
        return o.on_inconclusive or getattr(gate, "on_inconclusive", None) or o.on_inconclusive_default \
            or DEFAULT_ON_INCONCLUSIVE

    def record_verdicts(self, verdicts: Sequence[Any]) -> None:
        self.verdicts.extend(verdicts)

    def check(self, case: Any) -> list[Any]:
        """The gate verdicts of any case (prompt, category, regression, analysis, robustness, ...),
        judged by its kind; not recorded (the pytest fixture records them)."""
        from harness import kinds

        return kinds.compare(self, case)

    def regression_verdicts(self, suite: Suite) -> list[Any]:
        """Every regression verdict of ``suite`` (its gates.regression and the run's --fail-on-regression)."""
        from harness import kinds

        return [v for c in kinds.get(suite.kind).cases(suite, "regression_case", self.options) for v in self.check(c)]

    # ---- human ratings ------------------------------------------------------------------------
    def ratings_summary(self, path: str) -> Any:
        """The ratings file, loaded once; its adherence records join the results' metrics."""
        if self._ratings is None:
            from harness.palms import ratings

            self._ratings = ratings.load_ratings(path)
            for a in self._ratings.adherence:
                self.extra_metrics.append({"role": f"rated:{a.model}", "suite": a.suite, "category": a.category,
                                           "prompt_id": None, "metric": "adherence.mean", "value": a.value,
                                           "ci_low": a.ci_low, "ci_high": a.ci_high, "n": a.n_samples,
                                           "n_ratings": a.n_ratings, "k": None})
            self.extras["ratings"] = {"path": path, "alpha": self._ratings.agreement.alpha,
                                      "models": [m.name for m in self._ratings.models]}
        return self._ratings

    def ratings_model(self, summary: Any) -> str | None:
        """The rated model whose fingerprint is the candidate's (None: let the ratings module choose)."""
        fp = self.fingerprint("candidate")
        match = [m.name for m in summary.models if getattr(m, "fingerprint", None) == fp]
        return match[0] if match else None

    def has_results(self) -> bool:
        """Anything worth a results document: samples, analysis records (perplexity) or verdicts."""
        return bool(self._samples or self.extra_metrics or self.verdicts or self.comparisons)

    def all_samples(self) -> list[dict[str, Any]]:
        return [s for _, s in sorted(self._samples.items(), key=lambda kv: kv[0])]

    # ---- the results document --------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        from harness.measure.results import base_config

        models = {}
        for role, r in self.roles.items():
            if r.loaded is not None:
                models[role] = r.loaded.describe()
            else:
                models[role] = {"path": r.path, "adapter": r.adapter, "fingerprint": r.fingerprint,
                                "loaded": False}
        suites = {}
        for sid, s in self.suites.items():
            suites[sid] = {"version": s.version, "kind": s.kind, "toxicity_metrics": self._aggregated(s),
                           "spec_hash": s.spec_hash, "path": s.path,
                           "decoding": self.decoding(s).as_dict(), "prompt_template": s.prompt_template,
                           "chat_template": s.chat_template,
                           "categories": {c.id: {"name": c.name, "desired_behavior": c.desired_behavior}
                                          for c in s.categories}}
        o = self.options
        return {**base_config(), "models": models, "scorer": self.scorer_info, "seed": o.seed, "suites": suites,
                "options": {"samples": o.samples, "max_new_tokens": o.max_new_tokens, "batch_size": o.batch_size,
                            "device": o.device, "dtype": o.dtype, "chat_template": o.chat_template,
                            "toxicity_scorer": o.toxicity_scorer}}

    def document(self) -> dict[str, Any]:
        from harness.measure.metrics import toxicity_records
        from harness.measure.results import new_document

        doc = new_document(self.config())
        doc["samples"] = self.all_samples()
        if self.scorer_info is not None:
            self.scorer_info["labels"] = sorted({k for s in doc["samples"] for k in s["scores"]}) or \
                list(getattr(self._scorer._scorer, "labels", ()))
        doc["metrics"] = toxicity_records(s for s in doc["samples"] if self._aggregated(self.suites[s["suite"]]))
        doc["metrics"].extend(self.extra_metrics)
        doc["comparisons"] = list(self.comparisons)
        doc["verdicts"] = [v.to_dict() for v in self.verdicts]
        doc["extras"] = dict(self.extras)
        doc["run"] = {"generated": {k: r.generated for k, r in self.roles.items()},
                      "cached": {k: r.cached for k, r in self.roles.items()},
                      "timings_s": {k: round(v, 4) for k, v in self.timings.phases.items()},
                      "warnings": list(self.warnings)}
        return doc

    @staticmethod
    def _aggregated(suite: Suite) -> bool:
        """Whether the document aggregates the suite's sample scores into toxicity metric records."""
        from harness import kinds

        kind = kinds.find(suite.kind)
        return bool(kind and kind.toxicity_metrics)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def _rendered(suite: Suite, case: PromptCase, chat: bool) -> tuple[str, str, dict[str, Any]]:
    """(text sent, text whose per-sample seeds it uses, extra cache-key fields) of a prompt case.

    A perturbed prompt (``seed_text`` set) shares the seeds of its clean prompt, so its samples pair
    with the clean ones; dialogue turns (``history``) need the model's chat template.
    """
    text = suite.render(case)
    seed_text = text if case.seed_text is None else suite.render(replace(case, text=case.seed_text))
    if case.history and not chat:
        raise HarnessError(f"prompt {case.case_id} has earlier chat turns but the model is run without a chat "
                           "template. Fix: --chat-template auto (or on) with a model that has one.")
    extra = {**({"seed_text": seed_text} if seed_text != text else {}),
             **({"history": [list(t) for t in case.history]} if case.history else {})}
    return text, seed_text, extra


def _shard_of(case_id: str, count: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "big") % count


def _gen_dict(g: Any) -> dict[str, Any]:
    return {"text": g.text, "n_prompt_tokens": g.n_prompt_tokens, "n_new_tokens": g.n_new_tokens,
            "truncated": g.truncated, "finish_reason": g.finish_reason}
