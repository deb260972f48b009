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
from harness.run.options import ROLES, RunOptions  # noqa: F401  (re-exported)
from harness.run.sampling import Sampling
from harness.suites.specs import Decoding, PromptCase, Suite

log = logging.getLogger(__name__)
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


class HarnessSession(Sampling):
    """Owns everything heavy; every public method is safe to call repeatedly."""

    def __init__(self, options: RunOptions, *, shard: tuple[int, int] | None = None,
                 progress_context: Any = contextlib.nullcontext) -> None:
        """``shard``: (worker index, worker count) under pytest-xdist; ``progress_context``: what lets
        progress bars reach the terminal (the plugin passes pytest's capture suspension). A saved
        reference (``options.baseline``) is read here: a bad file is a HarnessError before any work."""
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
        self.reference_doc: dict[str, Any] | None = _read_reference(options.baseline)
        self.progress_context = progress_context
        self.shard = shard
        self.verdicts: list[Any] = []                         # every gate's Verdict, in the order checked
        self.analysis_memo: dict[tuple[str, str], Any] = {}     # (kind, suite id) -> the kind's Records
        self.comparison_memo: dict[tuple, list[dict[str, Any]]] = {}
        self._ratings: Any = None

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
            found = kinds.records(kind, self, suite)
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

    def final_document(self, worker_docs: Sequence[dict[str, Any]] = ()) -> dict[str, Any] | None:
        """The run's results document (pytest-xdist: the workers' documents merged), with the saved
        reference's own values (``reference``) when the reference is a file; None when nothing ran."""
        if worker_docs:
            from harness.measure.results import merge_documents

            doc = merge_documents(worker_docs)
        elif self.has_results():
            doc = self.document()
        else:
            return None
        if self.reference_doc is not None:   # the reports' reference column
            from harness.gate.regression import saved_reference

            doc["reference"] = saved_reference(self.reference_doc, self.options.baseline or "")
        return doc

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def _read_reference(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    from harness.measure.results import read_results

    try:
        return read_results(path)
    except HarnessError as exc:
        raise type(exc)(f"--baseline: {exc}") from None
