"""How a session turns planned prompts into scored samples: render, look up the cache, generate the
misses in batches (sharded under pytest-xdist, or on Ray actors), score through the score cache.

:class:`Sampling` is the part of :class:`~harness.run.session.HarnessSession` that does it; it uses
the session's state (``roles``, ``planned``, ``_samples``, ``cache``, ``timings``, ...).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.errors import HarnessError
from harness.model import keys as cache_keys
from harness.suites.specs import PromptCase, Suite


class Sampling:
    """Samples and scores of a session (mixed into HarnessSession)."""

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
                    key = cache_keys.generation_key(fingerprint, text, d.generation_dict(), chat, seed, i, extra)
                    todo.append(((role, case.case_id, i), case, key, text))
                    seeds[key] = cache_keys.sample_seed(seed, seed_text, i)
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
        keys = [cache_keys.score_key(handle.fingerprint, x) for x in texts]
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
